"""Several bridges at once, for availability: they share the telemetry work without doing any of it twice, and
exactly one of them holds the lease that publishes config; when it dies, another takes over."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import nats
import pytest
from django.db import connections

from control_plane.analytics.models import AnalyticsEvent
from control_plane.bridge.db import run_db
from control_plane.bridge.leader import LeaderLease
from control_plane.bridge.runner import ensure_up_stream
from control_plane.bridge.telemetry import TelemetryIngestor
from shared_sdk.messages import AnalyticsRecord
from shared_sdk.sync_protocol import TelemetryBatch, encode, up_subject

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

BATCHES = 60
RECORDS_PER_BATCH = 5


async def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _count() -> int:
    return AnalyticsEvent.objects.count()


async def test_two_bridges_share_telemetry_without_duplicating_work(nats_server):
    connections_ = [await nats.connect(nats_server.url) for _ in range(3)]
    edge_nc, *bridge_ncs = connections_
    await ensure_up_stream(edge_nc.jetstream(timeout=5))
    ingestors = [TelemetryIngestor(nc.jetstream(timeout=5)) for nc in bridge_ncs]
    tasks = [asyncio.create_task(ingestor.run()) for ingestor in ingestors]
    js = edge_nc.jetstream(timeout=5)
    try:
        for wave in range(BATCHES):
            batch = TelemetryBatch(
                batch_id=uuid.uuid4().hex,
                edge_id=f"edge-{wave % 2}",
                namespace="demo",
                created_at=time.time(),
                analytics=[
                    AnalyticsRecord(request_id=f"r-{wave}-{i}", status_code=200) for i in range(RECORDS_PER_BATCH)
                ],
            )
            subject = up_subject("demo", batch.edge_id, "telemetry")
            await js.publish(subject, encode(batch), headers={"Nats-Msg-Id": batch.batch_id})
            if wave % 10 == 9:
                await asyncio.sleep(0.05)  # waves, so both bridges' fetches find work
        total = BATCHES * RECORDS_PER_BATCH
        await _wait_for(lambda: run_db(lambda: _count() >= total))
        await asyncio.sleep(1.0)  # a batch handed to both bridges would land now

        assert await run_db(_count) == total
        # Each message went to exactly one bridge: with a consumer per bridge instead of one shared durable
        # consumer, every batch would be fetched twice (the second insert skipped, the work done twice).
        assert sum(i.batches for i in ingestors) == BATCHES
        assert sum(i.records_inserted for i in ingestors) == total
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for nc in connections_:
            with suppress(Exception):
                await nc.close()
        await run_db(connections.close_all)


@asynccontextmanager
async def _two_leases(url: str, ttl_s: float) -> AsyncIterator[tuple[LeaderLease, asyncio.Task, LeaderLease]]:
    """Two bridges' leader leases on their own connections: the first leads, the second runs beside it."""
    first_nc, second_nc = await nats.connect(url), await nats.connect(url)
    first = LeaderLease(first_nc.jetstream(timeout=5), "bridge-a", ttl_s=ttl_s)
    second = LeaderLease(second_nc.jetstream(timeout=5), "bridge-b", ttl_s=ttl_s)
    first_task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.changed.wait(), 10)
    second_task = asyncio.create_task(second.run())
    try:
        yield first, first_task, second
    finally:
        for task in (first_task, second_task):
            task.cancel()
        await asyncio.gather(first_task, second_task, return_exceptions=True)
        for nc in (first_nc, second_nc):
            with suppress(Exception):
                await nc.close()


async def test_exactly_one_bridge_leads_and_another_takes_over_when_it_dies(nats_server):
    async with _two_leases(nats_server.url, 1.5) as (first, first_task, second):
        await asyncio.sleep(2.0)  # several renewals of both
        assert (first.is_leader, second.is_leader) == (True, False)

        first_task.cancel()  # the leader dies: its lease expires and is not renewed
        await asyncio.gather(first_task, return_exceptions=True)
        await asyncio.wait_for(second.changed.wait(), 10)
        assert second.is_leader


async def test_a_leader_that_stops_cleanly_hands_over_before_its_lease_would_expire(nats_server):
    """A rolling restart: the leading bridge gives its lease up as it stops, and the other leads at its next
    attempt (every ttl/3 = 3 s here) rather than once the entry expired (6 to 9 s after the stop)."""
    async with _two_leases(nats_server.url, 9) as (first, first_task, second):
        await asyncio.sleep(0.5)
        assert (first.is_leader, second.is_leader) == (True, False)
        first_task.cancel()
        await asyncio.gather(first_task, return_exceptions=True)
        await first.release()
        assert not first.is_leader
        await asyncio.wait_for(second.changed.wait(), 5.5)  # its next attempt, not the entry's expiry
        assert second.is_leader
        await first.release()  # released already: nothing to do
