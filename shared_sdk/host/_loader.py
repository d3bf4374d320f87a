"""Turn an import path or an entry-point name into a plugin instance.

Callers check the source first (`PluginSources`, strings and metadata only); this module is where importing
happens, so it runs only for a source that passed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from ..errors import PluginLoadError

__all__ = ["ENTRY_POINT_GROUP", "ENTRY_POINT_PREFIX", "load_plugin_object"]

ENTRY_POINT_GROUP = "fjordgate.plugins"
ENTRY_POINT_PREFIX = "entrypoint:"
"""`PluginSpec.import_path` of an entry point: `entrypoint:pii-redactor`."""


def load_plugin_object(slug: str, import_path: str, *, allows_module: Callable[[str], bool] | None = None) -> Any:
    """`pkg.module:Name` or `entrypoint:NAME` -> a plugin instance.

    `Name` may be a plugin class (instantiated with no arguments), a factory function, or an instance. With
    `allows_module`, an import path's `Name` must also be *defined* in an allowed module before it is called:
    a module under an allowed root that merely imports `os.abort` does not make `module:abort` a plugin.
    """
    if import_path.startswith(ENTRY_POINT_PREFIX):
        name = import_path.removeprefix(ENTRY_POINT_PREFIX)
        matches = list(entry_points(group=ENTRY_POINT_GROUP, name=name))
        if not matches:
            raise PluginLoadError(slug, f"no entry point {name!r} in group {ENTRY_POINT_GROUP!r}")
        try:
            target = matches[0].load()
        except Exception as exc:
            raise PluginLoadError(slug, f"entry point {name!r} failed to import: {type(exc).__name__}: {exc}") from exc
    else:
        module_name, sep, attr = import_path.partition(":")
        if not sep or not module_name or not attr:
            raise PluginLoadError(slug, f"import path {import_path!r} must look like 'package.module:ClassName'")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginLoadError(slug, f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
        target = module
        for part in attr.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise PluginLoadError(slug, f"module {module_name!r} has no attribute {attr!r}") from None
        defined_in = getattr(target, "__module__", None) or type(target).__module__
        if allows_module is not None and not allows_module(defined_in):
            raise PluginLoadError(
                slug, f"{import_path!r} names {defined_in}.{attr}, which is not under an allowed import root"
            )
    if callable(target) and (isinstance(target, type) or not hasattr(target, "name")):
        try:
            target = target()
        except Exception as exc:
            raise PluginLoadError(slug, f"constructing {import_path!r} failed: {type(exc).__name__}: {exc}") from exc
    return target
