"""A bridge that stops (a rolling restart, a scale-down) hands over cleanly: what an edge sent in its last second is
stored by the next bridge at once, not after the consumer's ack wait, and a stop is bounded even when the bridge's
own run is cancelled. Real bridge, PostgreSQL and JetStream."""

from __future__ import annotations

import asyncio

import nats
import pytest
from django.db import connections

from control_plane.analytics.models import AnalyticsEvent
from control_plane.bridge.db import run_db
from control_plane.bridge.pull_consumer import FETCH_TIMEOUT_S
from control_plane.bridge.runner import CONSUMER_GRACE_S, Bridge
from shared_sdk.sync_protocol import up_subject

from .nats_server import free_port
from .test_telemetry_pipeline import _count, _edge, records, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def _bridge() -> Bridge:
    return Bridge(health_port=free_port(), poll_interval_s=0.05)


async def _ready(bridge: Bridge) -> None:
    await wait_for(lambda: asyncio.sleep(0, bridge.telemetry is not None and bridge.events is not None), 30)


async def test_records_sent_while_a_bridge_stops_reach_the_next_bridge_well_before_the_ack_wait(
    nats_server, tmp_path, settings
):
    """An edge keeps sending while the bridge stops: the stopping bridge lets its consumers finish their fetch,
    commit and acknowledge it, and the next one takes over; every record is stored, none waits for the ack wait
    (30 s). (The runner cancelled its consumers before; that passes this test too, because the server drops a
    cancelled fetch's pull request once the connection closes, which the runner does right after.)"""
    settings.NATS_URL = nats_server.url
    first = _bridge()
    running = asyncio.create_task(first.run())
    edge_nc, shipper, sender = await _edge(nats_server.url, tmp_path)
    successor = next_bridge = None
    sent = 0

    async def traffic(seconds: float) -> None:
        nonlocal sent
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            await shipper.submit_batch(records(sent, 1))
            sent += 1
            await asyncio.sleep(0.002)

    try:
        await _ready(first)
        await traffic(0.5)
        first.stop()  # mid-traffic: its fetches are being sent messages
        await asyncio.gather(traffic(0.5), asyncio.wait_for(running, CONSUMER_GRACE_S + 5))
        next_bridge = _bridge()
        successor = asyncio.create_task(next_bridge.run())
        await wait_for(lambda: run_db(lambda: _count(AnalyticsEvent) == sent), timeout=10)  # well under ack_wait
    finally:
        if next_bridge is not None:
            next_bridge.stop()
        for task in (running, successor, sender):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in (running, successor, sender) if t is not None), return_exceptions=True)
        await edge_nc.close()
        await shipper.spool.close()
        await run_db(connections.close_all)


async def test_a_bridge_cancelled_while_it_stops_leaves_no_task_running(nats_server, settings):
    """A supervisor that gives up on a stop (cancels `run`) must not leave the consumers and leader duties running
    on a bridge nobody owns any more."""
    settings.NATS_URL = nats_server.url
    bridge = _bridge()
    running = asyncio.create_task(bridge.run())
    try:
        await _ready(bridge)
        names = {"telemetry", "payloads", "leader", "leader-duties", "budgets", "events-down", "database-probe"}
        assert names <= {task.get_name() for task in asyncio.all_tasks()}
        bridge.stop()
        # a few loop turns: it is stopping (its consumers in their grace, the leader lease being given up over NATS),
        # not stopped. 50 ms was too long on a loaded machine (CI), where the whole stop could end in it
        for _ in range(3):
            await asyncio.sleep(0)
        assert not running.done()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        left = names & {task.get_name() for task in asyncio.all_tasks() if not task.done()}
        assert left == set()
    finally:
        await run_db(connections.close_all)


async def test_a_bridge_cancelled_again_while_it_shuts_down_still_closes_everything(nats_server, settings):
    """A supervisor (or a test) that cancels a stopping bridge a second time must not leave it half-stopped: cut
    short in its `finally`, a bridge kept its NATS connection, and its lease responder went on answering other
    bridges' and edges' asks on that server (a later test's stand-in ledger lost its replies to it in CI)."""
    settings.NATS_URL = nats_server.url
    bridge = _bridge()
    running = asyncio.create_task(bridge.run())
    probe = await nats.connect(nats_server.url)
    try:
        await _ready(bridge)
        await wait_for(lambda: asyncio.sleep(0, any(t.get_name() == "leader" for t in asyncio.all_tasks())), 30)
        running.cancel()
        await asyncio.sleep(0)  # one loop turn: it is now in its shutdown (cancelling its tasks)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert bridge._nc is not None and bridge._nc.is_closed

        async def nobody_answers_lease_asks() -> bool:  # once the server has seen the connection go
            try:
                await probe.request(up_subject("ns", "e1", "lease"), b"", timeout=0.5)
            except nats.errors.NoRespondersError:
                return True
            except nats.errors.TimeoutError:
                return False
            return False

        await wait_for(nobody_answers_lease_asks, 10)
    finally:
        await probe.close()
        await run_db(connections.close_all)


async def test_a_bridge_whose_nats_server_is_gone_stops_without_waiting_for_it(nats_server, settings, caplog):
    """Stopped together with its NATS server (a host shutting down, `fjordgate up` stopping, every test's teardown),
    the bridge waited on a connection that could answer nothing: its consumers' fetches ran out their timeout and
    its lease release its own, ~2 s in all. It now cancels the consumers (the server dropped their pull requests
    with the connection) and leaves the lease to expire, as a dead holder's does."""
    settings.NATS_URL = nats_server.url
    bridge = _bridge()
    running = asyncio.create_task(bridge.run())
    try:
        await _ready(bridge)
        await wait_for(lambda: asyncio.sleep(0, bridge.leader is not None and bridge.leader.is_leader), 30)
        nats_server.stop()
        assert bridge._nc is not None
        await wait_for(lambda: asyncio.sleep(0, not bridge._nc.is_connected), 30)
        loop = asyncio.get_running_loop()
        began = loop.time()
        bridge.stop()
        await asyncio.wait_for(running, CONSUMER_GRACE_S + 5)
        # Any wait on NATS takes at least the lease release's timeout (1 s) or the fetch's (1 s).
        assert loop.time() - began < FETCH_TIMEOUT_S
        assert "left the leader lease to expire" in caplog.text
    finally:
        if not running.done():
            running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await run_db(connections.close_all)
