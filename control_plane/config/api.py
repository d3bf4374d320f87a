"""Shared API pieces: permissions, the namespace filter, the base viewset that sends writes through services.

Every viewset here is thin: it validates input with a serializer, checks the caller's access to the target
namespace(s) (`control_plane.accounts.access`, the one policy), calls one service function (which runs the
object hooks, the business rules and the config-change record) and serialises the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework import permissions, viewsets

from control_plane.accounts.access import namespace_of, namespace_of_data

from .api_filters import NamespaceFilterBackend, request_access
from .exceptions import PermissionRefused

__all__ = [
    "AdminOrReadOnly",
    "IsAdmin",
    "NamespaceFilterBackend",
    "ServiceViewSet",
    "actor_id",
    "check_change",
    "is_admin",
    "request_access",
]


def is_admin(request: Any) -> bool:
    """Whether the caller administers some namespace (or everything), as opposed to a self-service user."""
    return request_access(request).administers_anything


def actor_id(request: Any) -> int | None:
    return request.user.pk if request.user and request.user.is_authenticated else None


def check_change(request: Any, model: Any, *namespaces: str) -> None:
    """Raise a 403 unless the caller may write a `model` object in every one of `namespaces`."""
    refusal = request_access(request).change_refusal(model, list(namespaces))
    if refusal:
        raise PermissionRefused(refusal)


class IsAdmin(permissions.BasePermission):
    message = "Only administrators may do this."

    def has_permission(self, request, view) -> bool:
        if not is_admin(request):
            return False
        if request.method not in permissions.SAFE_METHODS and request_access(request).read_only:
            self.message = "This API token is read-only."
            return False
        return True


class AdminOrReadOnly(permissions.BasePermission):
    message = "Only administrators may change this."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or IsAdmin().has_permission(request, view)


class ServiceViewSet(viewsets.ModelViewSet):
    """A model viewset whose writes call services, after checking the target namespace (old and new).

    Subclasses define `service_create(data)`, `service_update(instance, data)` and `service_delete(instance)`;
    `service_data` turns validated serializer data into the service's keyword data.
    """

    http_method_names = ["get", "post", "patch", "put", "delete", "head", "options"]
    # Defined by each subclass (see above).
    service_create: Callable[[dict[str, Any]], Any]
    service_update: Callable[[Any, dict[str, Any]], Any]
    service_delete: Callable[[Any], None]
    self_service = False  # True: non-administrators may write their own rows (the view checks ownership)

    def service_data(self, validated: dict[str, Any]) -> dict[str, Any]:
        return dict(validated)

    def _check(self, model: Any, *namespaces: str) -> None:
        if self.self_service and not is_admin(self.request):
            return
        check_change(self.request, model, *namespaces)

    def perform_create(self, serializer) -> None:
        model = serializer.Meta.model
        self._check(model, namespace_of_data(model, serializer.validated_data))
        serializer.instance = self.service_create(self.service_data(serializer.validated_data))

    def perform_update(self, serializer) -> None:
        instance = serializer.instance
        self._check(
            type(instance),
            namespace_of(instance),
            namespace_of_data(type(instance), serializer.validated_data, instance),
        )
        serializer.instance = self.service_update(instance, self.service_data(serializer.validated_data))

    def perform_destroy(self, instance) -> None:
        self._check(type(instance), namespace_of(instance))
        self.service_delete(instance)
