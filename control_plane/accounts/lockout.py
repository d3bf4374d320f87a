"""What a password sign-in answers once its account is locked out (django-axes' `AXES_LOCKOUT_CALLABLE`).

django-axes counts failed sign-ins per username and client address (`settings.AXES_*`) on every door that
checks a password: the admin's and the portal's sign-in pages and `POST /api/v1/auth/token/`. Past the limit,
even the right password is refused until the cool-off ends, so guessing goes at a few tries per quarter hour. The
answer is in each door's own shape: the API's error JSON (`{"message", "extra"}`, as every API error) or a page,
both a 429 with `Retry-After`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

__all__ = ["lockout_response"]


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    retry_after_s = int(settings.AXES_COOLOFF_TIME.total_seconds())
    minutes = max(1, round(retry_after_s / 60))
    message = (
        f"Too many failed sign-ins for this account from your address: try again in {minutes} minutes, "
        "or ask an administrator to unlock it."
    )
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"message": message, "extra": {"retry_after_s": retry_after_s}}, status=429)
    else:
        response = render(request, "accounts/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(retry_after_s)
    return response
