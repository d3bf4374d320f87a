"""The bundled audit_log plugin receives each committed audit entry as an event and appends it as a JSON line."""

from __future__ import annotations

import json
import time

import pytest

from control_plane.applications.services import app_create
from control_plane.plugins.services import plugin_register

pytestmark = pytest.mark.django_db


def _line_about(path, object_type: str, timeout: float = 30.0) -> dict:
    """The first JSON line about `object_type` (the plugin's own registration is forwarded too, maybe first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                if entry["object_type"] == object_type:
                    return entry
        time.sleep(0.05)
    raise AssertionError(f"no line about {object_type} in {path}")


def test_committed_writes_are_forwarded_as_json_lines(tmp_path, django_capture_on_commit_callbacks):
    target = tmp_path / "audit.jsonl"
    with django_capture_on_commit_callbacks(execute=True):
        plugin_register(
            data={"slug": "audit-log", "import_path": "plugins.audit_log:AuditLog", "config": {"path": str(target)}}
        )
    with django_capture_on_commit_callbacks(execute=True):
        app_create(data={"name": "bot", "namespace": "eu", "metadata": {"api_key": "k-secret"}})
    app_line = _line_about(target, "applications.app")
    assert app_line["action"] == "create" and app_line["namespace"] == "eu"
    assert app_line["changes"]["metadata"][1] == {"api_key": "[redacted]"} and "k-secret" not in target.read_text()
