"""Plugin pages: a `UIProvider`'s assets and RPC in the admin, a `PortalUIProvider`'s in the portal.

Security model (the choice issue 15 asks for, see docs/plugins/ui-provider.md):
- A plugin page is a *sandboxed iframe* (`sandbox="allow-scripts allow-forms"`, no `allow-same-origin`) inside an
  admin or portal page. Its scripts run in an opaque origin: they cannot read the admin's DOM, cookies, CSRF
  token or storage, nor call the admin's URLs as the signed-in user.
- Every asset response also carries `Content-Security-Policy: sandbox allow-scripts allow-forms`, so an asset URL
  opened on its own is sandboxed the same way, plus `nosniff`.
- A sandboxed frame sends no session cookie, so asset URLs carry a signed, short-lived token (user, slug, area)
  in their path; relative links inside the page keep it.
- RPC goes through the parent page: the frame `postMessage`s `{id, method, payload}`, our own script on the
  parent checks the sender is that frame and POSTs to the RPC URL with the user's session and CSRF token, then
  posts the answer back. The RPC URL itself is staff-only (admin) or portal-login-only, and CSRF-protected.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpResponse

from control_plane.config.parsers import TOO_DEEP
from shared_sdk import FjordgateSDKError
from shared_sdk.json_depth import MAX_JSON_DEPTH, json_depth_exceeds
from shared_sdk.messages import Asset

from .models import Plugin

__all__ = [
    "ASSET_CSP",
    "PageSlot",
    "asset_response",
    "asset_token",
    "asset_token_user",
    "clean_asset_path",
    "clean_rpc_method",
    "page_slots",
    "rpc_body",
    "rpc_object_refusal",
]

ASSET_CSP = "sandbox allow-scripts allow-forms; default-src 'self' data: blob: 'unsafe-inline'; base-uri 'none'"
_ASSET_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,199}$")
_RPC_METHOD = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
_TOKEN_SALT = "fjordgate.plugin-page"


@dataclass(frozen=True)
class PageSlot:
    """One page a plugin's manifest declares (`ui_slots` for the admin, `portal_slots` for the portal)."""

    slug: str
    plugin_name: str
    label: str
    route: str
    entry: str
    groups: tuple[str, ...]


def _slot_route(raw: Any) -> str:
    route = str(raw or "").strip("/")
    return route if re.fullmatch(r"[a-z0-9][a-z0-9\-]{0,63}", route) else ""


def page_slots(area: str, *, slug: str | None = None, user: Any = None) -> list[PageSlot]:
    """The pages of active plugins for `area` ("admin" or "portal"), from the manifests stored at registration.

    No plugin is called: menus are drawn from the database (the manifest is read from the plugin itself when it
    is registered or updated). Admin pages need `ui_provider`, portal pages `portal_ui` as well. With `user`, an
    admin page is kept only when that user may change the plugin (a super-administrator, or an administrator of
    the plugin's namespace): its RPC acts as the plugin, which may read or spend across the studio.
    """
    access = None
    if area == "admin" and user is not None:
        from control_plane.accounts.access import access_for

        access = access_for(user)
    key, needed = ("ui_slots", {"ui_provider"}) if area == "admin" else ("portal_slots", {"ui_provider", "portal_ui"})
    plugins = Plugin.objects.filter(active=True).order_by("slug")
    if slug is not None:
        plugins = plugins.filter(slug=slug)
    slots = []
    for plugin in plugins.only("slug", "name", "namespace", "capabilities", "manifest"):
        if not needed <= set(plugin.capabilities or []):
            continue
        if access is not None and not access.can_change(Plugin, plugin.namespace):
            continue
        manifest = plugin.manifest if isinstance(plugin.manifest, dict) else {}
        for raw in manifest.get(key) or []:
            if not isinstance(raw, dict):
                continue
            entry = str(raw.get("component") or "index.html")
            slots.append(
                PageSlot(
                    slug=plugin.slug,
                    plugin_name=plugin.name or plugin.slug,
                    label=str(raw.get("label") or plugin.name or plugin.slug)[:80],
                    route=_slot_route(raw.get("route")),
                    entry=entry if clean_asset_path(entry) else "index.html",
                    groups=tuple(str(g) for g in raw.get("groups") or []),
                )
            )
    return slots


def asset_token(*, user_id: int, slug: str, area: str) -> str:
    """A signed token for one user, plugin and area; asset URLs carry it (a sandboxed frame sends no cookie)."""
    return signing.dumps({"u": user_id, "s": slug, "a": area}, salt=_TOKEN_SALT, compress=True)


def asset_token_user(token: str, *, slug: str, area: str) -> int | None:
    """The user id a valid, unexpired token was made for (same plugin and area), else `None`."""
    max_age = int(getattr(settings, "FJORDGATE_PLUGIN_PAGE_TOKEN_MAX_AGE_S", 8 * 3600))
    try:
        data = signing.loads(token, salt=_TOKEN_SALT, max_age=max_age)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("s") != slug or data.get("a") != area:
        return None
    user_id = data.get("u")
    return user_id if isinstance(user_id, int) else None


def clean_asset_path(path: str) -> str | None:
    """The asset path when it is a plain relative path (no `..`, no absolute path, no backslash), else `None`."""
    if not _ASSET_PATH.fullmatch(path) or "//" in path:
        return None
    if any(part in ("", ".", "..") for part in path.split("/")):
        return None
    return path


def clean_rpc_method(method: str) -> str | None:
    return method if _RPC_METHOD.fullmatch(method) else None


def rpc_body(body: bytes) -> bytes | None:
    """The request body when within `FJORDGATE_PLUGIN_RPC_MAX_BYTES` (default 1 MiB), else `None`."""
    limit = int(getattr(settings, "FJORDGATE_PLUGIN_RPC_MAX_BYTES", 1024 * 1024))
    return body if len(body) <= limit else None


def rpc_object_refusal(body: bytes) -> str | None:
    """Why a portal RPC body is no JSON object a plugin can take (empty counts as `{}`), or None.

    Checked by the portal before any plugin runs: a body of `[]` or `null` reached the plugin, which read it as
    an empty request ("A prompt needs a title and a text."), and one nested 10,000 levels deep made the
    plugin's own `json` raise RecursionError, a 502 naming it. Python's `json` recurses once per level, so a
    body deeper than its stack is refused on that error; a shallower one past `MAX_JSON_DEPTH` by the count."""
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except RecursionError:
        return TOO_DEEP
    except ValueError:
        return "The request body is not JSON: send a JSON object."
    if not isinstance(data, dict):
        return "The request body is not a JSON object: send a JSON object."
    return TOO_DEEP if json_depth_exceeds(data, MAX_JSON_DEPTH) else None


def _not_found(message: str, status: int = 404) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def asset_response(slug: str, path: str) -> HttpResponse:
    """Ask the plugin for one asset and answer it sandboxed; refused paths, missing and oversized assets fail."""
    from .runtime import call_plugin

    clean = clean_asset_path(path)
    if clean is None:
        return _not_found("Asset path refused.", 400)
    try:
        asset = call_plugin(slug, "get_asset", clean)
    except FjordgateSDKError as exc:
        return _not_found(f"The plugin could not serve this asset: {exc}", 502)
    if not isinstance(asset, Asset):
        return _not_found("No such asset.")
    limit = int(getattr(settings, "FJORDGATE_PLUGIN_ASSET_MAX_BYTES", 5 * 1024 * 1024))
    if len(asset.content) > limit:
        return _not_found(f"Asset larger than {limit} bytes.", 502)
    content_type = (
        asset.content_type if re.fullmatch(r"[\w.+\-]+/[\w.+\-]+(; ?charset=[\w\-]+)?", asset.content_type) else ""
    )
    response = HttpResponse(asset.content, content_type=content_type or "application/octet-stream")
    response["Content-Security-Policy"] = ASSET_CSP
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-cache"
    response["Referrer-Policy"] = "no-referrer"
    return response
