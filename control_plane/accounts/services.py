"""Writes to users (with object hooks), groups and their catalogues.

Users are Django's `auth.User`; Fjordgate's extra fields live on `Profile`. Users are global (no namespace), so
a user change marks every namespace's config as changed.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from control_plane.hooks.services import HookOutcome, field_default, guarded_delete, guarded_write
from control_plane.sync.services import config_change_record

from .models import Catalogue, Profile

__all__ = [
    "LAST_SUPERUSER_MESSAGE",
    "USER_FIELDS",
    "catalogue_changed",
    "catalogue_set",
    "group_delete",
    "group_save",
    "user_create",
    "user_delete",
    "user_hook_view",
    "user_last_superuser_problem",
    "user_update",
]

User = get_user_model()
USER_FIELDS = ("username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser")
PROFILE_FIELDS = ("show_portal", "show_chat", "metadata", "app_namespace")


LAST_SUPERUSER_MESSAGE = (
    "This is the last active superuser: make another user an active staff superuser before deleting, "
    "deactivating or demoting this one, or nobody can administer Fjordgate."
)


SUPERUSER_GUARD_MESSAGE = "Only a super-administrator may make, change or delete super-administrators."


def _is_administrator(user: Any) -> bool:
    """Who can run the control plane: an active superuser with staff access (the admin site and the API)."""
    return bool(user.is_active and user.is_superuser and user.is_staff)


def user_last_superuser_problem(*, user_id: int | None, remains_administrator: bool, lock: bool = False) -> str:
    """The refusal message when losing `user_id` as an administrator would leave none, else "".

    With `lock`, the administrators' rows stay locked to the end of the caller's transaction, so two admins demoting
    each other at the same time cannot both succeed.
    """
    if user_id is None or remains_administrator:
        return ""
    administrators = User.objects.filter(is_active=True, is_superuser=True, is_staff=True)
    if lock:
        administrators = administrators.select_for_update()
    ids = set(administrators.values_list("pk", flat=True))
    return LAST_SUPERUSER_MESSAGE if ids == {user_id} else ""


def _refuse_losing_last_superuser(user_id: int | None, *, remains_administrator: bool) -> None:
    problem = user_last_superuser_problem(user_id=user_id, remains_administrator=remains_administrator, lock=True)
    if problem:
        raise ValidationError(problem, code="last_superuser")


def _profile(user) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    return profile


def user_hook_view(user, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """SDK `User` fields (name, is_admin, group names) plus ours; `password` is only ever a marker."""
    view: dict[str, Any] = {"id": user.pk if user else None}
    for name in USER_FIELDS:
        view[name] = getattr(user, name) if user else field_default(User, name)
    profile = _profile(user) if user is not None and user.pk else None
    for name in PROFILE_FIELDS:
        view[name] = getattr(profile, name) if profile else field_default(Profile, name)
    view["groups"] = sorted(user.groups.values_list("name", flat=True)) if user is not None and user.pk else []
    view["password"] = ""
    for key, value in (data or {}).items():
        if key in USER_FIELDS or key in PROFILE_FIELDS or key in ("groups", "password"):
            view[key] = value
    view["name"] = f"{view.get('first_name', '')} {view.get('last_name', '')}".strip()
    view["is_admin"] = bool(view.get("is_staff"))
    return view


def _apply(user, outcome: HookOutcome):
    obj = outcome.obj
    for name in USER_FIELDS:
        if name in obj:
            setattr(user, name, obj[name])
    password = obj.get("password")
    if password and password != "[REDACTED]":
        validate_password(password, user)
        user.set_password(password)
    elif user.pk is None:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    _refuse_losing_last_superuser(user.pk, remains_administrator=_is_administrator(user))
    user.save()
    profile = _profile(user)
    for name in PROFILE_FIELDS:
        if name in obj:
            setattr(profile, name, obj[name])
    if outcome.metadata:
        profile.metadata = {**(profile.metadata or {}), **outcome.metadata}
    profile.full_clean()
    profile.save()
    if "groups" in obj:
        names = obj["groups"]
        if not isinstance(names, list):
            raise ValidationError({"groups": "Give a list of group names."})
        groups = list(Group.objects.filter(name__in=names))
        missing = set(names) - {g.name for g in groups}
        if missing:
            raise ValidationError({"groups": f"Unknown groups: {sorted(missing)}."})
        user.groups.set(groups)
    return user


def user_create(*, data: dict[str, Any], actor_id: int | None = None, hook_outcome: HookOutcome | None = None):
    def apply(outcome: HookOutcome):
        user = _apply(User(), outcome)
        config_change_record(namespace="", reason=f"user {user.pk} created")
        return user

    return guarded_write(
        object_type="user",
        operation="create",
        view=user_hook_view(None, data),
        actor_id=actor_id,
        apply=apply,
        after_view=user_hook_view,
        hook_outcome=hook_outcome,
    )


def user_update(*, user, data: dict[str, Any], actor_id: int | None = None, hook_outcome: HookOutcome | None = None):
    def apply(outcome: HookOutcome):
        result = _apply(User.objects.select_for_update().get(pk=user.pk), outcome)
        config_change_record(namespace="", reason=f"user {result.pk} updated")
        return result

    return guarded_write(
        object_type="user",
        operation="update",
        view=user_hook_view(user, data),
        actor_id=actor_id,
        apply=apply,
        after_view=user_hook_view,
        hook_outcome=hook_outcome,
    )


@transaction.atomic
def user_delete(*, user, actor_id: int | None = None, hook_outcome: HookOutcome | None = None) -> None:
    """Delete a user; refused for the last active superuser (nobody could administer Fjordgate after it)."""
    _refuse_losing_last_superuser(user.pk, remains_administrator=False)
    guarded_delete(
        object_type="user",
        instance=user,
        view=user_hook_view(user),
        changed_namespaces=lambda: [""],  # users travel in every namespace's snapshot
        label=f"user {user.pk}",
        actor_id=actor_id,
        hook_outcome=hook_outcome,
    )


@transaction.atomic
def group_save(*, name: str, group: Group | None = None) -> Group:
    group = group or Group()
    group.name = name
    group.full_clean()
    group.save()
    Catalogue.objects.get_or_create(group=group)
    config_change_record(namespace="", reason=f"group {group.name} saved")
    return group


@transaction.atomic
def group_delete(*, group: Group) -> None:
    group.delete()
    config_change_record(namespace="", reason="group deleted")


@transaction.atomic
def catalogue_set(
    *,
    group: Group,
    llm_ids: list[int] | None = None,
    tool_ids: list[int] | None = None,
    datasource_ids: list[int] | None = None,
    agent_ids: list[int] | None = None,
) -> Catalogue:
    """Replace what the group's members may see and request (None leaves that part unchanged)."""
    catalogue, _ = Catalogue.objects.get_or_create(group=group)
    if agent_ids is not None:
        catalogue.agents.set(agent_ids)
    if llm_ids is not None:
        catalogue.llms.set(llm_ids)
    if tool_ids is not None:
        catalogue.tools.set(tool_ids)
    if datasource_ids is not None:
        catalogue.datasources.set(datasource_ids)
    catalogue_changed(group=group)
    return catalogue


def catalogue_changed(*, group: Group) -> None:
    """The LLMs a catalogue grants travel in every namespace's snapshot (`LLMConfig.granted_group_ids`): a new
    config version, so the edges stop (or start) serving the group's members at once."""
    config_change_record(namespace="", reason=f"catalogue of group {group.name} changed")
