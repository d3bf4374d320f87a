"""Telemetry from the edge's shipper to PostgreSQL through a real JetStream server and the bridge's ingestor:
each record stored exactly once although NATS is killed mid-traffic and the bridge restarts mid-ingest."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

import nats
import pytest
from django.db import connections

from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord
from control_plane.bridge.db import run_db
from control_plane.bridge.health import prometheus_text
from control_plane.bridge.runner import Bridge, ensure_up_stream
from control_plane.bridge.telemetry import TelemetryIngestor, _stored_at
from edge_gateway.telemetry.shipper import TelemetryShipper
from edge_gateway.telemetry.spool import Spool
from shared_sdk.messages import AnalyticsRecord, BudgetUsage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


async def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _count(model) -> int:
    return model.objects.count()


def _ids() -> list[str]:
    return list(AnalyticsEvent.objects.values_list("record_id", flat=True))


async def _bridge(url: str):
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream(timeout=5)
    await ensure_up_stream(js)
    ingestor = TelemetryIngestor(js)
    return nc, asyncio.create_task(ingestor.run())


async def _edge(url: str, tmp_path):
    spool = Spool(tmp_path / "spool.sqlite3", max_bytes=50 * 1024 * 1024)
    await spool.open()
    shipper = TelemetryShipper(namespace="demo", edge_id="edge-1", spool=spool)
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    shipper.attach(nc)
    return nc, shipper, asyncio.create_task(shipper.run())


async def _teardown(tasks: list, connections_: list, shipper) -> None:
    """Stop the bridges and the shipper, close both NATS connections and the spool and the DB thread's connection."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    for nc in connections_:
        with suppress(Exception):  # a connection may still be mid-reconnect after a NATS restart
            await nc.close()
    await shipper.spool.close()
    await run_db(connections.close_all)


def records(start: int, count: int) -> list:
    out: list = []
    for i in range(start, start + count):
        out.append(AnalyticsRecord(request_id=f"req-{i}", model="mock-gpt", status_code=200, cost="0.01"))
        out.append(BudgetUsage(request_id=f"req-{i}", cost="0.01"))
    return out


async def test_nats_killed_mid_traffic_and_bridge_restarted_store_each_record_once(nats_server, tmp_path):
    bridge_nc, bridge = await _bridge(nats_server.url)
    edge_nc, shipper, sender = await _edge(nats_server.url, tmp_path)
    sent: list[str] = []
    try:
        for i in range(0, 200, 20):
            batch = records(i, 20)
            sent += [r.record_id for r in batch if isinstance(r, AnalyticsRecord)]
            await shipper.submit_batch(batch)
        nats_server.stop()  # NATS dies while the edge keeps producing
        for i in range(200, 400, 20):
            batch = records(i, 20)
            sent += [r.record_id for r in batch if isinstance(r, AnalyticsRecord)]
            await shipper.submit_batch(batch)
        assert shipper.spool.records > 0
        nats_server.start()
        # the bridge restarts while the backlog is being ingested
        await wait_for(lambda: run_db(lambda: _count(AnalyticsEvent) > 0))
        bridge.cancel()
        await asyncio.gather(bridge, return_exceptions=True)
        with suppress(Exception):  # the old connection may still be mid-reconnect after the NATS restart
            await bridge_nc.close()
        bridge_nc, bridge = await _bridge(nats_server.url)
        for i in range(400, 500, 20):
            batch = records(i, 20)
            sent += [r.record_id for r in batch if isinstance(r, AnalyticsRecord)]
            await shipper.submit_batch(batch)
        await wait_for(lambda: run_db(lambda: _count(AnalyticsEvent) >= len(sent)))
        await asyncio.sleep(1.0)  # any duplicate would arrive now
        stored = await run_db(_ids)
        assert sorted(stored) == sorted(sent), "every request exactly once"
        assert await run_db(_count, BudgetUsageRecord) == len(sent)
        assert shipper.spool.records == 0
    finally:
        await _teardown([bridge, sender], [bridge_nc, edge_nc], shipper)


async def test_redelivered_and_replayed_batches_do_not_duplicate(nats_server, tmp_path):
    """The same batch published twice (a replay after a lost ack) and records repeated across batches."""
    bridge_nc, bridge = await _bridge(nats_server.url)
    edge_nc, shipper, sender = await _edge(nats_server.url, tmp_path)
    try:
        batch = records(0, 10)
        await shipper.submit_batch(batch)
        await shipper.submit_batch(batch)  # new batch id, same record ids
        await wait_for(lambda: run_db(lambda: _count(AnalyticsEvent) == 10))
        head_again = records(10, 5)
        await shipper.submit_batch(head_again)
        await wait_for(lambda: run_db(lambda: _count(AnalyticsEvent) == 15))
        await asyncio.sleep(0.5)
        assert await run_db(_count, AnalyticsEvent) == 15
    finally:
        await _teardown([bridge, sender], [bridge_nc, edge_nc], shipper)


async def test_a_bridge_stopped_between_fetches_leaves_nothing_for_ack_wait(nats_server, tmp_path):
    """A bridge told to stop while its fetch waits finishes that fetch: records published in that second are
    committed and acknowledged by it, so the bridge after it has them at once. Cancelled instead, the fetch's
    pull request stayed open on the server for up to a second; what it was sent then went unacknowledged until
    ack_wait (30 s) re-delivered it (a rolling restart of the bridges delayed those records by 30 s)."""
    bridge_nc = await nats.connect(nats_server.url)
    js = bridge_nc.jetstream(timeout=5)
    await ensure_up_stream(js)
    first = TelemetryIngestor(js)
    running = asyncio.create_task(first.run())
    edge_nc, shipper, sender = await _edge(nats_server.url, tmp_path)
    successor = None
    try:
        await shipper.submit_batch(records(0, 5))
        await wait_for(lambda: run_db(lambda: _count(AnalyticsEvent) == 5))
        await asyncio.sleep(0.2)  # the first bridge is now waiting in its next fetch
        first.stop()
        await shipper.submit_batch(records(5, 5))  # sent while the stopping bridge's fetch is still open
        await asyncio.wait_for(running, 5)  # it stops by itself, after that fetch
        successor = asyncio.create_task(TelemetryIngestor(js).run())
        await wait_for(lambda: run_db(lambda: _count(AnalyticsEvent) == 10), timeout=10)  # well under ack_wait
    finally:
        await _teardown([running, sender, successor], [bridge_nc, edge_nc], shipper)


async def test_steady_traffic_is_shipped_one_message_per_linger_not_per_request(nats_server, tmp_path):
    """Requests finishing back to back (each waits for its records to be on disk, as at concurrency 1): the
    shipper lingers 50 ms and sends what came meanwhile, one message per linger. It used to go on publishing as
    long as each publish's round trip let a request in: a message, a spool read and a spool delete per request or
    two (21 messages for 250 requests in 0.34 s, where one per linger makes 7-9)."""
    bridge_nc, bridge = await _bridge(nats_server.url)
    edge_nc, shipper, sender = await _edge(nats_server.url, tmp_path)
    try:
        requests = 250
        started = time.monotonic()
        for i in range(requests):
            await shipper.submit_batch(records(i, 1))
            await asyncio.sleep(0.0005)
        seconds = time.monotonic() - started
        assert await shipper.drained(10)
        await wait_for(lambda: run_db(lambda: _count(AnalyticsEvent) == requests))
        assert shipper.published_records == 2 * requests
        lingers = seconds / 0.05
        assert shipper.published <= lingers + 3, (
            f"{shipper.published} messages in {seconds:.2f} s ({requests} requests)"
        )
    finally:
        await _teardown([bridge, sender], [bridge_nc, edge_nc], shipper)


async def test_the_bridge_reports_how_long_telemetry_waited_in_the_stream(nats_server, tmp_path):
    """`fjordgate_bridge_telemetry_lag_seconds`: records that sat in JetStream while no bridge ran show that wait
    when a bridge commits them; records shipped to a running bridge show a fraction of it. Timed from JetStream's
    store time: a record's own timestamp (here a day old, as a hostile or skewed edge may write) does not count."""
    edge_nc, shipper, sender = await _edge(nats_server.url, tmp_path)
    bridge_nc = await nats.connect(nats_server.url)
    js = bridge_nc.jetstream(timeout=5)
    await ensure_up_stream(js)
    ingestor = TelemetryIngestor(js)
    bridge = None
    try:
        a_day_ago = time.time() - 86_400
        await shipper.submit_batch(
            [AnalyticsRecord(request_id=f"old-{i}", status_code=200, timestamp=a_day_ago) for i in range(5)]
        )
        assert await shipper.drained(10)  # in the stream, no bridge yet
        await asyncio.sleep(3.0)
        bridge = asyncio.create_task(ingestor.run())
        await wait_for(lambda: run_db(lambda: _count(AnalyticsEvent) == 5))
        assert 3.0 <= ingestor.lag_s < 3_600, ingestor.lag_s

        runner = Bridge(health_port=0)
        runner.telemetry = ingestor
        exposed = prometheus_text(runner.status())
        assert f"fjordgate_bridge_telemetry_lag_seconds {round(ingestor.lag_s, 3)}" in exposed

        await shipper.submit_batch([AnalyticsRecord(request_id="fresh", status_code=200)])
        await wait_for(lambda: run_db(lambda: _count(AnalyticsEvent) == 6))
        assert ingestor.lag_s < 2.0, ingestor.lag_s
    finally:
        await _teardown([bridge, sender], [bridge_nc, edge_nc], shipper)


async def test_a_message_without_jetstream_metadata_leaves_the_lag_alone(nats_server):
    """A delivery whose reply subject is not JetStream's ack subject has no store time: the lag is not computed
    from it (nor does reading it raise, which would stop the consumer)."""
    nc = await nats.connect(nats_server.url)
    try:
        subscription = await nc.subscribe("fj.test.lag")
        await nc.publish("fj.test.lag", b"x", reply="not.a.js.ack")
        await nc.publish("fj.test.lag", b"y")
        plain_reply, no_reply = await subscription.next_msg(5), await subscription.next_msg(5)
        assert _stored_at(plain_reply) is None and _stored_at(no_reply) is None
    finally:
        await nc.close()
