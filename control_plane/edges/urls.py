"""API routes of the sync area: /api/v1/edges/ and /api/v1/analytics/ (one include line in config/urls.py)."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from control_plane.analytics.apis import AnalyticsEventViewSet, UsageView

from .apis import EdgeViewSet

router = SimpleRouter()  # the root view is config/api_urls.py's, which lists these too
router.register("edges", EdgeViewSet, basename="edge")
router.register("analytics/records", AnalyticsEventViewSet, basename="analytics-record")

urlpatterns = [
    path("analytics/usage/", UsageView.as_view(), name="analytics-usage"),
    path("", include(router.urls)),
]
