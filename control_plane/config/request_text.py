"""Refuse a request whose path or query string holds a NUL character, before any view runs a query with it.

PostgreSQL's text cannot hold NUL, and psycopg refuses to send one: any lookup built from such a parameter failed
in the database, a 500. The admin's list filters did (`?namespace__exact=%00` on every changelist), and so would
any view that filters by what a URL says. No path, filter or search of this control plane has a use for NUL, so the
request is answered 400 here: in the API's one error shape under /api/, as plain text elsewhere. (Bodies are the
parsers' and forms' to check: `parsers.py`, `json_fields.py`; Django decodes query strings with replacement, so an
unpaired surrogate cannot arrive this way.)
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

__all__ = ["NulRefusingMiddleware"]

MESSAGE = "The URL cannot contain NUL (%00) characters."


class NulRefusingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or "\x00" in request.META.get("QUERY_STRING", "") or _nul_in_query(request):
            if request.path.startswith("/api/"):
                return JsonResponse({"message": MESSAGE, "extra": {}}, status=400)
            return HttpResponseBadRequest(MESSAGE, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


def _nul_in_query(request: HttpRequest) -> bool:
    """The decoded query (`%00` arrives percent-encoded in QUERY_STRING)."""
    if "%00" not in request.META.get("QUERY_STRING", ""):
        return False
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists())
