"""Who may chat: portal users whose profile shows the chat (`Profile.show_chat`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from control_plane.accounts.models import Profile
from control_plane.portal.access import portal_allowed


def chat_allowed(user: Any) -> bool:
    if not portal_allowed(user):
        return False
    profile = Profile.objects.filter(user=user).only("show_chat").first()
    return profile.show_chat if profile is not None else Profile._meta.get_field("show_chat").get_default()


def chat_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in (to the portal's sign-in page), then a 403 page for users the chat is hidden from."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not chat_allowed(request.user):
            return TemplateResponse(request, "portal/refused.html", {}, status=403)
        return view(request, *args, **kwargs)

    return login_required(wrapped, login_url="portal:login")
