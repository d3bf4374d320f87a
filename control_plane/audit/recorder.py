"""Records an `AuditEntry` for every write to a governed model, from Django's model signals.

Why signals rather than a call in each service: every path that writes (admin forms and actions, the API,
services called from the shell, plugins through studio services, Celery jobs) ends in `save()`, `delete()` or a
many-to-many change, so one recorder cannot be forgotten by a new path. The entry is inserted on the same
database connection right after the write, inside the caller's transaction when there is one (the admin's and
the services' writes are atomic), so a rolled-back write leaves no entry. Bulk `QuerySet.update()` bypasses
signals; governed models are written through services that save instances.

The diff holds concrete fields only; secrets (vendor keys, key hashes, passwords, tokens, and secret-looking keys
inside JSON config) are shown as changed with both values redacted.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from typing import Any

from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

from .actor import current_actor

__all__ = ["AUDITED", "REDACTED", "connect", "redact_secret_keys", "snapshot_of"]

REDACTED = "[redacted]"

AUDITED: frozenset[str] = frozenset(
    {
        "auth.user",
        "auth.group",
        "accounts.apitoken",
        "accounts.namespacerole",
        "accounts.profile",
        "accounts.catalogue",
        "applications.app",
        "applications.credential",
        "applications.pluginresource",
        "llms.llm",
        "llms.llmpluginbinding",
        "catalog.tool",
        "catalog.datasource",
        "catalog.tag",
        "catalog.modelprice",
        "retrieval.document",
        "budgets.budget",
        "plugins.plugin",
        "hooks.objecthookregistration",
        "schedules.pluginschedule",
        "edges.edgereloadrequest",
    }
)
"""Governed objects, as `app_label.model`, and operators' requests to the fleet (a reload of one edge or of a
namespace's edges: who asked, when). Not here: high-volume machine writes (analytics, KV, heartbeats, the outboxes,
schedule runs, a reload request marked published: a bulk update) and the audit trail itself."""

_IGNORED_FIELDS = frozenset({"updated_at", "created_at", "last_login", "date_joined"})
_FIGURES: dict[str, frozenset[str]] = {"budgets.budget": frozenset({"spent", "reserved"})}
"""Per governed model, the figures the control plane keeps on it, not changes of governance: a budget's spend and
holds, which the bridge stores several times a second while usage flows (one entry each flooded the trail with
hundreds of thousands a day per budget). A write of only these (and `_IGNORED_FIELDS`) is not recorded, and
reads nothing before it; another change records its diff without them."""
_SECRET_FIELD = re.compile(r"password|secret|key_hash|api_key|token|encrypted|^key$", re.IGNORECASE)
_SECRET_JSON_KEY = re.compile(r"password|passwd|secret|token|api[_-]?key|apikey|private[_-]?key|credential", re.I)


def _label(model: type[models.Model]) -> str:
    return f"{model._meta.app_label}.{model._meta.model_name}"


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): REDACTED if _SECRET_JSON_KEY.search(str(k)) else _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | memoryview):
        return REDACTED
    return value


def redact_secret_keys(value: Any) -> Any:
    """`value` (parsed JSON) with the value of every secret-looking key replaced by `REDACTED`, at any depth: the
    audit trail's rule, also what the API shows of a plugin's config to those who may not change the plugin."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_JSON_KEY.search(str(k)) else redact_secret_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secret_keys(v) for v in value]
    return value


def snapshot_of(instance: models.Model) -> dict[str, Any]:
    """The instance's concrete field values by attribute name (`app_id` for a foreign key), JSON-safe."""
    return {
        field.attname: _plain(getattr(instance, field.attname))
        for field in instance._meta.concrete_fields
        if field.attname not in _IGNORED_FIELDS
    }


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in before.keys() | after.keys():
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        changes[name] = [REDACTED, REDACTED] if _SECRET_FIELD.search(name) else [old, new]
    return changes


def _namespace(instance: models.Model) -> str:
    namespace = getattr(instance, "namespace", None)
    if isinstance(namespace, str):
        return namespace
    for parent in ("app", "llm", "plugin"):  # credentials, bindings, resources, schedules follow their owner
        if getattr(instance, f"{parent}_id", None) is not None:
            owner = getattr(instance, parent, None)
            return getattr(owner, "namespace", "") or ""
    return ""


def _record(instance: models.Model, action: str, changes: dict[str, Any]) -> None:
    from .models import AuditEntry
    from .publisher import publish_on_commit

    actor = current_actor()
    entry = AuditEntry.objects.create(
        actor_kind=actor.kind,
        actor_user_id=actor.user_id,
        actor_label=actor.label,
        source=actor.source,
        remote_addr=actor.remote_addr,
        action=action,
        object_type=_label(type(instance)),
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        namespace=_namespace(instance),
        changes=changes,
    )
    publish_on_commit(entry)


def _audited(sender: Any) -> bool:
    return isinstance(sender, type) and issubclass(sender, models.Model) and _label(sender) in AUDITED


def _unrecorded(sender: type[models.Model]) -> frozenset[str]:
    return _IGNORED_FIELDS | _FIGURES.get(_label(sender), frozenset())


def _before_save(sender: Any, instance: models.Model, raw: bool = False, update_fields: Any = None, **_: Any) -> None:
    if raw or not _audited(sender) or instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and set(update_fields) <= _unrecorded(sender):
        instance._audit_skip = True  # type: ignore[attr-defined]
        return
    old = sender._base_manager.filter(pk=instance.pk).first()
    instance._audit_before = snapshot_of(old) if old is not None else {}  # type: ignore[attr-defined]


def _after_save(sender: Any, instance: models.Model, created: bool, raw: bool = False, **_: Any) -> None:
    if raw or not _audited(sender) or instance.__dict__.pop("_audit_skip", False):
        return
    after = snapshot_of(instance)
    before: dict[str, Any] = {} if created else getattr(instance, "_audit_before", {})
    changes = _diff(before, after)
    if not created:
        for name in _FIGURES.get(_label(sender), ()):
            changes.pop(name, None)
    if created or changes:
        _record(instance, "create" if created else "update", changes)
    instance.__dict__.pop("_audit_before", None)


def _before_delete(sender: Any, instance: models.Model, **_: Any) -> None:
    if _audited(sender):
        instance._audit_before = snapshot_of(instance)  # type: ignore[attr-defined]
        instance._audit_namespace = _namespace(instance)  # type: ignore[attr-defined]


def _after_delete(sender: Any, instance: models.Model, **_: Any) -> None:
    if not _audited(sender):
        return
    before = getattr(instance, "_audit_before", snapshot_of(instance))
    changes = _diff(before, {})
    namespace = getattr(instance, "_audit_namespace", None)
    if namespace is not None and getattr(instance, "namespace", None) is None:
        instance.namespace = namespace  # type: ignore[attr-defined]  # the owner may be gone already
    _record(instance, "delete", changes)


def _m2m(sender: Any, instance: models.Model, action: str, model: Any, pk_set: set[Any] | None, **_: Any) -> None:
    if not _audited(type(instance)) or action not in ("post_add", "post_remove", "pre_clear"):
        return
    field = next(
        (f.name for f in instance._meta.many_to_many if getattr(f.remote_field, "through", None) is sender),
        sender._meta.model_name,
    )
    if action == "pre_clear":
        related = getattr(instance, field, None)
        pk_set = set(related.values_list("pk", flat=True)) if related is not None else set()
        if not pk_set:
            return
    key = "added" if action == "post_add" else "removed"
    _record(instance, "update", {field: {key: sorted(_plain(pk) for pk in pk_set or ())}})


def connect() -> None:
    pre_save.connect(_before_save, dispatch_uid="audit-pre-save")
    post_save.connect(_after_save, dispatch_uid="audit-post-save")
    pre_delete.connect(_before_delete, dispatch_uid="audit-pre-delete")
    post_delete.connect(_after_delete, dispatch_uid="audit-post-delete")
    m2m_changed.connect(_m2m, dispatch_uid="audit-m2m")
