"""Registering and changing plugins.

Plugin code is found, not named: a registration names an installed entry point, an import path under an allowed
root, or a command in an allowed directory (`sources.py`), and that is checked with strings and package metadata
before anything is imported or spawned, so a refused registration runs nothing.

What a plugin *can* do (capabilities, manifest, config schema, object-hook registrations) is asked from the
plugin itself through the studio host on every register/update, and its config is validated against its JSON
Schema before anything is saved: a bad config is a validation error listing every problem, never a plugin that
fails at the edge later.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from control_plane.hooks.models import ObjectHookRegistration
from control_plane.sync.services import config_change_record
from shared_sdk import FjordgateSDKError, PluginConfigError
from shared_sdk.host._config import validate_config

from .merge import deep_merge
from .models import Plugin
from .sources import plugin_source_check

__all__ = [
    "PLUGIN_FIELDS",
    "plugin_config_hash",
    "plugin_delete",
    "plugin_code_source_clean",
    "plugin_describe_into",
    "plugin_get_resource",
    "plugin_initialize_check",
    "plugin_override_check",
    "plugin_register",
    "plugin_source_field",
    "plugin_update",
    "plugin_validate_config",
]

logger = logging.getLogger(__name__)

PLUGIN_FIELDS = (
    "slug",
    "name",
    "version",
    "description",
    "entry_point",
    "import_path",
    "isolated",
    "command",
    "config",
    "failure_policy",
    "timeout_ms",
    "namespace",
    "active",
    "global_order",
    "extra_scopes",
)


def plugin_config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def plugin_validate_config(*, plugin: Plugin, config: dict[str, Any], partial_over: dict | None = None) -> dict:
    """Validate `config` (merged over `partial_over` when it is an override) against the plugin's schema."""
    if not isinstance(config, dict):
        raise ValidationError({"config": "Plugin config must be a JSON object."})
    merged = deep_merge(partial_over, config) if partial_over is not None else config
    try:
        return validate_config(plugin.slug, plugin.config_schema or None, merged)
    except PluginConfigError as exc:
        raise ValidationError({"config": exc.errors}) from None
    except FjordgateSDKError as exc:
        raise ValidationError({"config": str(exc)}) from None


def plugin_source_field(plugin: Plugin) -> str:
    """The field that names the plugin's code (where a load error belongs in a form or an API answer)."""
    if plugin.entry_point:
        return "entry_point"
    return "import_path" if plugin.import_path else "command"


CODE_SOURCE_FIELDS = ("entry_point", "import_path", "command")
ONE_CODE_SOURCE = "Set exactly one of entry_point (installed plugin), import_path (in-process) and command (isolated)."


def plugin_code_source_clean(plugin: Plugin) -> None:
    """Exactly one code source, of the right shape and inside the operator's allow-list; imports nothing."""
    plugin.entry_point = plugin.entry_point or ""
    plugin.import_path = plugin.import_path or ""
    plugin.command = plugin.command or []
    if sum(map(bool, (plugin.entry_point, plugin.import_path, plugin.command))) != 1:
        raise ValidationError(ONE_CODE_SOURCE)
    if not isinstance(plugin.command, list) or not all(isinstance(part, str) for part in plugin.command):
        raise ValidationError({"command": "Give the command as a list of strings."})
    if plugin.command and plugin.isolated:
        raise ValidationError({"isolated": "A command always runs isolated; set isolated with an entry point."})
    plugin_source_check(plugin)


def plugin_describe_into(plugin: Plugin) -> None:
    """Fill the discovered fields from the plugin itself (raises ValidationError when it cannot be loaded).

    The code source is checked first: this is the first place a registration's code runs.
    """
    from .runtime import plugin_describe

    plugin_code_source_clean(plugin)
    try:
        info = plugin_describe(plugin)
    except FjordgateSDKError as exc:
        raise ValidationError({plugin_source_field(plugin): str(exc)}) from None
    plugin.capabilities = sorted(info["capabilities"])
    plugin.manifest = info["manifest"]
    plugin.config_schema = info["config_schema"] or {}
    plugin.hook_registrations = info["hook_registrations"]
    if not plugin.version:
        plugin.version = info["version"]
    if not plugin.description:
        plugin.description = info["description"]
    if not plugin.name:
        plugin.name = info["name"] or plugin.slug


STUDIO_LOADED = frozenset(
    {
        "pre_auth",
        "post_auth",
        "response",
        "ui_provider",
        "portal_ui",
        "agent",
        "object_hooks",
        "scheduler",
        "edge_payload",
        "resource_provider",
        "session_aware",
    }
)
"""Capabilities for which the studio itself loads a plugin (its calls, LLM chains, events). A plugin with none of
these (an auth plugin, a data collector, custom endpoints) runs at the edges only: its `initialize` may need what
only an edge has (a log path, a socket), so the studio does not try it; an edge that cannot load it lists it under
`plugins_not_loaded` in `/ready` and logs why."""


def plugin_initialize_check(plugin: Plugin, config: dict[str, Any] | None = None) -> None:
    """Refuse an active registration whose plugin the studio loads and whose `initialize` fails with its config
    (`config` when given: an LLM's override merged over it, `plugin_override_check`), or, without `config`, with one
    of the configs its LLMs' overrides make of it (`_overrides_check`).

    Registering described the plugin and validated its config against its schema, but never initialized it: a
    plugin refusing its config there (a network that does not parse, a missing key) was registered with 201 and then
    failed at every call. The trial load is the studio's own (`runtime.plugin_initialize_trial`)."""
    if not plugin.active or not STUDIO_LOADED.intersection(plugin.capabilities or ()):
        return
    scopes = plugin.extra_scopes or []
    if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
        return  # the model's own validation refuses it (the admin form's clean runs before it)
    from .runtime import plugin_initialize_trial

    try:
        plugin_initialize_trial(plugin, config)
    except FjordgateSDKError as exc:
        raise ValidationError({"config": f"the plugin failed to initialize with this config: {exc}"}) from None
    if config is None:
        _overrides_check(plugin)


def _overrides_check(plugin: Plugin) -> None:
    """Initialize the plugin with each distinct config its active LLM bindings' overrides make of its own.

    Why: an override is tried when it is written, but against the plugin as it was then; a plugin activated after
    its overrides were written (an inactive plugin is not tried), or whose config or code changed under them, would
    otherwise leave a `slug@llm` instance that fails to load at every call on that LLM."""
    from control_plane.llms.models import LLMPluginBinding

    bindings = LLMPluginBinding.objects.filter(plugin__slug=plugin.slug, is_active=True).exclude(config_override={})
    tried: list[dict[str, Any]] = []
    for llm_slug, override in bindings.order_by("llm__slug").values_list("llm__slug", "config_override"):
        merged = deep_merge(plugin.config, override)
        if merged == plugin.config or merged in tried:
            continue
        tried.append(merged)
        try:
            plugin_initialize_check(plugin, merged)
        except ValidationError as exc:
            (message,) = exc.message_dict["config"]
            raise ValidationError({"config": f"with LLM {llm_slug!r}'s config_override, {message}"}) from None


def plugin_override_check(*, plugin: Plugin, override: Any, initialize: bool = True) -> None:
    """Refuse an LLM's config override of `plugin` as its own config is refused: the merged config against the
    plugin's schema, then (unless `initialize` is False), when it differs from the plugin's own,
    `plugin_initialize_check` with it. Raises a ValidationError on `config_override`.

    Why: an edge and the studio load a binding whose override changes the config as an instance of its own
    (`slug@llm`, the merged config); an override its `initialize` refused was taken, and that instance then failed to
    load at every call on the LLM. The schema check alone let it through."""
    try:
        plugin_validate_config(plugin=plugin, config=override, partial_over=plugin.config)
        merged = deep_merge(plugin.config, override)
        if initialize and override and merged != plugin.config:  # the edges' and the studio's `slug@llm` rule
            plugin_initialize_check(plugin, merged)
    except ValidationError as exc:
        raise ValidationError({"config_override": exc.message_dict.get("config", exc.messages)}) from None


def _sync_hook_registrations(plugin: Plugin) -> None:
    ObjectHookRegistration.objects.filter(plugin=plugin).delete()
    seen = set()
    for reg in plugin.hook_registrations:
        for hook_type in reg.get("hook_types", []):
            key = (reg.get("object_type"), hook_type)
            if key in seen or key[0] not in ObjectHookRegistration.ObjectType.values:
                continue
            if hook_type not in ObjectHookRegistration.HookType.values:
                continue
            seen.add(key)
            ObjectHookRegistration.objects.create(
                plugin=plugin, object_type=key[0], hook_type=hook_type, priority=int(reg.get("priority", 100))
            )


def _after_commit(plugin_slug: str) -> None:
    from .runtime import plugin_reload

    try:
        plugin_reload(plugin_slug)
    except FjordgateSDKError as exc:
        logger.warning("studio host could not reload plugin %s: %s", plugin_slug, exc)


def _schedules_sync(plugin: Plugin) -> None:
    try:
        from control_plane.schedules import services as schedule_services
    except ImportError:
        return
    sync = getattr(schedule_services, "schedules_sync_from_manifest", None)
    if sync is not None:
        sync(plugin=plugin)


def _apply(plugin: Plugin, data: dict[str, Any]) -> Plugin:
    for name in PLUGIN_FIELDS:
        if name in data:
            setattr(plugin, name, data[name])
    plugin.extra_scopes = list(plugin.extra_scopes or [])  # an empty admin field arrives as None
    plugin_code_source_clean(plugin)
    plugin.full_clean(exclude=["name"] if not plugin.name else None)
    plugin_describe_into(plugin)
    plugin.config = plugin_validate_config(plugin=plugin, config=plugin.config or {})
    plugin_initialize_check(plugin)
    plugin.save()
    _sync_hook_registrations(plugin)
    _schedules_sync(plugin)
    config_change_record(namespace=plugin.namespace, reason=f"plugin {plugin.slug} changed")
    transaction.on_commit(lambda: _after_commit(plugin.slug))
    return plugin


@transaction.atomic
def plugin_register(*, data: dict[str, Any]) -> Plugin:
    return _apply(Plugin(), data)


@transaction.atomic
def plugin_update(*, plugin: Plugin, data: dict[str, Any]) -> Plugin:
    old_namespace = plugin.namespace
    result = _apply(Plugin.objects.select_for_update().get(pk=plugin.pk), data)
    if old_namespace != result.namespace:
        config_change_record(namespace=old_namespace, reason=f"plugin {result.slug} moved out")
    return result


@transaction.atomic
def plugin_delete(*, plugin: Plugin) -> None:
    namespaces = {plugin.namespace, *plugin.llm_bindings.values_list("llm__namespace", flat=True)}
    slug = plugin.slug
    plugin.delete()
    for namespace in sorted(namespaces):
        config_change_record(namespace=namespace, reason=f"plugin {slug} deleted")
    transaction.on_commit(lambda: _after_commit(slug))


def plugin_get_resource(*, plugin: Plugin, type_slug: str, resource_id: str):
    """A resource instance from a resource-provider plugin (`None` when it does not exist)."""
    from .runtime import call_plugin

    try:
        return call_plugin(plugin.slug, "get_resource", type_slug, resource_id)
    except FjordgateSDKError as exc:
        raise ValidationError({"plugin_resources": f"plugin {plugin.slug!r} could not be asked: {exc}"}) from None
