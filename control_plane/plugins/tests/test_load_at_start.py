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


def _wait(predicate, timeout_s: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_the_web_and_worker_processes_preload_event_receivers_and_pick_up_new_ones():
    """The web server (asgi.py) and each Celery pool process start the preloader: the first event raised there
    reaches a session-aware plugin nothing has called yet, and one registered later is loaded on the next round."""
    import importlib

    from celery.signals import worker_process_init

    from control_plane.plugins import preload

    plugin_register(data={"slug": "counter", "import_path": f"{PLUGINS}:EventCounter"})
    plugin_register(data={"slug": "slow", "import_path": f"{PLUGINS}:SlowScheduler"})
    runtime.shutdown_runtime()  # a fresh process: nothing loaded
    importlib.import_module("control_plane.config.asgi")  # what uvicorn imports in each web worker
    web = preload._started
    assert web is not None and web.process == "web"
    try:
        _wait(lambda: web.rounds >= 1)
        host = runtime.plugin_host()
        assert "counter" in host and "slow" not in host
        test_plugins.RECEIVED.clear()
        runtime.publish_studio_event("counter.ping", {"n": 1})  # raised by the web process, e.g. an audit entry
        _wait(lambda: len(test_plugins.RECEIVED) == 1)
    finally:
        web.stop()
    preload._started = None
    runtime.shutdown_runtime()
    import control_plane.config.celery  # noqa: F401  (connects the worker's signal handler)

    worker_process_init.send(sender=None)  # what the prefork pool sends in each child
    worker = preload._started
    assert worker is not None and worker.process == "worker"
    worker.stop()
    preload._started = None
    fast = preload.PluginPreloader("worker", interval_s=0.2)
    fast.start()
    try:
        _wait(lambda: "counter" in fast.loaded)
        plugin_register(data={"slug": "taker", "import_path": f"{PLUGINS}:PayloadTaker"})
        _wait(lambda: "taker" in fast.loaded)  # registered after start: loaded on a later round
        assert "taker" in runtime.plugin_host()
    finally:
        fast.stop()
