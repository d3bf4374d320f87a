"""The control plane's rules for where plugin code may come from (`shared_sdk.host.PluginSources`, from settings).

`plugin_source_check` runs before a plugin is described, i.e. before its code is imported or spawned: a refused
registration is a validation error on the offending field and runs nothing. The studio host applies the same
rules again on every load, so a row written around the services (SQL, an old version) is not loaded either.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from shared_sdk.host import ENTRY_POINT_PREFIX, PluginSourceRefused, PluginSources

__all__ = ["plugin_code_changes_note", "plugin_host_import_path", "plugin_source_check", "plugin_sources"]

IN_PROCESS_CODE_NOTE = (
    "New code of this in-process plugin runs only after the control-plane processes and the edges restart: a "
    "reload applies its new definition and config, but Python modules are imported once per process."
)
ISOLATED_CODE_NOTE = (
    "New code of this isolated plugin runs after its next reload (any change to it here, or a reload request "
    "to the edges): each reload starts a fresh process."
)


def plugin_sources() -> PluginSources:
    """The allow-list as configured now (read per call, so a settings override in tests applies)."""
    return PluginSources(
        import_roots=tuple(settings.FJORDGATE_PLUGIN_IMPORT_ROOTS),
        command_dirs=tuple(settings.FJORDGATE_PLUGIN_COMMAND_DIRS),
    )


def plugin_source_check(plugin: Any) -> None:
    """Raise `ValidationError` naming the field when `plugin` names code outside the allow-list (no import)."""
    sources = plugin_sources()
    try:
        if plugin.entry_point:
            sources.check_entry_point(plugin.entry_point)
        elif plugin.import_path:
            sources.check_import_path(plugin.import_path)
        else:
            sources.check_command(plugin.command)
    except PluginSourceRefused as exc:
        raise ValidationError({exc.field: exc.message}) from None


def plugin_host_import_path(plugin: Any) -> str | None:
    """`PluginSpec.import_path` for a `Plugin` row: `entrypoint:NAME`, the import path, or `None` (a command)."""
    if plugin.entry_point:
        return ENTRY_POINT_PREFIX + plugin.entry_point
    return plugin.import_path or None


def plugin_code_changes_note(plugin: Any) -> str:
    """What an operator must do for a new version of this plugin's code to run (API answers, admin messages)."""
    return ISOLATED_CODE_NOTE if plugin.command or plugin.isolated else IN_PROCESS_CODE_NOTE
