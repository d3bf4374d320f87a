"""Reload is exact at the edge: a plugin reloaded by a new snapshot (changed config) keeps only the new instance's
event subscriptions, so one event reaches it once."""

from __future__ import annotations

import sys

from shared_sdk.messages import Event
from shared_sdk.snapshot import PluginConfig

from . import recording_plugins
from .support import make_snapshot, request_in_flight, run_edge

COUNTER = "edge_gateway.tests.recording_plugins:EventCounter"


def _snapshot(label: str, version: int):
    plugins = [PluginConfig(slug="counter", name="counter", import_path=COUNTER, config={"label": label})]
    return make_snapshot("http://127.0.0.1:9", plugins=plugins, version=version)


def test_reload_after_a_config_change_drops_the_old_subscriptions(tmp_path):
    recording_plugins.RECEIVED.clear()
    with run_edge(_snapshot("v1", 1), tmp_path) as edge:
        hub = edge.edge.hub
        edge.call(hub.deliver_from_remote(Event(topic="counter.ping", id="first")))  # as a DOWN event arrives
        assert recording_plugins.RECEIVED == [("v1", "first")]

        edge.call(edge.edge.store.apply(_snapshot("v2", 2)))
        edge.call(hub.deliver_from_remote(Event(topic="counter.ping", id="second")))
        assert recording_plugins.RECEIVED == [("v1", "first"), ("v2", "second")]


def test_a_reload_request_restarts_isolated_plugins_so_their_new_program_runs(tmp_path):
    """An unchanged snapshot re-applied for an operator's reload request (`fj.down.<ns>.reload`) restarts each
    isolated plugin: the new version of its program, installed meanwhile, is what runs afterwards."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "versioned-plugin"

    def install(version: str) -> None:
        program.write_text(
            f"#!{sys.executable}\n"
            "from shared_sdk import BasePlugin, serve\n"
            "from shared_sdk.capabilities import SessionAware\n"
            "class Versioned(BasePlugin, SessionAware):\n"
            f"    name, version = 'versioned', {version!r}\n"
            "serve(Versioned())\n"
        )
        program.chmod(0o755)

    install("1.0.0")
    plugins = [PluginConfig(slug="versioned", name="versioned", command=[str(program)])]
    snapshot = make_snapshot("http://127.0.0.1:9", plugins=plugins)
    with run_edge(snapshot, tmp_path, plugin_command_dirs=(str(bin_dir),)) as edge:
        first = edge.edge.store.current.plugins["versioned"]
        assert first.version == "1.0.0"
        install("2.0.0")
        edge.call(edge.edge.store.apply(snapshot))  # the same config again: nothing to restart
        assert edge.edge.store.current.plugins["versioned"] is first
        edge.call(edge.edge.store.apply(snapshot, restart_isolated=True))  # what a reload request does
        second = edge.edge.store.current.plugins["versioned"]
        assert second.version == "2.0.0" and second.pid != first.pid


def test_while_a_request_still_uses_the_old_instance_an_event_reaches_only_the_new_one(upstream, tmp_path):
    """The old instance keeps serving the requests that started under it (`ConfigStore` stops it once they are
    done), but its event subscriptions end at the reload: an event meanwhile is not received twice."""

    def snapshot(label: str, version: int):
        plugins = [PluginConfig(slug="counter", name="counter", import_path=COUNTER, config={"label": label})]
        return make_snapshot(upstream, plugins=plugins, version=version)

    recording_plugins.RECEIVED.clear()
    with run_edge(snapshot("v1", 1), tmp_path) as edge:
        hub = edge.edge.hub
        with request_in_flight(edge, latency_ms=800):  # under v1
            edge.call(edge.edge.store.apply(snapshot("v2", 2)))
            edge.call(hub.deliver_from_remote(Event(topic="counter.ping", id="during")))
            assert recording_plugins.RECEIVED == [("v2", "during")]
