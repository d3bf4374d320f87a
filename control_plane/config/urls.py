"""URL map of the control plane. Each domain app contributes its API routes through its own `urls.py`."""

from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from control_plane.accounts.views import oidc_callback, oidc_login
from control_plane.config.dashboard import dashboard_view
from control_plane.plugins.page_views import plugin_page_urls

# Branded admin: what a person sees in the title bar, the header and the home page.
admin.site.site_header = "Fjordgate administration"
admin.site.site_title = "Fjordgate admin"
admin.site.index_title = "Fjordgate administration"


def health(request):
    """Deliberately public: liveness for the launcher and orchestrators; says nothing about the data."""
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("health", health, name="health"),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="admin-dashboard"),
    *plugin_page_urls(),  # before the admin's own: /admin/plugins/<slug>/ (a plugin's page)
    path("admin/", admin.site.urls),
    path("portal/chat/", include("control_plane.chat.urls")),
    path("portal/", include("control_plane.portal.urls")),
    path("oidc/authenticate/", oidc_login, name="oidc_authentication_init"),
    path("oidc/callback/", oidc_callback, name="oidc_authentication_callback"),
    path("api/v1/schedules/", include("control_plane.schedules.urls")),
    path("api/v1/", include("control_plane.config.api_urls")),
    path("api/v1/", include("control_plane.edges.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
