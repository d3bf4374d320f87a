"""Admin views of plugin pages (`UIProvider`): the page, its sandboxed assets and its RPC, under
`/admin/plugins/<slug>/`. Staff only; RPC is CSRF-protected (see `pages.py` for the security model)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, register_converter
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from shared_sdk import FjordgateSDKError

from .pages import asset_response, asset_token, asset_token_user, clean_rpc_method, page_slots, rpc_body
from .rpc_limit import rpc_rate_limited

__all__ = ["plugin_page_urls", "rpc_error"]


def rpc_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def page(request: HttpRequest, slug: str, route: str = "") -> HttpResponse:
    slot = next((s for s in page_slots("admin", slug=slug, user=request.user) if s.route == route), None)
    if slot is None:
        raise Http404("No such plugin page.")
    token = asset_token(user_id=int(request.user.pk or 0), slug=slug, area="admin")
    context = {
        **admin.site.each_context(request),
        "title": slot.label,
        "slot": slot,
        "frame_src": f"/admin/plugins/{slug}/assets/{token}/{slot.entry}",
        "rpc_url": f"/admin/plugins/{slug}/rpc/",
    }
    return TemplateResponse(request, "plugins/admin_page.html", context)


@xframe_options_sameorigin
def asset(request: HttpRequest, slug: str, token: str, asset_path: str) -> HttpResponse:
    """Not behind `admin_view`: the sandboxed frame sends no cookie; the signed token names a staff user."""
    user_id = asset_token_user(token, slug=slug, area="admin")
    user = get_user_model().objects.filter(pk=user_id, is_active=True, is_staff=True).first() if user_id else None
    if user is None:
        return HttpResponse("This page link expired: reload the plugin page.", status=403, content_type="text/plain")
    if not page_slots("admin", slug=slug, user=user):
        raise Http404("No such plugin page.")
    return asset_response(slug, asset_path)


@require_POST
def rpc(request: HttpRequest, slug: str, method: str) -> HttpResponse:
    from .runtime import call_plugin

    if not page_slots("admin", slug=slug, user=request.user):
        return rpc_error("No such plugin page.", 404)
    if clean_rpc_method(method) is None:
        return rpc_error("Method name refused.", 400)
    limited = rpc_rate_limited(area="admin", slug=slug, user_id=int(request.user.pk or 0))
    if limited is not None:
        return limited
    body = rpc_body(request.body)
    if body is None:
        return rpc_error("Request body too large.", 413)
    try:
        answer = call_plugin(slug, "handle_rpc", method, body)
    except FjordgateSDKError as exc:
        return rpc_error(f"The plugin could not answer: {exc}", 502)
    response = HttpResponse(answer, content_type="application/json")
    response["X-Content-Type-Options"] = "nosniff"
    return response


class PluginSlugConverter:
    """A plugin slug that is not one of the plugins app's admin model URLs (`/admin/plugins/plugin/` stays the
    plugin list): those patterns are mounted before the admin's, so the converter declines such names."""

    regex = "[-a-zA-Z0-9_]+"

    def to_python(self, value: str) -> str:
        from django.apps import apps

        if value in {m._meta.model_name for m in apps.get_app_config("plugins").get_models()}:
            raise ValueError(value)
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(PluginSlugConverter, "pluginslug")


def plugin_page_urls() -> list:
    """URL patterns mounted before `admin/`: staff-only (the admin's own login), RPC CSRF-checked by admin_view."""
    from .resource_views import resource_types_view

    site = admin.site
    return [
        path("admin/resources/", site.admin_view(resource_types_view), name="resource-types"),
        path("admin/plugins/<pluginslug:slug>/", site.admin_view(page), name="plugin-page"),
        path("admin/plugins/<pluginslug:slug>/rpc/<str:method>", site.admin_view(rpc), name="plugin-rpc"),
        path("admin/plugins/<pluginslug:slug>/assets/<str:token>/<path:asset_path>", asset, name="plugin-asset"),
        path("admin/plugins/<pluginslug:slug>/<slug:route>/", site.admin_view(page), name="plugin-page-route"),
    ]
