"""`fjordgate plugin new NAME`: scaffold a plugin package whose test passes before you change a line.

    python -m shared_sdk.scaffold my-plugin [--dest DIR]

Creates `DIR/my-plugin/` with the plugin module (a 20-line post-auth plugin with a config schema), an
isolated entry point (`python -m my_plugin`), a test using only `shared_sdk.testing`, README and CHANGELOG.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
import textwrap

__all__ = ["EXAMPLE_NAME", "SDK_DISTRIBUTION", "SDK_VERSION", "create_plugin", "main"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

EXAMPLE_NAME = "pii-guard"
"""The name `--help` suggests (a test checks the validator accepts it)."""

SDK_DISTRIBUTION = "fjordgate-sdk"
"""The distribution a scaffolded plugin depends on: the SDK alone (`shared_sdk/pyproject.toml`)."""
SDK_VERSION = "0.1"


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-")) + "Plugin"


def _files(name: str) -> dict[str, str]:
    pkg = name.replace("-", "_")
    cls = _class_name(name)
    return {
        "pyproject.toml": f"""\
            [build-system]
            requires = ["setuptools>=77"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "fjordgate-plugin-{name}"
            version = "0.1.0"
            description = "Fjordgate plugin {name}"
            requires-python = ">=3.11"
            dependencies = ["{SDK_DISTRIBUTION}>={SDK_VERSION}"]  # shared_sdk, the plugin SDK (no Django, no Starlette)

            [project.optional-dependencies]
            test = ["{SDK_DISTRIBUTION}[testing]>={SDK_VERSION}"]  # pytest and pytest-asyncio

            [tool.setuptools]
            packages = ["{pkg}"]

            [tool.pytest.ini_options]
            testpaths = ["tests"]
            asyncio_mode = "auto"
            asyncio_default_fixture_loop_scope = "function"
            """,
        "conftest.py": '''\
            """Makes the plugin package importable when pytest runs from this folder or from a parent project."""

            import pathlib
            import sys

            sys.path.insert(0, str(pathlib.Path(__file__).parent))
            ''',
        f"{pkg}/__init__.py": f'''\
            """Fjordgate plugin {name}."""

            from .plugin import NAME, {cls}

            __all__ = ["NAME", "{cls}"]
            ''',
        f"{pkg}/plugin.py": f'''\
            """{name}: tells the upstream which app is calling, in a header whose name is configurable."""

            from __future__ import annotations

            from typing import Any

            import msgspec

            from shared_sdk import BasePlugin, Context, EnrichedRequest, PluginResponse

            NAME = "{name}"


            class {cls}(BasePlugin):
                name = NAME
                version = "0.1.0"
                description = "Adds a header naming the calling app."

                def get_config_schema(self) -> dict[str, Any]:
                    return {{
                        "type": "object",
                        "properties": {{"header": {{"type": "string", "minLength": 1, "default": "x-fjordgate-app"}}}},
                        "additionalProperties": False,
                    }}

                async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse:
                    app = ctx.app.name if ctx.app is not None else "anonymous"
                    headers = {{**req.headers, self.config["header"]: app}}
                    return PluginResponse(modified=True, request=msgspec.structs.replace(req, headers=headers))
            ''',
        f"{pkg}/__main__.py": f'''\
            """Entry point when the host runs this plugin isolated: PluginSpec(command=["python", "-m", "{pkg}"])."""

            import shared_sdk

            from .plugin import {cls}

            shared_sdk.serve({cls}())
            ''',
        f"tests/test_{pkg}_plugin.py": f'''\
            """Runs the plugin through the real host and hook chain with in-memory services (no system needed)."""

            import pytest

            from shared_sdk import App, PluginConfigError
            from shared_sdk.testing import PipelineRunner, PluginHarness, make_request
            from {pkg} import NAME, {cls}


            async def test_names_the_calling_app_in_a_header():
                async with PipelineRunner({cls}()) as runner:
                    outcome = await runner.run(make_request("hi"), ctx=runner.context(app=App(id=1, name="billing")))
                assert outcome.status_code == 200
                assert outcome.upstream_request.headers["x-fjordgate-app"] == "billing"


            async def test_header_name_comes_from_config():
                async with PipelineRunner({cls}(), config={{NAME: {{"header": "x-caller"}}}}) as runner:
                    outcome = await runner.run(make_request("hi"))
                assert outcome.upstream_request.headers["x-caller"] == "anonymous"


            async def test_invalid_config_is_refused_before_the_plugin_starts():
                with pytest.raises(PluginConfigError, match="header"):
                    async with PluginHarness({cls}(), config={{"header": ""}}):
                        pass
            ''',
        "README.md": f"""\
            # {name}

            A Fjordgate plugin (post-auth): adds a header naming the calling app before the request goes upstream.

            ## Config

            | key | type | default | meaning |
            | --- | --- | --- | --- |
            | `header` | string | `x-fjordgate-app` | name of the header to set |

            ## Run

            - in-process: `PluginSpec(slug="{name}", import_path="{pkg}:{cls}")`
            - isolated: `PluginSpec(slug="{name}", command=["python", "-m", "{pkg}"])`

            ## Test

                pip install -e '.[test]'   # the plugin SDK (fjordgate-sdk) with pytest and pytest-asyncio
                pytest

            See `docs/plugins/` in the Fjordgate repository for every capability.
            """,
        "CHANGELOG.md": f"""\
            # Changelog of {name}

            ## 0.1.0

            - Created with `fjordgate plugin new {name}`.
            """,
    }


def create_plugin(name: str, dest: pathlib.Path) -> pathlib.Path:
    """Write the plugin package `name` under `dest`; returns its folder. Refuses to overwrite anything."""
    if not _NAME.match(name):
        raise ValueError(
            f"plugin name {name!r} must be lower-case letters and digits separated by '-' (e.g. {EXAMPLE_NAME})"
        )
    root = pathlib.Path(dest) / name
    if root.exists():
        raise FileExistsError(f"{root} already exists")
    for rel, text in _files(name).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fjordgate plugin new", description="Scaffold a Fjordgate plugin package.")
    parser.add_argument("name", help=f"plugin name, lower-case with dashes (e.g. {EXAMPLE_NAME})")
    parser.add_argument("--dest", default=".", help="folder to create the plugin in (default: current folder)")
    args = parser.parse_args(argv)
    try:
        root = create_plugin(args.name, pathlib.Path(args.dest))
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"created {root}\nnext: cd {root} && pip install -e '.[test]' && pytest")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
