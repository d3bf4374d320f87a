"""Shared API pieces: permissions, the base viewset that sends writes through services, and JSON-field input.

Every viewset here is thin: it validates input with a serializer, calls one service function (which runs the
object hooks, the business rules and the config-change record) and serialises the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework import permissions, viewsets

__all__ = ["AdminOrReadOnly", "IsAdmin", "ServiceViewSet", "actor_id", "is_admin"]


def is_admin(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.is_staff)


def actor_id(request: Any) -> int | None:
    return request.user.pk if request.user and request.user.is_authenticated else None


class IsAdmin(permissions.BasePermission):
    message = "Only administrators may do this."

    def has_permission(self, request, view) -> bool:
        return is_admin(request.user)


class AdminOrReadOnly(permissions.BasePermission):
    message = "Only administrators may change this."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or is_admin(request.user)


class ServiceViewSet(viewsets.ModelViewSet):
    """A model viewset whose writes call services.

    Subclasses define `service_create(data)`, `service_update(instance, data)` and `service_delete(instance)`;
    `service_data` turns validated serializer data into the service's keyword data.
    """

    http_method_names = ["get", "post", "patch", "put", "delete", "head", "options"]
    # Defined by each subclass (see above).
    service_create: Callable[[dict[str, Any]], Any]
    service_update: Callable[[Any, dict[str, Any]], Any]
    service_delete: Callable[[Any], None]

    def service_data(self, validated: dict[str, Any]) -> dict[str, Any]:
        return dict(validated)

    def perform_create(self, serializer) -> None:
        serializer.instance = self.service_create(self.service_data(serializer.validated_data))

    def perform_update(self, serializer) -> None:
        serializer.instance = self.service_update(serializer.instance, self.service_data(serializer.validated_data))

    def perform_destroy(self, instance) -> None:
        self.service_delete(instance)
