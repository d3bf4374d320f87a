"""`fjordgate plugin new`: the scaffolded package's own test passes with plain pytest, run in its folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared_sdk.scaffold import create_plugin, main


def test_scaffolded_plugin_test_passes_with_plain_pytest(tmp_path):
    root = create_plugin("team-header", tmp_path)
    assert (root / "team_header" / "plugin.py").exists() and (root / "README.md").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_scaffolded_plugin_runs_isolated_via_its_main(tmp_path):
    root = create_plugin("iso-check", tmp_path)
    code = (
        "import asyncio, sys\n"
        "from shared_sdk.host import PluginHost, PluginSpec\n"
        "from shared_sdk.testing import make_request, make_services\n"
        "async def go():\n"
        "    host = PluginHost('gateway', lambda s: make_services('gateway', s))\n"
        "    h = await host.load(PluginSpec(slug='iso-check', command=[sys.executable, '-m', 'iso_check'],"
        " env={'PYTHONPATH': '.'}))\n"
        "    r = await h.call('handle_post_auth', None, make_request('x'))\n"
        "    await host.aclose()\n"
        "    print(r.request.headers['x-fjordgate-app'])\n"
        "asyncio.run(go())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("anonymous")


def test_bad_names_and_existing_folders_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="lower-case"):
        create_plugin("Bad_Name", tmp_path)
    create_plugin("ok", tmp_path)
    assert main(["ok", "--dest", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_scaffolded_package_declares_its_entry_point(tmp_path):
    """Fjordgate finds plugin code by entry point: the scaffold's distribution declares one, named as the plugin."""
    import tomllib

    root = create_plugin("team-header", tmp_path)
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["fjordgate.plugins"] == {"team-header": "team_header:TeamHeaderPlugin"}
