"""Object hooks: the one place that asks plugins before and tells them after a write to an LLM, app, tool,
datasource or user.

Order and policy (the contract every domain service relies on):
- Registrations run by `priority` (lower first), then plugin slug; only active plugins of the global namespace
  or the object's namespace take part.
- A `before_*` hook sees the object as the previous hook left it. It may refuse (`allow_operation=False`: the
  write stops with `HookRejected(rejection_reason)`) or replace the object (`modified=True` and
  `modified_object_json`). `plugin_metadata` of every hook is merged into the object's `metadata`.
- `after_*` hooks run after the transaction commits; their answers and failures are logged, never raised.
- A failing plugin (timeout, exception, crash) is skipped when its failure policy is `open`, and refuses the
  operation when it is `closed`.
- Every hook payload is redacted (see `redact`): vendor keys and credential hashes never reach a plugin.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Field, Model

from control_plane.config.exceptions import HookRejected
from shared_sdk import Context, ObjectHookRequest, ObjectHookResponse, PluginCallError, Runtime
from shared_sdk.messages import PluginContextInfo

from .models import ObjectHookRegistration

__all__ = [
    "REDACTED",
    "HookOutcome",
    "field_default",
    "guarded_delete",
    "guarded_write",
    "object_hooks_run_after",
    "object_hooks_run_before",
    "redact",
]

logger = logging.getLogger(__name__)

REDACTED = "[REDACTED]"
SECRET_FIELDS = frozenset({"api_key", "api_key_encrypted", "password", "key_hash", "auth_key", "secret"})

M = TypeVar("M")


def field_default(model: type[Model], name: str) -> Any:
    """A concrete field's default: what object hooks see for a field of an object that does not exist yet."""
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"{model.__name__}.{name} is a relation, not a concrete field")
    return field.get_default()


@dataclass
class HookOutcome:
    """What the before hooks decided: the object to write, and metadata to merge into its `metadata`."""

    obj: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    modified: bool = False
    messages: list[str] = field(default_factory=list)


def redact(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of `obj` with every secret field replaced by a marker ("" stays "" so plugins see it is unset)."""
    return {k: (REDACTED if v else "") if k in SECRET_FIELDS else v for k, v in obj.items()}


def _timeout_s(plugin_timeout_ms: int) -> float:
    return min(plugin_timeout_ms / 1000, float(settings.FJORDGATE_OBJECT_HOOK_TIMEOUT_S))


def _registrations(object_type: str, hook_type: str, namespace: str) -> list[ObjectHookRegistration]:
    return list(
        ObjectHookRegistration.objects.filter(
            object_type=object_type, hook_type=hook_type, plugin__active=True, plugin__namespace__in=("", namespace)
        )
        .select_related("plugin")
        .order_by("priority", "plugin__slug")
    )


def _call(reg: ObjectHookRegistration, request: ObjectHookRequest, namespace: str) -> ObjectHookResponse:
    from control_plane.plugins.runtime import call_plugin

    ctx = Context(runtime=Runtime.STUDIO, request_id=request.operation_id, namespace=namespace)
    response = call_plugin(
        reg.plugin.slug, "handle_object_hook", request, ctx=ctx, timeout_s=_timeout_s(reg.plugin.timeout_ms)
    )
    if response is None:
        return ObjectHookResponse()
    if not isinstance(response, ObjectHookResponse):
        raise PluginCallError(reg.plugin.slug, "handle_object_hook", "exception", True, "returned a wrong type")
    return response


def _request(hook_type: str, object_type: str, obj: dict, actor_id: int | None, operation_id: str) -> ObjectHookRequest:
    return ObjectHookRequest(
        hook_type=hook_type,
        object_type=object_type,
        operation_id=operation_id,
        user_id=actor_id,
        object_json=json.dumps(redact(obj), default=str),
        metadata={"namespace": obj.get("namespace", "")},
        context=PluginContextInfo(user_id=actor_id),
    )


def object_hooks_run_before(
    *, object_type: str, operation: str, obj: dict[str, Any], actor_id: int | None = None
) -> HookOutcome:
    """Run the `before_<operation>` chain; raises `HookRejected` with the refusing plugin's reason."""
    outcome = HookOutcome(obj=dict(obj))
    namespace = str(obj.get("namespace") or "")
    hook_type = f"before_{operation}"
    operation_id = ""
    for reg in _registrations(object_type, hook_type, namespace):
        request = _request(hook_type, object_type, outcome.obj, actor_id, operation_id)
        operation_id = request.operation_id  # one operation id across the chain, so plugins can correlate
        request.plugin_id = reg.plugin_id
        try:
            response = _call(reg, request, namespace)
        except PluginCallError as exc:
            if reg.plugin.failure_policy == "closed":
                raise HookRejected(
                    f"object hook of plugin {reg.plugin.slug!r} failed ({exc.kind}) and its policy is fail-closed",
                    plugin=reg.plugin.slug,
                ) from None
            logger.warning("object hook %s %s skipped: %s", reg.plugin.slug, hook_type, exc.kind)
            continue
        if not response.allow_operation:
            reason = response.rejection_reason or f"refused by plugin {reg.plugin.slug!r}"
            raise HookRejected(reason, plugin=reg.plugin.slug)
        if response.modified and response.modified_object_json:
            replaced = _parse_object(reg.plugin.slug, response.modified_object_json)
            if replaced is not None and operation != "delete":
                outcome.obj = _keep_secrets(outcome.obj, replaced)
                outcome.modified = True
        if response.plugin_metadata:
            outcome.metadata.update(response.plugin_metadata)
        if response.message:
            outcome.messages.append(f"{reg.plugin.slug}: {response.message}")
    return outcome


def _parse_object(slug: str, text: str) -> dict | None:
    try:
        value = json.loads(text)
    except ValueError:
        logger.warning("object hook %s returned modified_object_json that is not JSON; ignored", slug)
        return None
    if not isinstance(value, dict):
        logger.warning("object hook %s returned modified_object_json that is not an object; ignored", slug)
        return None
    return value


def _keep_secrets(current: dict, replaced: dict) -> dict:
    """A hook saw secrets redacted; when it hands the marker back, the real value stays."""
    merged = dict(current)
    for key, value in replaced.items():
        if key in SECRET_FIELDS and value in (REDACTED, "", None):
            continue
        merged[key] = value
    return merged


def object_hooks_run_after(
    *, object_type: str, operation: str, obj: dict[str, Any], actor_id: int | None = None
) -> None:
    """Tell the `after_<operation>` chain; failures are logged and do not undo the committed write."""
    namespace = str(obj.get("namespace") or "")
    hook_type = f"after_{operation}"
    operation_id = ""
    for reg in _registrations(object_type, hook_type, namespace):
        request = _request(hook_type, object_type, obj, actor_id, operation_id)
        operation_id = request.operation_id
        request.plugin_id = reg.plugin_id
        try:
            _call(reg, request, namespace)
        except PluginCallError as exc:
            logger.warning("after hook %s %s failed: %s", reg.plugin.slug, hook_type, exc.kind)


def guarded_write(
    *,
    object_type: str,
    operation: str,
    view: dict[str, Any],
    actor_id: int | None,
    apply: Callable[[HookOutcome], M],
    after_view: Callable[[M], dict[str, Any]],
    hook_outcome: HookOutcome | None = None,
) -> M:
    """Before hooks -> `apply` in one transaction -> after hooks once it committed.

    `hook_outcome` lets the admin run the before hooks while validating its form (so a refusal is shown as a
    form error) and hand the result over here instead of running them twice.
    """
    outcome = hook_outcome or object_hooks_run_before(
        object_type=object_type, operation=operation, obj=view, actor_id=actor_id
    )
    with transaction.atomic():
        result = apply(outcome)
        payload = after_view(result)
        transaction.on_commit(
            lambda: object_hooks_run_after(object_type=object_type, operation=operation, obj=payload, actor_id=actor_id)
        )
    return result


def guarded_delete(
    *,
    object_type: str,
    instance: Any,
    view: dict[str, Any],
    changed_namespaces: Callable[[], list[str]],
    label: str,
    actor_id: int | None = None,
    hook_outcome: HookOutcome | None = None,
) -> None:
    """Delete `instance` behind the `before_delete` / `after_delete` hooks, recording a config change for every
    namespace `changed_namespaces()` names (asked inside the transaction, before the row goes).

    The after hooks receive `view`, the object as it was: after a delete there is nothing else to show them.
    """
    from control_plane.sync.services import config_change_record

    def apply(outcome: HookOutcome) -> dict[str, Any]:
        namespaces = sorted(set(changed_namespaces()))
        instance.delete()
        for namespace in namespaces:
            config_change_record(namespace=namespace, reason=f"{label} deleted")
        return view

    guarded_write(
        object_type=object_type,
        operation="delete",
        view=view,
        actor_id=actor_id,
        apply=apply,
        after_view=lambda deleted: deleted,
        hook_outcome=hook_outcome,
    )
