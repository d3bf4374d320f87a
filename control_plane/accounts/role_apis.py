"""`/api/v1/namespace-roles/`: grant (POST), change (PATCH), revoke (DELETE) and list namespace roles.

A flat resource with a `user` field, like keys (`credentials/` with `app`) and schedules (`schedules/` with
`plugin`), rather than a `roles` field on `users/`: a role row lives in its namespace, so the generic namespace
checks of `ServiceViewSet` decide who may write it (an admin of N in N, a super-administrator anywhere) and the
namespace filter decides who sees it, while a user is a global object only admins of "" may change.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from control_plane.config.api import IsAdmin, ServiceViewSet, request_access
from control_plane.config.exceptions import PermissionRefused

from .models import NamespaceRole
from .roles import namespace_role_change, namespace_role_grant, namespace_role_revoke
from .services import SUPERUSER_GUARD_MESSAGE

__all__ = ["NamespaceRoleSerializer", "NamespaceRoleViewSet"]


class NamespaceRoleSerializer(serializers.ModelSerializer):
    user = serializers.PrimaryKeyRelatedField(queryset=get_user_model().objects.all())

    class Meta:
        model = NamespaceRole
        fields = ["id", "user", "namespace", "role", "source"]
        read_only_fields = ["id", "source"]
        extra_kwargs = {
            "namespace": {"help_text": 'The namespace the role is in ("" = the global objects)'},
            "source": {"help_text": "manual: granted by hand; sso: recomputed at each single sign-on"},
        }

    def validate_user(self, user: Any) -> Any:
        if self.instance is not None and user != self.instance.user:
            raise serializers.ValidationError("A role's user does not change: revoke it and grant a new one.")
        return user


class NamespaceRoleViewSet(ServiceViewSet):
    """Who holds which role where. Administrators of a namespace grant and revoke roles in it; operators and
    viewers see the roles of their namespaces; only a super-administrator touches a super-administrator's roles."""

    serializer_class = NamespaceRoleSerializer
    permission_classes = [IsAdmin]
    queryset = NamespaceRole.objects.select_related("user").order_by("user_id", "namespace")
    filterset_fields = ["user", "namespace", "role", "source"]
    ordering_fields = ["id", "user", "namespace"]

    def _guard_superusers(self, user: Any) -> None:
        if user.is_superuser and not request_access(self.request).is_superuser:
            raise PermissionRefused(SUPERUSER_GUARD_MESSAGE)

    def service_create(self, data: dict[str, Any]) -> NamespaceRole:
        self._guard_superusers(data["user"])
        return namespace_role_grant(user=data["user"], namespace=data.get("namespace", ""), role=data["role"])

    def service_update(self, instance: NamespaceRole, data: dict[str, Any]) -> NamespaceRole:
        self._guard_superusers(instance.user)
        return namespace_role_change(
            row=instance, role=data.get("role", instance.role), namespace=data.get("namespace")
        )

    def service_delete(self, instance: NamespaceRole) -> None:
        self._guard_superusers(instance.user)
        namespace_role_revoke(row=instance)
