"""The bridge publishes an outbox change to its namespace's edges only, and heartbeats put the edge in sync."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connections

from control_plane.bridge.db import run_db
from control_plane.bridge.runner import Bridge
from control_plane.edges.models import EdgeInstance, EdgeStatus
from control_plane.edges.services import edge_reload_request
from control_plane.sync.services import config_change_record
from edge_gateway.sync.service import EdgeSyncService

from .nats_server import free_port
from .test_snapshot_chunks import RecordingStore
from .test_telemetry_pipeline import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


async def test_change_reaches_the_namespace_edges_only_and_they_report_in_sync(nats_server, tmp_path, settings):
    settings.NATS_URL = nats_server.url
    bridge = Bridge(health_port=free_port(), poll_interval_s=0.05)
    bridge_task = asyncio.create_task(bridge.run())
    stores = {name: RecordingStore() for name in ("a1", "a2", "b1")}
    edges = {
        name: EdgeSyncService(
            store=stores[name],
            namespace="ns-a" if name.startswith("a") else "ns-b",
            edge_id=f"edge-{name}",
            nats_url=nats_server.url,
            state_dir=str(tmp_path / name),
            environ={"EDGE_HEARTBEAT_S": "0.2"},
        )
        for name in stores
    }
    try:
        for edge in edges.values():
            await edge.start()
        await wait_for(lambda: asyncio.sleep(0, bridge.leader is not None and bridge.leader.is_leader))
        change = await run_db(config_change_record, namespace="ns-a", reason="test")
        await wait_for(lambda: asyncio.sleep(0, all(stores[n].applied for n in ("a1", "a2"))), timeout=15)
        for name in ("a1", "a2"):
            assert stores[name].applied[-1].version == change.version
            assert stores[name].applied[-1].namespace == "ns-a"
        await asyncio.sleep(0.5)
        # ns-b's edge may get ns-b's own snapshot (a global change pending in the database fans out to every
        # namespace with edges), never ns-a's.
        assert all(s.namespace == "ns-b" for s in stores["b1"].applied), "ns-b's edge received ns-a's config"

        async def in_sync() -> bool:
            def statuses():
                return dict(EdgeInstance.objects.filter(namespace="ns-a").values_list("edge_id", "status"))

            return await run_db(statuses) == {"edge-a1": EdgeStatus.IN_SYNC, "edge-a2": EdgeStatus.IN_SYNC}

        await wait_for(in_sync, timeout=15)

        # a reload request for one edge makes exactly that edge re-apply
        before = {name: len(stores[name].applied) for name in stores}
        await run_db(edge_reload_request, namespace="ns-a", edge_id="edge-a2", requested_by="test")
        await wait_for(lambda: asyncio.sleep(0, len(stores["a2"].applied) > before["a2"]), timeout=15)
        assert len(stores["a1"].applied) == before["a1"]
        assert stores["a2"].restarts[-1] and not any(stores["a2"].restarts[:-1])  # isolated plugins restart
    finally:
        for edge in edges.values():
            await edge.stop(drain_timeout_s=0.1)
        bridge.stop()
        await asyncio.wait_for(bridge_task, 10)
        await run_db(connections.close_all)
