"""One unpublishable outbox change never freezes the fleet (issue 13): a real bridge on real PostgreSQL and NATS
keeps publishing another namespace's changes to its edge, retries the bad one a few times, sets it aside with its
error and attempt count, and counts it; the admin's "retry" puts it back in line."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connections

from control_plane.bridge.db import run_db
from control_plane.bridge.runner import Bridge
from control_plane.sync.services import config_change_record
from edge_gateway.sync.service import EdgeSyncService

from .nats_server import free_port
from .test_snapshot_chunks import RecordingStore
from .test_telemetry_pipeline import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

POISON = "bad ns!"


async def test_a_poisoned_change_is_set_aside_while_other_namespaces_keep_publishing(nats_server, tmp_path, settings):
    settings.NATS_URL = nats_server.url
    # written past the validators (the ORM, a script, a row from before the rule): NATS cannot carry it
    poison = await run_db(config_change_record, namespace=POISON, reason="no edge can receive this")
    bridge = Bridge(health_port=free_port(), poll_interval_s=0.05, outbox_max_attempts=3, outbox_backoff_s=0.1)
    bridge_task = asyncio.create_task(bridge.run())
    store = RecordingStore()
    edge = EdgeSyncService(
        store=store,
        namespace="ns-b",
        edge_id="edge-b1",
        nats_url=nats_server.url,
        state_dir=str(tmp_path / "b1"),
        environ={"EDGE_HEARTBEAT_S": "0.2"},
    )
    try:
        await edge.start()
        await wait_for(lambda: asyncio.sleep(0, bridge.leader is not None and bridge.leader.is_leader))
        change = await run_db(config_change_record, namespace="ns-b", reason="while the poison is pending")
        await wait_for(lambda: asyncio.sleep(0, any(s.version == change.version for s in store.applied)), 15)

        async def dead() -> bool:
            await run_db(poison.refresh_from_db)
            return poison.dead_lettered_at is not None

        await wait_for(dead, timeout=30)
        assert poison.attempts == 3 and poison.published_at is None
        assert "namespace 'bad ns!'" in poison.last_error, poison.last_error
        status = bridge.status()
        assert status["config_changes_dead_lettered"] == 1 and status["config_publish_failures"] >= 3
        assert status["status"] == "ok", status  # a bad change is the change's problem, not the bridge's

        # set aside, it is no longer tried, and the next change still goes out
        failures = status["config_publish_failures"]
        later = await run_db(config_change_record, namespace="ns-b", reason="after the dead letter")
        await wait_for(lambda: asyncio.sleep(0, any(s.version == later.version for s in store.applied)), 15)
        assert bridge.status()["config_publish_failures"] == failures
    finally:
        await edge.stop(drain_timeout_s=0.1)
        bridge.stop()
        await asyncio.wait_for(bridge_task, 10)
        await run_db(connections.close_all)
