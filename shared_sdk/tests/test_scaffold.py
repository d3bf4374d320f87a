"""`fjordgate plugin new`: the scaffolded package's own test passes with plain pytest, run in its folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import pytest

from shared_sdk.scaffold import EXAMPLE_NAME, create_plugin, main


def test_scaffolded_plugin_test_passes_without_a_warning(tmp_path):
    root = create_plugin("team-header", tmp_path)
    assert (root / "team_header" / "plugin.py").exists() and (root / "README.md").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    assert "warning" not in result.stdout.lower()


def test_scaffolded_plugin_depends_on_the_sdk_alone(tmp_path):
    project = tomllib.loads((create_plugin("dep-check", tmp_path) / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == ["fjordgate-sdk>=0.1"]
    assert project["optional-dependencies"]["test"] == ["fjordgate-sdk[testing]>=0.1"]


@pytest.mark.parametrize("command", [["fjordgate", "plugin", "new"], ["shared_sdk.scaffold"]])
def test_help_suggests_a_name_the_validator_accepts(tmp_path, command):
    result = subprocess.run(
        [sys.executable, "-m", *command, "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    (example,) = re.findall(r"e\.g\. ([\w-]+)", " ".join(result.stdout.split()))
    assert example == EXAMPLE_NAME
    assert create_plugin(example, tmp_path).is_dir()


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
