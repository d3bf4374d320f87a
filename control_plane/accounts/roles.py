"""Writes to namespace roles: grants and revocations by hand (admin, API, shell) and the roles a sign-in gives.

Who may call which is decided before (the access policy, `access.py`: a role row is an object of its namespace);
these functions keep the rows valid and say who owns each one (`NamespaceRole.source`):

- a hand grant is `manual`: it stays until someone revokes it by hand, whatever the provider's groups say;
- a sign-in's roles are `sso`: each sign-in sets them to what the groups claim grants now and removes the `sso`
  rows it no longer grants. In a namespace the claim grants a role in, the claim decides, even over a hand grant
  there (the row becomes `sso`): the provider's mapping owns that namespace for this user.

A role lets its holder into the admin (where it is enforced), as a sign-in with a role does: a grant makes the
user staff. A revocation leaves the flag (a staff user without roles administers nothing).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from control_plane.sync.services import config_change_record

from .models import NamespaceRole

__all__ = ["namespace_role_change", "namespace_role_grant", "namespace_role_revoke", "user_namespace_roles_set"]


def _let_into_admin(user: Any) -> None:
    """The user's `is_staff` travels to the edges (`is_admin`): flipping it is a config change of every namespace."""
    if user.is_staff:
        return
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    config_change_record(namespace="", reason=f"user {user.pk} may enter the admin (granted a namespace role)")


@transaction.atomic
def namespace_role_grant(*, user: Any, namespace: str, role: str) -> NamespaceRole:
    """Grant `role` in `namespace` by hand; a user has one role per namespace (change it with
    `namespace_role_change`)."""
    row = NamespaceRole(user=user, namespace=namespace, role=role, source=NamespaceRole.Source.MANUAL)
    row.full_clean()  # the namespace rule, the role choices, one role per user and namespace
    row.save()
    _let_into_admin(user)
    return row


@transaction.atomic
def namespace_role_change(*, row: NamespaceRole, role: str, namespace: str | None = None) -> NamespaceRole:
    """Change a role (or move it to `namespace`) by hand; from now on the row is a hand grant (a sign-in still
    decides the namespaces its claim grants in)."""
    row = NamespaceRole.objects.select_for_update().get(pk=row.pk)
    row.role = role
    if namespace is not None:
        row.namespace = namespace
    row.source = NamespaceRole.Source.MANUAL
    row.full_clean()
    row.save()
    _let_into_admin(row.user)
    return row


@transaction.atomic
def namespace_role_revoke(*, row: NamespaceRole) -> None:
    row.delete()


def user_namespace_roles_set(*, user: Any, roles: dict[str, str]) -> None:
    """What a sign-in grants (namespace -> admin | operator | viewer) becomes the user's `sso` roles; the `sso`
    rows it no longer grants go, hand grants in other namespaces stay (see the module docstring)."""
    valid = set(NamespaceRole.Role.values)
    bad = sorted(role for role in roles.values() if role not in valid)
    if bad:
        raise ValidationError({"roles": f"unknown role(s) {bad}; use one of {sorted(valid)}"})
    sso = NamespaceRole.Source.SSO
    with transaction.atomic():
        current = {r.namespace: r for r in NamespaceRole.objects.select_for_update().filter(user=user)}
        for namespace, row in current.items():
            if namespace not in roles and row.source == sso:
                row.delete()
        for namespace, role in roles.items():
            existing = current.get(namespace)
            if existing is None:
                row = NamespaceRole(user=user, namespace=namespace, role=role, source=sso)
                row.full_clean()
                row.save()
            elif (existing.role, existing.source) != (role, sso):
                existing.role, existing.source = role, sso
                existing.save(update_fields=["role", "source"])
