"""URLs of the portal under /portal/."""

from django.urls import path

from . import plugin_views, views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", views.PortalLogoutView.as_view(), name="logout"),
    path("apps/new/", views.request_app, name="request-app"),
    path("apps/<int:app_id>/", views.app_detail, name="app"),
    path("apps/<int:app_id>/keys/", views.key_create, name="key-create"),
    path("apps/<int:app_id>/keys/<int:key_id>/rotate/", views.key_rotate, name="key-rotate"),
    path("apps/<int:app_id>/keys/<int:key_id>/revoke/", views.key_revoke, name="key-revoke"),
    path("apps/<int:app_id>/usage/", views.usage, name="usage"),
    path("apps/<int:app_id>/usage.csv", views.usage_csv, name="usage-csv"),
    # plugin pages (PortalUIProvider): page, sandboxed assets (signed token in the path), RPC
    path("plugins/<slug:slug>/", plugin_views.page, name="plugin-page"),
    path("plugins/<slug:slug>/rpc/<str:method>", plugin_views.rpc, name="plugin-rpc"),
    path("plugins/<slug:slug>/assets/<str:token>/<path:asset_path>", plugin_views.asset, name="plugin-asset"),
    path("plugins/<slug:slug>/<slug:route>/", plugin_views.page, name="plugin-page-route"),
]
