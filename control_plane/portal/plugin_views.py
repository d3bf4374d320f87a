"""Portal pages of plugins (`PortalUIProvider`): `/portal/plugins/<slug>/`, signed-in portal users only.

The page is a sandboxed frame of the plugin's assets (as in the admin, see `control_plane.plugins.pages`); its RPC
calls `handle_portal_rpc` with the signed-in user's `PortalUserContext`, never a user id the page chose.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from control_plane.plugins.pages import (
    PageSlot,
    asset_response,
    asset_token,
    asset_token_user,
    clean_rpc_method,
    page_slots,
    rpc_body,
    rpc_object_refusal,
)
from control_plane.plugins.rpc_limit import rpc_rate_limited
from shared_sdk import Context, FjordgateSDKError, Runtime
from shared_sdk.messages import PortalUserContext

from .access import portal_allowed, portal_view


def _slot(user: Any, slug: str, route: str = "") -> PageSlot | None:
    mine: set[str] | None = None
    for slot in page_slots("portal", slug=slug):
        if slot.groups:
            mine = mine if mine is not None else set(user.groups.values_list("name", flat=True))
            if not mine & set(slot.groups):
                continue
        if slot.route == route or route == "*":
            return slot
    return None


def user_context(user: Any) -> PortalUserContext:
    """What a portal plugin learns about the signed-in user (no password hash, no tokens)."""
    return PortalUserContext(
        user_id=user.pk,
        email=user.email or "",
        name=user.get_full_name() or user.get_username(),
        is_admin=bool(user.is_staff),
        groups=sorted(user.groups.values_list("name", flat=True)),
    )


@portal_view
def page(request: HttpRequest, slug: str, route: str = "") -> HttpResponse:
    slot = _slot(request.user, slug, route)
    if slot is None:
        raise Http404("No such plugin page.")
    token = asset_token(user_id=int(request.user.pk or 0), slug=slug, area="portal")
    context = {
        "slot": slot,
        "frame_src": f"/portal/plugins/{slug}/assets/{token}/{slot.entry}",
        "rpc_url": f"/portal/plugins/{slug}/rpc/",
    }
    return TemplateResponse(request, "portal/plugin_page.html", context)


@xframe_options_sameorigin
def asset(request: HttpRequest, slug: str, token: str, asset_path: str) -> HttpResponse:
    """No cookie reaches a sandboxed frame: the signed token names the portal user the page was made for."""
    user_id = asset_token_user(token, slug=slug, area="portal")
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    if user is None or not portal_allowed(user):
        return HttpResponse("This page link expired: reload the page.", status=403, content_type="text/plain")
    if _slot(user, slug, "*") is None:
        raise Http404("No such plugin page.")
    return asset_response(slug, asset_path)


@require_POST
@portal_view
def rpc(request: HttpRequest, slug: str, method: str) -> HttpResponse:
    from control_plane.plugins.runtime import call_plugin

    if _slot(request.user, slug, "*") is None:
        return JsonResponse({"error": "No such plugin page."}, status=404)
    if clean_rpc_method(method) is None:
        return JsonResponse({"error": "Method name refused."}, status=400)
    limited = rpc_rate_limited(area="portal", slug=slug, user_id=int(request.user.pk or 0))
    if limited is not None:
        return limited
    body = rpc_body(request.body)
    if body is None:
        return JsonResponse({"error": "Request body too large."}, status=413)
    refusal = rpc_object_refusal(body)
    if refusal is not None:
        return JsonResponse({"error": refusal}, status=400)
    ctx = Context(runtime=Runtime.STUDIO)
    try:
        answer = call_plugin(slug, "handle_portal_rpc", user_context(request.user), method, body, ctx=ctx)
    except FjordgateSDKError as exc:
        return JsonResponse({"error": f"The plugin could not answer: {exc}"}, status=502)
    response = HttpResponse(answer, content_type="application/json")
    response["X-Content-Type-Options"] = "nosniff"
    return response
