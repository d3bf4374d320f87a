"""`python -m shared_sdk.isolated.run package.module:ClassName`: serve an importable plugin class isolated.

What the host runs for `PluginSpec(import_path=..., isolated=True)`, so a plugin written for in-process use
runs isolated without its own `__main__`.
"""

from __future__ import annotations

import sys

from ..host._loader import load_plugin_object
from .child import serve


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m shared_sdk.isolated.run package.module:ClassName\n")
        raise SystemExit(2)
    serve(load_plugin_object(args[0], args[0]))


if __name__ == "__main__":
    main()
