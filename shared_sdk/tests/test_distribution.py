"""`fjordgate-sdk`: the SDK builds as its own wheel, and a plugin author needs nothing else.

One test, run once per suite (~30 s, most of it pip): build the wheel from `shared_sdk/pyproject.toml`, check
what it holds and declares, install it into a fresh virtual environment, and run a scaffolded plugin's tests
there with warnings as errors. No Django, no Starlette, no `fjordgate` in that environment.
"""

from __future__ import annotations

import email.parser
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

from shared_sdk.scaffold import create_plugin

SDK = pathlib.Path(__file__).resolve().parents[1]
REPO = SDK.parent
TIER_PACKAGES = ("django", "starlette", "djangorestframework", "uvicorn", "fjordgate")


def _run(*cmd: str | pathlib.Path, cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH", "VIRTUAL_ENV"))}
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result


def _build_wheel(tmp: pathlib.Path) -> pathlib.Path:
    # From a copy, so the build's scratch folders never land in the source tree.
    source = tmp / "src" / "shared_sdk"
    shutil.copytree(SDK, source, ignore=shutil.ignore_patterns("tests", "__pycache__", "build", "*.egg-info"))
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", source, "-w", tmp / "dist")
    (wheel,) = (tmp / "dist").glob("fjordgate_sdk-*.whl")
    return wheel


def test_the_sdk_wheel_holds_only_the_sdk_and_serves_a_plugin_author_alone(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(zf.read(metadata_name).decode())
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"shared_sdk"}
    assert not [n for n in names if n.startswith("shared_sdk/tests/")]
    shipped = {pathlib.PurePosixPath(n).parent for n in names if n.endswith("/__init__.py")}
    in_tree = {
        pathlib.PurePosixPath(p.relative_to(REPO).parent.as_posix())
        for p in SDK.rglob("__init__.py")
        if "tests" not in p.parts
    }
    assert shipped == in_tree, "a subpackage of shared_sdk is missing from shared_sdk/pyproject.toml"
    requires = [r.split(";")[0] for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert sorted(r.split(">")[0].split("=")[0].strip() for r in requires) == ["grpcio", "jsonschema", "msgspec"]
    assert not [r for r in metadata.get_all("Requires-Dist") or [] if r.lower().startswith(TIER_PACKAGES)]

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python, "install", "-q", "-c", REPO / "constraints.txt")
    _run(*pip, f"{wheel}[testing]")
    probe = (
        "import sys, shared_sdk, shared_sdk.testing, shared_sdk.host, shared_sdk.isolated.child\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {TIER_PACKAGES!r}))"
    )
    assert _run(python, "-c", probe).stdout.strip() == "[]"

    plugin = create_plugin("pii-guard", tmp_path)
    result = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", cwd=plugin)
    assert "3 passed" in result.stdout
