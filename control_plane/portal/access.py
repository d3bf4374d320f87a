"""Who may use the portal: signed-in users whose profile shows it (`Profile.show_portal`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from control_plane.accounts.models import Profile


def portal_allowed(user: Any) -> bool:
    """A user without a profile row gets the profile's default (shown), as the admin's user form would."""
    if not user.is_authenticated or not user.is_active:
        return False
    profile = Profile.objects.filter(user=user).only("show_portal").first()
    return profile.show_portal if profile is not None else Profile._meta.get_field("show_portal").get_default()


def portal_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required (to the portal's own sign-in page), then a 403 page for users the portal is hidden from."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not portal_allowed(request.user):
            return TemplateResponse(request, "portal/refused.html", {}, status=403)
        return view(request, *args, **kwargs)

    return login_required(wrapped, login_url="portal:login")
