"""Writes to LLMs and their plugin chains. Every write runs the object hooks and records a config change."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from control_plane.budgets.currency_rule import llm_billing_currencies, llm_currency_errors
from control_plane.hooks.services import REDACTED, HookOutcome, field_default, guarded_delete, guarded_write
from control_plane.sync.services import config_change_record

from .models import LLM, LLMPluginBinding
from .presets import vendor_settings_check
from .secrets import vendor_key_edge_rotate, vendor_key_encrypt, vendor_key_for_edge

__all__ = [
    "LLM_FIELDS",
    "PluginChainItemRefused",
    "llm_create",
    "llm_delete",
    "llm_edge_keys_rotate",
    "llm_hook_view",
    "llm_set_plugin_chain",
    "llm_update",
]

LLM_FIELDS = (
    "name",
    "slug",
    "vendor",
    "api_endpoint",
    "default_model",
    "allowed_models",
    "privacy_score",
    "is_active",
    "namespace",
    "metadata",
    "fallbacks",
    "max_retries",
    "connect_timeout_s",
    "first_byte_timeout_s",
    "max_response_bytes",
    "weight",
    "priority",
    "breaker_cooldown_s",
)


def llm_hook_view(llm: LLM | None, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The LLM as object hooks see it (SDK `LLM` fields plus ours); `api_key` is a redaction marker."""
    view: dict[str, Any] = {"id": llm.pk if llm else None}
    for name in LLM_FIELDS:
        view[name] = getattr(llm, name) if llm else field_default(LLM, name)
    view["api_key"] = REDACTED if llm and llm.api_key_encrypted else ""
    for key, value in (data or {}).items():
        if key in LLM_FIELDS or key == "api_key":
            view[key] = value
    return view


def _validate_patterns(patterns: Any) -> None:
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ValidationError({"allowed_models": "Give a list of regular expressions."})
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValidationError({"allowed_models": f"{pattern!r} is not a valid regular expression: {exc}"}) from None


def _validate_fallbacks(llm: LLM) -> None:
    if not isinstance(llm.fallbacks, list):
        raise ValidationError({"fallbacks": "Give a list of {llm_slug, model} objects."})
    for item in llm.fallbacks:
        if not isinstance(item, dict) or not isinstance(item.get("llm_slug"), str):
            raise ValidationError({"fallbacks": "Each fallback needs an llm_slug."})
        if item["llm_slug"] == llm.slug:
            raise ValidationError({"fallbacks": "An LLM cannot fall back to itself."})
        if not LLM.objects.filter(slug=item["llm_slug"]).exists():
            raise ValidationError({"fallbacks": f"No LLM with slug {item['llm_slug']!r}."})


def _apply(llm: LLM, outcome: HookOutcome) -> LLM:
    obj = outcome.obj
    for name in LLM_FIELDS:
        if name in obj:
            setattr(llm, name, obj[name])
    if outcome.metadata:
        llm.metadata = {**(llm.metadata or {}), **outcome.metadata}
    api_key = obj.get("api_key")
    if isinstance(api_key, str) and api_key != REDACTED:
        vendor_settings_check(llm, api_key)
        llm.api_key_encrypted = vendor_key_encrypt(api_key)
        llm.api_key_edge_encrypted = vendor_key_for_edge(llm.api_key_encrypted)
    _validate_patterns(llm.allowed_models)
    vendor_settings_check(llm, None)
    llm.full_clean()
    _validate_fallbacks(llm)
    llm.save()
    return llm


def _check_apps_privacy(llm: LLM) -> None:
    """Lowering an LLM's privacy score may not leave an app holding a resource above its LLMs' maximum."""
    from control_plane.applications.services import app_check_privacy

    for app in llm.apps.all():
        app_check_privacy(app=app)


def llm_create(*, data: dict[str, Any], actor_id: int | None = None, hook_outcome: HookOutcome | None = None) -> LLM:
    """`data` holds model fields plus `api_key` in clear (encrypted here, never stored or echoed in clear)."""

    def apply(outcome: HookOutcome) -> LLM:
        llm = _apply(LLM(), outcome)
        config_change_record(namespace=llm.namespace, reason=f"llm {llm.slug} created")
        return llm

    return guarded_write(
        object_type="llm",
        operation="create",
        view=llm_hook_view(None, data),
        actor_id=actor_id,
        apply=apply,
        after_view=llm_hook_view,
        hook_outcome=hook_outcome,
    )


def llm_update(
    *, llm: LLM, data: dict[str, Any], actor_id: int | None = None, hook_outcome: HookOutcome | None = None
) -> LLM:
    """Partial update: fields absent from `data` keep their value; `api_key=""` removes the key."""
    old_namespace = llm.namespace

    def apply(outcome: HookOutcome) -> LLM:
        locked = LLM.objects.select_for_update().get(pk=llm.pk)
        billed_in = llm_billing_currencies(llm=locked)
        if outcome.obj.get("api_key") == "":
            locked.api_key_encrypted = ""
            locked.api_key_edge_encrypted = ""
        result = _apply(locked, outcome)
        _check_apps_privacy(result)
        currency_errors = llm_currency_errors(llm=result, before=billed_in)
        if currency_errors:
            raise ValidationError(currency_errors, code="currency")
        config_change_record(namespace=result.namespace, reason=f"llm {result.slug} updated")
        if old_namespace != result.namespace:
            config_change_record(namespace=old_namespace, reason=f"llm {result.slug} moved out")
        return result

    return guarded_write(
        object_type="llm",
        operation="update",
        view=llm_hook_view(llm, data),
        actor_id=actor_id,
        apply=apply,
        after_view=llm_hook_view,
        hook_outcome=hook_outcome,
    )


def _check_delete_privacy(llm: LLM) -> None:
    """Refuse to delete an LLM when an app holding it would be left with a resource (tool, datasource, plugin
    resource) scored above its remaining LLMs' maximum (0 when none remains). Refusing, not detaching: which
    resource an app should lose is the app owner's decision, so the error names the app and the resource."""
    from control_plane.applications.services import privacy_errors

    for app in llm.apps.order_by("name"):
        errors = privacy_errors(
            llm_ids=list(app.llms.exclude(pk=llm.pk).values_list("pk", flat=True)),
            tool_ids=list(app.tools.values_list("pk", flat=True)),
            datasource_ids=list(app.datasources.values_list("pk", flat=True)),
            resources=list(app.plugin_resources.values("resource_type", "resource_id", "privacy_score")),
        )
        if errors:
            raise ValidationError(
                f"LLM {llm.slug!r} cannot be deleted: app {app.name!r} would be left holding more private "
                f"data than its other LLMs may see. {errors[0]}",
                code="privacy_rule",
            )


def llm_delete(*, llm: LLM, actor_id: int | None = None, hook_outcome: HookOutcome | None = None) -> None:
    _check_delete_privacy(llm)
    guarded_delete(
        object_type="llm",
        instance=llm,
        view=llm_hook_view(llm),
        changed_namespaces=lambda: [llm.namespace],
        label=f"llm {llm.slug}",
        actor_id=actor_id,
        hook_outcome=hook_outcome,
    )


class PluginChainItemRefused(ValidationError):
    """One item of a chain refused: `index` is its place in the chain as given, the errors name its fields
    (`config_override`), so the API can answer them on that item and the admin on its row."""

    def __init__(self, index: int, errors: dict[str, Any]) -> None:
        super().__init__(errors)
        self.index = index


@transaction.atomic
def llm_set_plugin_chain(*, llm: LLM, chain: list[dict[str, Any]]) -> list[LLMPluginBinding]:
    """Replace the LLM's chain with `chain` (items: plugin, order_index, is_active, config_override).

    Each active item's override is checked as the plugin's own config is (`plugin_override_check`: schema, then
    `initialize` with the merged config); an item the LLM already holds as it is (same plugin, override and state)
    is not initialized again, so re-sending a chain does not load every plugin of it."""
    from control_plane.plugins.services import plugin_override_check

    held = [(b.plugin_id, b.config_override, b.is_active) for b in llm.plugin_bindings.all()]
    llm.plugin_bindings.all().delete()
    bindings = []
    for index, item in enumerate(chain):
        plugin = item.get("plugin") if isinstance(item, dict) else None
        if plugin is None:
            raise ValidationError({"plugin_chain": f"Item {index} names no plugin."})
        override = item.get("config_override") or {}
        is_active = item.get("is_active", True)
        # inactive, it runs nowhere (tried once activated); held as it is, it was tried when written
        initialize = is_active and (plugin.pk, override, is_active) not in held
        try:
            plugin_override_check(plugin=plugin, override=override, initialize=initialize)
        except ValidationError as exc:
            raise PluginChainItemRefused(index, exc.message_dict) from None
        bindings.append(
            LLMPluginBinding.objects.create(
                llm=llm,
                plugin=plugin,
                order_index=item.get("order_index", index),
                is_active=is_active,
                config_override=override,
            )
        )
    config_change_record(namespace=llm.namespace, reason=f"llm {llm.slug} plugin chain changed")
    return bindings


@transaction.atomic
def llm_edge_keys_rotate(*, old_edge_secret: str | None = None) -> dict[str, list[str]]:
    """Re-encrypt every LLM's edge copy of its vendor key under the current FJORDGATE_EDGE_SECRET.

    Each copy is re-made from the at-rest key (`FJORDGATE_SECRET_KEY`), or, given `old_edge_secret`, by
    decrypting the stored edge copy with it (a copy already under the current secret is accepted too, so the
    rotation can be re-run). All or nothing: a key that cannot be opened aborts the whole rotation naming its LLM.
    Each namespace holding a changed LLM gets a config change, so its edges receive the new copies; the clear
    key never leaves this transaction. Returns the rotated LLM slugs by namespace.
    """
    from cryptography.fernet import Fernet, InvalidToken
    from django.core.exceptions import ImproperlyConfigured

    if old_edge_secret:
        try:
            Fernet(old_edge_secret)
        except ValueError:
            raise ValidationError("The old edge secret must be a url-safe base64 32-byte Fernet key.") from None
    rotated: dict[str, list[str]] = {}
    failed: list[str] = []
    for llm in LLM.objects.select_for_update().order_by("pk"):
        if not llm.api_key_encrypted and not llm.api_key_edge_encrypted:
            continue  # no key (a local model): nothing to carry
        try:
            if old_edge_secret and llm.api_key_edge_encrypted:
                edge_copy = vendor_key_edge_rotate(llm.api_key_edge_encrypted, old_edge_secret=old_edge_secret)
            else:
                edge_copy = vendor_key_for_edge(llm.api_key_encrypted)
        except (InvalidToken, ImproperlyConfigured) as exc:
            if isinstance(exc, ImproperlyConfigured) and not isinstance(exc.__cause__, InvalidToken):
                raise  # a missing or malformed secret in the settings: not this LLM's problem
            failed.append(llm.slug)
            continue
        LLM.objects.filter(pk=llm.pk).update(api_key_edge_encrypted=edge_copy)
        rotated.setdefault(llm.namespace, []).append(llm.slug)
    if failed:
        source = "the old edge secret (nor the current one)" if old_edge_secret else "any FJORDGATE_SECRET_KEY"
        raise ValidationError(
            f"Cannot decrypt the vendor key of LLM(s) {', '.join(failed)} with {source}; nothing changed."
        )
    for namespace, slugs in sorted(rotated.items()):
        config_change_record(namespace=namespace, reason=f"edge secret rotated for llm(s) {', '.join(slugs)}")
    return rotated
