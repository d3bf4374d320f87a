"""Writes to tools, datasources, tags and model prices. Tools and datasources run object hooks."""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model

from control_plane.budgets.currency_rule import price_currency_errors, price_delete_currency_errors
from control_plane.hooks.services import REDACTED, HookOutcome, field_default, guarded_delete, guarded_write
from control_plane.llms.secrets import vendor_key_encrypt
from control_plane.sync.services import config_change_record

from .models import Datasource, ModelPrice, Tag, Tool

__all__ = [
    "DATASOURCE_FIELDS",
    "TOOL_FIELDS",
    "datasource_create",
    "datasource_delete",
    "datasource_update",
    "model_price_delete",
    "model_price_upsert",
    "resource_hook_view",
    "tag_delete",
    "tag_get_or_create",
    "tag_rename",
    "tool_create",
    "tool_delete",
    "tool_update",
]

TOOL_FIELDS = (
    "name",
    "slug",
    "description",
    "namespace",
    "privacy_score",
    "openapi_spec",
    "operations",
    "is_active",
    "metadata",
)
DATASOURCE_FIELDS = (
    "name",
    "slug",
    "description",
    "namespace",
    "privacy_score",
    "vector_store",
    "embedding_llm_id",
    "embedder",
    "is_active",
    "metadata",
)


def resource_hook_view(
    model: type[Model], fields: tuple[str, ...], obj: Model | None, data: dict | None = None
) -> dict:
    """The resource as object hooks see it; a tool's `auth_key` is a redaction marker (or the new key in clear,
    which hooks see redacted), as an LLM's `api_key` is."""
    view: dict[str, Any] = {"id": obj.pk if obj else None}
    for name in fields:
        view[name] = getattr(obj, name) if obj else field_default(model, name)
    if model is Tool:
        view["auth_key"] = REDACTED if isinstance(obj, Tool) and obj.auth_key_encrypted else ""
    for key, value in (data or {}).items():
        if key in fields or (model is Tool and key == "auth_key"):
            view[key] = value
    return view


def _apply_auth_key(tool: Tool, obj: dict[str, Any]) -> None:
    """A new key in clear is encrypted; "" removes the key; the marker (or no key given) keeps it."""
    key = obj.get("auth_key")
    if isinstance(key, str) and key != REDACTED:
        tool.auth_key_encrypted = vendor_key_encrypt(key.strip())


Resource = TypeVar("Resource", Tool, Datasource)


def _apply(instance: Resource, fields: tuple[str, ...], outcome: HookOutcome) -> Resource:
    for name in fields:
        if name in outcome.obj:
            setattr(instance, name, outcome.obj[name])
    if outcome.metadata:
        instance.metadata = {**(instance.metadata or {}), **outcome.metadata}
    if isinstance(instance, Tool):
        _apply_auth_key(instance, outcome.obj)
    instance.full_clean()
    instance.save()
    return instance


def _create(model, fields, object_type, data, actor_id, hook_outcome):
    def apply(outcome: HookOutcome):
        return _apply(model(), fields, outcome)

    return guarded_write(
        object_type=object_type,
        operation="create",
        view=resource_hook_view(model, fields, None, data),
        actor_id=actor_id,
        apply=apply,
        after_view=lambda obj: resource_hook_view(model, fields, obj),
        hook_outcome=hook_outcome,
    )


def _update(model, fields, object_type, instance, data, actor_id, hook_outcome):
    from control_plane.applications.services import app_check_privacy

    def apply(outcome: HookOutcome):
        locked = model.objects.select_for_update().get(pk=instance.pk)
        result = _apply(locked, fields, outcome)
        for app in result.apps.all():  # a raised privacy score may break an app that holds this resource
            app_check_privacy(app=app)
            config_change_record(namespace=app.namespace, reason=f"{object_type} {result.slug} of app changed")
        return result

    return guarded_write(
        object_type=object_type,
        operation="update",
        view=resource_hook_view(model, fields, instance, data),
        actor_id=actor_id,
        apply=apply,
        after_view=lambda obj: resource_hook_view(model, fields, obj),
        hook_outcome=hook_outcome,
    )


def _delete(model, fields, object_type, instance, actor_id, hook_outcome):
    guarded_delete(
        object_type=object_type,
        instance=instance,
        view=resource_hook_view(model, fields, instance),
        changed_namespaces=lambda: [app.namespace for app in instance.apps.all()],  # the apps that held it
        label=f"{object_type} {instance.slug}",
        actor_id=actor_id,
        hook_outcome=hook_outcome,
    )


def tool_create(*, data: dict, actor_id: int | None = None, hook_outcome: HookOutcome | None = None) -> Tool:
    return _create(Tool, TOOL_FIELDS, "tool", data, actor_id, hook_outcome)


def tool_update(
    *, tool: Tool, data: dict, actor_id: int | None = None, hook_outcome: HookOutcome | None = None
) -> Tool:
    return _update(Tool, TOOL_FIELDS, "tool", tool, data, actor_id, hook_outcome)


def tool_delete(*, tool: Tool, actor_id: int | None = None, hook_outcome: HookOutcome | None = None) -> None:
    _delete(Tool, TOOL_FIELDS, "tool", tool, actor_id, hook_outcome)


def datasource_create(
    *, data: dict, actor_id: int | None = None, hook_outcome: HookOutcome | None = None
) -> Datasource:
    return _create(Datasource, DATASOURCE_FIELDS, "datasource", data, actor_id, hook_outcome)


def datasource_update(
    *, datasource: Datasource, data: dict, actor_id: int | None = None, hook_outcome: HookOutcome | None = None
) -> Datasource:
    return _update(Datasource, DATASOURCE_FIELDS, "datasource", datasource, data, actor_id, hook_outcome)


def datasource_delete(
    *, datasource: Datasource, actor_id: int | None = None, hook_outcome: HookOutcome | None = None
) -> None:
    _delete(Datasource, DATASOURCE_FIELDS, "datasource", datasource, actor_id, hook_outcome)


def tag_get_or_create(*, name: str) -> Tag:
    tag, _ = Tag.objects.get_or_create(name=name)
    return tag


@transaction.atomic
def tag_rename(*, tag: Tag, name: str) -> Tag:
    """Tags travel in app snapshots (edges route and log by them): every namespace using the tag changes."""
    tag = Tag.objects.select_for_update().get(pk=tag.pk)  # the stored name (a bound admin form changed ours)
    if name == tag.name:
        return tag
    old_name = tag.name
    tag.name = name
    tag.full_clean()
    tag.save(update_fields=["name"])
    for namespace in sorted(set(tag.apps.values_list("namespace", flat=True))):
        config_change_record(namespace=namespace, reason=f"tag {old_name} renamed to {name}")
    return tag


@transaction.atomic
def model_price_upsert(*, data: dict, price: ModelPrice | None = None) -> ModelPrice:
    """Create or change a price; prices are global, so every namespace's config changes."""
    price = price or ModelPrice()
    for name in (
        "vendor",
        "model",
        "prompt_per_million",
        "completion_per_million",
        "cache_read_per_million",
        "cache_write_per_million",
        "currency",
        "max_output_tokens",
        "max_input_tokens",
    ):
        if name in data:
            setattr(price, name, data[name])
    price.full_clean()
    errors = price_currency_errors(vendor=price.vendor, model=price.model, currency=price.currency, price_id=price.pk)
    if errors:
        raise ValidationError({"currency": errors})
    price.save()
    config_change_record(namespace="", reason=f"price {price} changed")
    return price


@transaction.atomic
def model_price_delete(*, price: ModelPrice) -> None:
    label = str(price)
    errors = price_delete_currency_errors(price=price)
    if errors:
        raise ValidationError({"currency": errors})
    price.delete()
    config_change_record(namespace="", reason=f"price {label} deleted")


@transaction.atomic
def tag_delete(*, tag: Tag) -> None:
    """Tags travel in app snapshots, so removing one changes the config of every namespace that used it."""
    namespaces = set(tag.apps.values_list("namespace", flat=True))
    tag.delete()
    for namespace in sorted(namespaces):
        config_change_record(namespace=namespace, reason="tag removed from apps")
