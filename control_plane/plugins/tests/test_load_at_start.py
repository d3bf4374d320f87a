"""Studio plugins that receive events or edge payloads are loaded before anything is sent to them: the bridge
loads them at start (`plugins_load_at_start`), and an event whose topic a plugin's manifest lists loads that
plugin before it is delivered. Lazily loaded, they lost the first event (issue 15)."""

from __future__ import annotations

import pytest

from control_plane.plugins import runtime
from control_plane.plugins.services import plugin_register
from shared_sdk.messages import Event

from . import plugins as test_plugins

PLUGINS = "control_plane.plugins.tests.plugins"


@pytest.mark.django_db(transaction=True)
def test_first_event_reaches_a_plugin_that_nothing_has_called_yet():
    test_plugins.TopicListener.heard.clear()
    plugin_register(data={"slug": "listener", "import_path": f"{PLUGINS}:TopicListener"})
    runtime.shutdown_runtime()  # a fresh process: nothing loaded
    runtime.publish_local_event(Event(topic="notes.added", id="first"))
    runtime.publish_local_event(Event(topic="other.thing", id="ignored"))
    assert test_plugins.TopicListener.heard == ["first"]


@pytest.mark.django_db(transaction=True)
def test_load_at_start_takes_event_and_payload_receivers_only():
    for slug, cls in (
        ("counter", "EventCounter"),
        ("listener", "TopicListener"),
        ("taker", "PayloadTaker"),
        ("slow", "SlowScheduler"),
    ):
        plugin_register(data={"slug": slug, "import_path": f"{PLUGINS}:{cls}"})
    plugin_register(data={"slug": "off", "import_path": f"{PLUGINS}:PayloadTaker", "active": False})
    runtime.shutdown_runtime()
    assert runtime.plugins_load_at_start() == ["counter", "listener", "taker"]
    host = runtime.plugin_host()
    assert "counter" in host and "taker" in host and "slow" not in host and "off" not in host
    test_plugins.RECEIVED.clear()
    runtime.publish_local_event(Event(topic="counter.ping", id="at-start"))
    assert test_plugins.RECEIVED == [("", "at-start")]  # subscribed in on_session_ready, at load
