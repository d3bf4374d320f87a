"""Plugin events across the tiers through a real NATS server and the bridge: DOWN events reach the namespace's
edges (all edges when global), UP events reach the studio bus once, nothing echoes back, namespaces isolated."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connections

from control_plane.bridge.db import run_db
from control_plane.bridge.runner import Bridge
from control_plane.plugins import runtime
from edge_gateway.services import EdgeEventHub
from edge_gateway.sync.service import EdgeSyncService
from shared_sdk.messages import Direction, Event

from .nats_server import free_port
from .test_snapshot_chunks import RecordingStore
from .test_telemetry_pipeline import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def _on_studio_loop(coro):
    loop, _ = runtime._ensure_loop()
    return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


async def test_events_cross_tiers_once_within_their_namespace(nats_server, tmp_path, settings):
    settings.NATS_URL = nats_server.url
    bridge = Bridge(health_port=free_port(), poll_interval_s=0.05)
    bridge_task = asyncio.create_task(bridge.run())
    received: dict[str, list[Event]] = {name: [] for name in ("a1", "a2", "b1", "studio")}
    hubs: dict[str, EdgeEventHub] = {}
    edges: dict[str, EdgeSyncService] = {}
    for name in ("a1", "a2", "b1"):
        hub = EdgeEventHub()
        service = EdgeSyncService(
            store=RecordingStore(),
            namespace="ns-a" if name.startswith("a") else "ns-b",
            edge_id=f"edge-{name}",
            nats_url=nats_server.url,
            state_dir=str(tmp_path / name),
        )
        hub.uplink = service.events.publish_up
        service.events.deliver = hub.deliver_from_remote
        bus = hub.bus("listener")

        async def collect(event: Event, name: str = name) -> None:
            received[name].append(event)

        await bus.subscribe("greet.*", collect)
        hubs[name], edges[name] = hub, service

    async def studio_collect(event: Event) -> None:
        received["studio"].append(event)

    studio_sub = await _on_studio_loop(runtime._event_bus.subscribe("greet.*", studio_collect))
    try:
        for service in edges.values():
            await service.start()
        await wait_for(
            lambda: asyncio.sleep(0, bridge.events is not None and all(e.nats_connected for e in edges.values()))
        )
        await asyncio.sleep(0.3)  # subscriptions registered on the server

        # down, to one namespace
        studio_bus = runtime._event_bus.bound("studio-plugin")
        await _on_studio_loop(
            studio_bus.publish_event(
                Event(topic="greet.ns", payload=b"hi a", direction=Direction.DOWN, namespace="ns-a")
            )
        )
        await wait_for(lambda: asyncio.sleep(0, len(received["a1"]) == 1 and len(received["a2"]) == 1), timeout=10)
        assert received["a1"][0].payload == b"hi a" and received["a1"][0].direction is Direction.LOCAL
        # down, global: every edge of every namespace
        await _on_studio_loop(
            studio_bus.publish_event(Event(topic="greet.all", payload=b"hi all", direction=Direction.DOWN))
        )
        await wait_for(
            lambda: asyncio.sleep(0, all(len(received[n]) >= 1 for n in ("b1",)) and len(received["a1"]) == 2)
        )
        assert [e.topic for e in received["b1"]] == ["greet.all"], "ns-b must not see ns-a's event"

        # up, from one edge: the studio bus gets it once; the other edges do not; nothing comes back down
        await hubs["a1"].publish(Event(topic="greet.up", payload=b"from a1", direction=Direction.UP, source="p"))
        await wait_for(lambda: asyncio.sleep(0, any(e.topic == "greet.up" for e in received["studio"])), timeout=10)
        await asyncio.sleep(0.5)
        ups = [e for e in received["studio"] if e.topic == "greet.up"]
        assert len(ups) == 1 and ups[0].origin_edge_id == "edge-a1" and ups[0].namespace == "ns-a"
        assert [e.topic for e in received["a1"]].count("greet.up") == 1, "delivered locally once, never echoed back"
        assert "greet.up" not in [e.topic for e in received["a2"] + received["b1"]]
        # the studio saw its own DOWN events locally as well, and the edges saw each once
        assert [e.topic for e in received["a2"]] == ["greet.ns", "greet.all"]
    finally:
        await _on_studio_loop(runtime._event_bus.unsubscribe(studio_sub))
        for service in edges.values():
            await service.stop(drain_timeout_s=0.1)
        bridge.stop()
        await asyncio.wait_for(bridge_task, 10)
        await run_db(connections.close_all)
