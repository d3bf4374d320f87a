"""Who is writing: an explicit actor (a plugin, a system job, a shell command) or the current web request's user.

Why a context variable: writes happen deep inside services that do not (and should not) take a `who` argument.
The middleware binds the request; plugins, jobs and commands bind themselves with `acting_as`. The request's user
is read when an entry is recorded, not when the request starts, because DRF authenticates tokens inside the view
(and sets the Django request's `user` and `auth` then).
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse

__all__ = ["Actor", "AuditRequestMiddleware", "acting_as", "current_actor"]


@dataclass(frozen=True)
class Actor:
    kind: str  # AuditEntry.ActorKind
    label: str
    source: str
    user_id: int | None = None
    remote_addr: str | None = None


_explicit: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("fjordgate_audit_actor", default=None)
_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar("fjordgate_audit_request", default=None)


@contextmanager
def acting_as(kind: str, label: str, source: str, *, user_id: int | None = None) -> Iterator[Actor]:
    """Attribute the writes inside the block to `label` (a plugin slug, a job name, a command)."""
    actor = Actor(kind=kind, label=label[:200], source=source, user_id=user_id)
    token = _explicit.set(actor)
    try:
        yield actor
    finally:
        _explicit.reset(token)


def _source_of(path: str) -> str:
    for prefix, source in (("/admin/", "admin"), ("/api/", "api"), ("/portal/", "portal")):
        if path.startswith(prefix):
            return source
    return "web"


def _from_request(request: HttpRequest) -> Actor:
    user = getattr(request, "user", None)
    auth = getattr(request, "auth", None)
    remote = request.META.get("REMOTE_ADDR") or None
    source = _source_of(request.path)
    if user is None or not user.is_authenticated:
        return Actor("system", "anonymous", source, None, remote)
    if auth is not None and not isinstance(auth, str | bytes):
        label = f"{user.get_username()} (token {getattr(auth, 'pk', '')})".strip()
        return Actor("token", label, source, user.pk, remote)
    return Actor("user", user.get_username(), source, user.pk, remote)


def current_actor() -> Actor:
    explicit = _explicit.get()
    if explicit is not None:
        return explicit
    request = _request.get()
    if request is not None:
        return _from_request(request)
    command = " ".join(sys.argv[1:2]) if sys.argv and sys.argv[0].endswith("manage.py") else ""
    return Actor("system", command or "system", "shell" if command else "system")


class AuditRequestMiddleware:
    """Binds the request to the writes made while it is served (after AuthenticationMiddleware)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)
