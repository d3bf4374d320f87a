"""The control plane's one error family and the one JSON shape every API error takes.

    ApplicationError            a business rule refused the operation (400 unless `status_code` says otherwise)
     ├── HookRejected           an object hook's before_* call refused the operation (message = plugin's reason)
     └── PermissionRefused      the caller may not do this (403)

Services raise these (or Django's `ValidationError`); `api_exception_handler` renders them, DRF's own
exceptions, `Http404` and Django's `ValidationError`/`PermissionDenied` as

    {"message": "<one line for a human>", "extra": {"fields": {...}} }

so an API client parses exactly one shape. The admin turns the same exceptions into form errors.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

__all__ = ["ApplicationError", "HookRejected", "PermissionRefused", "api_exception_handler"]


class ApplicationError(Exception):
    """A refused operation with a message meant for the person who asked for it."""

    status_code = 400

    def __init__(self, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class HookRejected(ApplicationError):
    """A before_* object hook said no; `plugin` names it so an admin knows whom to ask."""

    def __init__(self, message: str, *, plugin: str) -> None:
        super().__init__(message, {"plugin": plugin})
        self.plugin = plugin


class PermissionRefused(ApplicationError):
    status_code = 403


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            text = _first_message(value)
            return text if key in ("non_field_errors", "detail", "__all__") else f"{key}: {text}"
    if isinstance(detail, list) and detail:
        # a nested list's items that passed are empty ({} in `plugin_chain: [{}, {"config_override": [...]}]`)
        return _first_message(next((item for item in detail if item), detail[0]))
    return str(detail)


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Render every error as {"message", "extra"}; unknown exceptions stay unhandled (500, logged by Django)."""
    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "extra": exc.extra}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"message": _first_message(fields), "extra": {"fields": fields}}
    else:
        detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
        response.data = {"message": str(detail), "extra": {}}
    return response
