"""Reload is exact at the edge: a plugin reloaded by a new snapshot (changed config) keeps only the new instance's
event subscriptions, so one event reaches it once."""

from __future__ import annotations

from shared_sdk.messages import Event
from shared_sdk.snapshot import PluginConfig

from . import recording_plugins
from .support import make_snapshot, run_edge

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
