"""Where plugin code may come from: plugin code is found, never named.

A registration that could name any code (`os:system`, `this:s`, `["/bin/sh", "-c", ...]`) would run that code as
soon as it is loaded or even described. So a host only loads:

- an **entry point** of group `fjordgate.plugins` declared by an installed distribution (`pii-redactor`); the
  operator chose what to install, so that is what may run;
- an **import path** `package.module:Name` whose module lies under one of the operator's import roots
  (`FJORDGATE_PLUGIN_IMPORT_ROOTS`, default: the bundled `plugins` package);
- a **command** whose program sits directly in one of the operator's command directories
  (`FJORDGATE_PLUGIN_COMMAND_DIRS`, default: none, so isolated plugins run by command are off until an operator
  names a directory of plugin programs).

Every rule here is checked with strings and installed-package metadata only: nothing is imported, nothing is
spawned, so a refused registration runs nothing. The control plane applies it before it describes (imports) a
plugin; every edge applies it again before it loads a plugin from a snapshot, whatever the snapshot says.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib.metadata import entry_points

from ..errors import FjordgateSDKError
from ._loader import ENTRY_POINT_GROUP, ENTRY_POINT_PREFIX

__all__ = [
    "DEFAULT_COMMAND_DIRS",
    "DEFAULT_IMPORT_ROOTS",
    "PluginSourceRefused",
    "PluginSources",
]

DEFAULT_IMPORT_ROOTS: tuple[str, ...] = ("plugins",)
DEFAULT_COMMAND_DIRS: tuple[str, ...] = ()

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
"""One public name: no dotted walk (`plugin:os.system`), no dunder (`plugin:__builtins__`)."""
_ENTRY_POINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_LENGTH = 300


class PluginSourceRefused(FjordgateSDKError):
    """A registration names code the operator's rules do not allow; `field` is the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class PluginSources:
    """The operator's rules for plugin code (see the module docstring)."""

    import_roots: tuple[str, ...] = DEFAULT_IMPORT_ROOTS
    command_dirs: tuple[str, ...] = DEFAULT_COMMAND_DIRS

    def __post_init__(self) -> None:
        for root in self.import_roots:
            if not _MODULE.fullmatch(root):
                raise ValueError(f"plugin import root {root!r} is not a dotted module name")
        for directory in self.command_dirs:
            if not os.path.isabs(directory):
                raise ValueError(f"plugin command directory {directory!r} is not an absolute path")
        object.__setattr__(self, "import_roots", tuple(self.import_roots))
        object.__setattr__(self, "command_dirs", tuple(os.path.normpath(d) for d in self.command_dirs))

    # -- the three sources ---------------------------------------------------------------------------------

    def check_entry_point(self, name: str) -> None:
        """`name` must be declared, once, in group `fjordgate.plugins` by an installed distribution."""
        if not isinstance(name, str) or not _ENTRY_POINT_NAME.fullmatch(name) or len(name) > _MAX_LENGTH:
            raise PluginSourceRefused("entry_point", f"{name!r} is not an entry-point name (like 'pii-redactor')")
        found = entry_points(group=ENTRY_POINT_GROUP, name=name)
        if not found:
            known = ", ".join(sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))) or "none"
            raise PluginSourceRefused(
                "entry_point",
                f"no installed distribution declares entry point {name!r} in group {ENTRY_POINT_GROUP!r} "
                f"(installed: {known})",
            )
        targets = {ep.value for ep in found}
        if len(targets) > 1:
            raise PluginSourceRefused(
                "entry_point", f"entry point {name!r} is declared several times, differently: {sorted(targets)}"
            )

    def check_import_path(self, import_path: str) -> None:
        """`package.module:Name` with the module under an allowed import root and `Name` one public name."""
        module, sep, attribute = import_path.partition(":") if isinstance(import_path, str) else ("", "", "")
        if not sep or not _MODULE.fullmatch(module) or not _ATTRIBUTE.fullmatch(attribute):
            raise PluginSourceRefused(
                "import_path", f"{import_path!r} must look like 'package.module:ClassName' (one public name)"
            )
        if len(import_path) > _MAX_LENGTH:
            raise PluginSourceRefused("import_path", f"an import path is at most {_MAX_LENGTH} characters")
        if not self.allows_module(module):
            raise PluginSourceRefused(
                "import_path",
                f"module {module!r} is not under an allowed import root ({', '.join(self.import_roots) or 'none'}); "
                f"register an installed entry point instead, or ask the operator to add its package to "
                f"FJORDGATE_PLUGIN_IMPORT_ROOTS",
            )

    def check_command(self, command: list[str]) -> None:
        """`command[0]` is an absolute path directly inside one of the allowed command directories."""
        if not isinstance(command, list | tuple) or not command or not all(isinstance(a, str) for a in command):
            raise PluginSourceRefused("command", "give the command as a non-empty list of strings")
        if any("\x00" in arg for arg in command):
            raise PluginSourceRefused("command", "the command contains a NUL character")
        if not self.command_dirs:
            raise PluginSourceRefused(
                "command",
                "isolated plugins run by command are disabled: the operator lists the directories of plugin "
                "programs in FJORDGATE_PLUGIN_COMMAND_DIRS (or register an entry point instead)",
            )
        program = command[0]
        if not os.path.isabs(program):
            raise PluginSourceRefused(
                "command", f"{program!r}: give the absolute path of a program in {', '.join(self.command_dirs)}"
            )
        if os.path.dirname(os.path.normpath(program)) not in self.command_dirs:
            raise PluginSourceRefused(
                "command",
                f"{program!r} is not in an allowed command directory ({', '.join(self.command_dirs)}, "
                f"FJORDGATE_PLUGIN_COMMAND_DIRS)",
            )

    def check(self, *, import_path: str | None = None, command: list[str] | None = None) -> None:
        """Check a host spec's source (`import_path` may be `entrypoint:NAME`); raises `PluginSourceRefused`."""
        if import_path:
            if import_path.startswith(ENTRY_POINT_PREFIX):
                self.check_entry_point(import_path.removeprefix(ENTRY_POINT_PREFIX))
            else:
                self.check_import_path(import_path)
        if command:
            self.check_command(command)
        if not import_path and not command:
            raise PluginSourceRefused("import_path", "a plugin needs an entry point, an import path or a command")

    def allows_module(self, module: str) -> bool:
        return any(module == root or module.startswith(root + ".") for root in self.import_roots)
