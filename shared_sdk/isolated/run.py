"""`python -m shared_sdk.isolated.run package.module:ClassName [--import-roots a,b]`: serve an importable plugin
class isolated.

What the host runs for `PluginSpec(import_path=..., isolated=True)`, so a plugin written for in-process use
runs isolated without its own `__main__`. A host with an allow-list for plugin code (`PluginSources`) passes its
import roots: the named object must be *defined* under one of them, as in process (`load_plugin_object`), not
only imported into an allowed module (`plugins.some.plugin:time` would serve the `time` module).
"""

from __future__ import annotations

import sys

from ..host._loader import load_plugin_object
from ..host.sources import PluginSources
from .child import serve

_USAGE = "usage: python -m shared_sdk.isolated.run package.module:ClassName [--import-roots a,b]\n"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 3 and args[1] == "--import-roots":
        roots = PluginSources(import_roots=tuple(r for r in args[2].split(",") if r), command_dirs=())
        allows = roots.allows_module
    elif len(args) == 1:
        allows = None
    else:
        sys.stderr.write(_USAGE)
        raise SystemExit(2)
    serve(load_plugin_object(args[0], args[0], allows_module=allows))


if __name__ == "__main__":
    main()
