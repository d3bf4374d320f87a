"""Plugin events across the tiers through a real NATS server and the bridge: DOWN events reach the namespace's
edges (all edges when global), UP events reach the studio bus once, nothing echoes back, namespaces isolated.
A DOWN event published by a studio plugin in a process that is not the bridge (web, worker) travels through the
event outbox in PostgreSQL to the bridge process, and only if the caller's transaction committed."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connections, transaction

from control_plane.bridge.db import run_db
from control_plane.bridge.runner import Bridge
from control_plane.plugins import runtime
from control_plane.plugins.services import plugin_register
from edge_gateway.services import EdgeEventHub
from edge_gateway.sync.service import EdgeSyncService
from shared_sdk.messages import Direction, Event, Schedule

from .nats_server import free_port
from .test_snapshot_chunks import RecordingStore
from .test_telemetry_pipeline import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _studio_runtime_stopped():
    """The studio plugin loop's database connections close with it (the test database is dropped later)."""
    yield
    runtime.shutdown_runtime()


async def _edge_listener(service: EdgeSyncService, topic: str, into: list[Event]) -> EdgeEventHub:
    """An edge's local bus wired to its sync service as the edge app wires it, with one subscriber on `topic`."""
    hub = EdgeEventHub()
    hub.uplink = service.events.publish_up
    service.events.deliver = hub.deliver_from_remote

    async def collect(event: Event) -> None:
        into.append(event)

    await hub.bus("listener").subscribe(topic, collect)
    return hub


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
        service = EdgeSyncService(
            store=RecordingStore(),
            namespace="ns-a" if name.startswith("a") else "ns-b",
            edge_id=f"edge-{name}",
            nats_url=nats_server.url,
            state_dir=str(tmp_path / name),
        )
        hubs[name], edges[name] = await _edge_listener(service, "greet.*", received[name]), service

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


def _announce(rollback: bool = False, **config) -> None:
    """What the web process or a Celery worker does: call a studio plugin (here it publishes a DOWN event)."""
    try:
        with transaction.atomic():
            runtime.call_plugin("announcer", "execute_scheduled_task", Schedule(id="job", config=config))
            if rollback:
                raise LookupError("the caller's change fails after the plugin ran")
    except LookupError:
        pass


async def test_a_down_event_from_a_process_without_nats_reaches_the_edges_through_the_outbox(cluster, tmp_path):
    """This test process plays the web process (no NATS connection, no bridge); the bridge is its own process."""
    await asyncio.to_thread(
        plugin_register,
        data={"slug": "announcer", "import_path": "control_plane.plugins.tests.plugins:DownAnnouncer"},
    )
    await asyncio.to_thread(cluster.start_bridge)
    received: dict[str, list[Event]] = {"a1": [], "b1": []}
    edges = []
    for name, namespace in (("a1", "ns-a"), ("b1", "ns-b")):
        service = EdgeSyncService(
            store=RecordingStore(),
            namespace=namespace,
            edge_id=f"edge-{name}",
            nats_url=cluster.nats.url,
            state_dir=str(tmp_path / name),
        )
        await _edge_listener(service, "deploy.>", received[name])
        edges.append(service)
    try:
        for service in edges:
            await service.start()
        await wait_for(lambda: asyncio.sleep(0, all(e.nats_connected for e in edges)))
        await asyncio.sleep(0.3)  # subscriptions registered on the server

        await asyncio.to_thread(_announce, topic="deploy.started", namespace="ns-a", payload="v7")
        await asyncio.to_thread(_announce, rollback=True, topic="deploy.aborted", namespace="ns-a")
        await asyncio.to_thread(_announce, topic="deploy.done", payload="v7")  # global: every edge
        await wait_for(lambda: asyncio.sleep(0, len(received["a1"]) == 2 and len(received["b1"]) == 1), timeout=15)
        await asyncio.sleep(0.5)  # anything sent twice, or the rolled-back event, would have arrived by now
        assert [(e.topic, e.payload, e.namespace) for e in received["a1"]] == [
            ("deploy.started", b"v7", "ns-a"),
            ("deploy.done", b"v7", ""),
        ], "in order, once, and never the event of the rolled-back transaction"
        assert [e.topic for e in received["b1"]] == ["deploy.done"], "ns-b does not see ns-a's event"
        first = received["a1"][0]
        assert first.source == "announcer" and first.direction is Direction.LOCAL
    finally:
        for service in edges:
            await service.stop(drain_timeout_s=0.1)
        await asyncio.to_thread(connections.close_all)
