"""The bridge loads the studio plugins that receive events or payloads when it starts: the first UP event an edge
sends reaches a session-aware plugin that nothing has called in the bridge process (issue 15: it was lost)."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connections

from control_plane.bridge.db import run_db
from control_plane.bridge.runner import Bridge
from control_plane.plugins import runtime
from control_plane.plugins.services import plugin_register
from control_plane.plugins.tests import plugins as test_plugins
from edge_gateway.services import EdgeEventHub
from edge_gateway.sync.service import EdgeSyncService
from shared_sdk.messages import Direction, Event

from .nats_server import free_port
from .test_snapshot_chunks import RecordingStore
from .test_telemetry_pipeline import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _studio_runtime_stopped():
    yield
    runtime.shutdown_runtime()


async def test_first_up_event_reaches_a_plugin_loaded_at_bridge_start(nats_server, tmp_path, settings):
    settings.NATS_URL = nats_server.url
    test_plugins.RECEIVED.clear()
    await asyncio.to_thread(
        plugin_register, data={"slug": "counter", "import_path": "control_plane.plugins.tests.plugins:EventCounter"}
    )
    await asyncio.to_thread(runtime.shutdown_runtime)  # as in a freshly started bridge process: nothing loaded
    bridge = Bridge(health_port=free_port(), poll_interval_s=0.05)
    bridge_task = asyncio.create_task(bridge.run())
    service = EdgeSyncService(
        store=RecordingStore(), namespace="ns-a", edge_id="edge-a", nats_url=nats_server.url, state_dir=str(tmp_path)
    )
    hub = EdgeEventHub()
    hub.uplink = service.events.publish_up
    service.events.deliver = hub.deliver_from_remote
    try:
        await service.start()
        await wait_for(lambda: asyncio.sleep(0, bridge.events is not None and service.nats_connected))
        await asyncio.sleep(0.3)  # subscriptions registered on the server
        await hub.publish(Event(topic="counter.ping", id="first", direction=Direction.UP, source="edge-half"))
        await wait_for(lambda: asyncio.sleep(0, bool(test_plugins.RECEIVED)), timeout=10)
        assert test_plugins.RECEIVED == [("", "first")]
    finally:
        await service.stop(drain_timeout_s=0.1)
        bridge.stop()
        await asyncio.wait_for(bridge_task, 10)
        await run_db(connections.close_all)
