"""Sign-in through the OpenID provider (`/oidc/...`): 404 unless single sign-on is configured."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest

from .oidc import OIDCCallbackView, OIDCLoginView

_login = OIDCLoginView.as_view()
_callback = OIDCCallbackView.as_view()


def oidc_login(request: HttpRequest) -> Any:
    """Redirects to the provider (`?next=` is where to land afterwards, on this site only)."""
    if not settings.FJORDGATE_OIDC_ISSUER:
        raise Http404("single sign-on is not configured")
    return _login(request)


def oidc_callback(request: HttpRequest) -> Any:
    if not settings.FJORDGATE_OIDC_ISSUER:
        raise Http404("single sign-on is not configured")
    return _callback(request)


def sso_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: whether the sign-in pages offer single sign-on and the password form."""
    return {
        "sso_enabled": bool(settings.FJORDGATE_OIDC_ISSUER),
        "sso_name": settings.FJORDGATE_OIDC_PROVIDER_NAME,
        "local_passwords": settings.FJORDGATE_LOCAL_PASSWORDS or not settings.FJORDGATE_OIDC_ISSUER,
    }
