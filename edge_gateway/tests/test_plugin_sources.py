"""An edge loads only plugin code its operator allows, whatever a snapshot says (the control plane refuses such
registrations, but an edge does not trust that: a tampered file, an old control plane, a row written by SQL).

Each hostile plugin would leave a marker file if its code ran.
"""

from __future__ import annotations

import sys
import uuid

import pytest

from shared_sdk.snapshot import PluginConfig

from .support import make_snapshot, run_edge


@pytest.fixture
def marker_module(tmp_path, monkeypatch):
    name = f"fj_edge_marker_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported.marker"
    (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\nclass Plugin:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def test_edge_refuses_snapshot_plugins_outside_its_allow_list_and_runs_nothing(tmp_path, marker_module, capfd):
    name, imported = marker_module
    spawned = tmp_path / "spawned.marker"
    plugins = [
        PluginConfig(slug="marker", name="marker", import_path=f"{name}:Plugin"),
        PluginConfig(slug="zen", name="zen", import_path="this:s"),
        PluginConfig(slug="system", name="system", import_path="os:system"),
        PluginConfig(slug="shell", name="shell", command=["/bin/sh", "-c", f"touch {spawned}"]),
        PluginConfig(slug="id", name="id", command=["id"]),
        PluginConfig(slug="tagger", name="tagger", import_path="plugins.request_tagger.plugin:create_plugin"),
    ]
    snapshot = make_snapshot("http://127.0.0.1:9", plugins=plugins)
    with run_edge(snapshot, tmp_path) as edge:
        loaded = set(edge.edge.store.current.plugins)
    assert loaded == {"tagger"}  # the allowed one still loads
    assert not imported.exists() and not spawned.exists()
    assert name not in sys.modules and "this" not in sys.modules
    assert "Beautiful is better than ugly" not in capfd.readouterr().out


def test_edge_loads_a_plugin_by_its_entry_point(tmp_path):
    plugins = [PluginConfig(slug="tagger", name="tagger", entry_point="request-tagger", global_order=0)]
    with run_edge(make_snapshot("http://127.0.0.1:9", plugins=plugins), tmp_path) as edge:
        handle = edge.edge.store.current.plugins["tagger"]
        assert handle.name == "request-tagger" and "post_auth" in handle.capabilities


def test_edge_runs_an_entry_point_isolated(tmp_path):
    plugins = [PluginConfig(slug="tagger", name="tagger", entry_point="request-tagger", isolated=True)]
    with run_edge(make_snapshot("http://127.0.0.1:9", plugins=plugins), tmp_path) as edge:
        handle = edge.edge.store.current.plugins["tagger"]
        assert handle.pid is not None and "post_auth" in handle.capabilities
