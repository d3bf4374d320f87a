"""Records no sink takes are not built: `TelemetryQueue.wants`, the sinks' `accepts`, and accounting."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx

from edge_gateway.telemetry.shipper import TelemetryShipper
from edge_gateway.telemetry.spool import Spool
from edge_gateway.telemetry_queue import TelemetryQueue
from shared_sdk import AnalyticsRecord, BudgetUsage, ProxyLog
from shared_sdk.sync_protocol import TelemetryBatch, decode

from .support import CLIENT_KEY, make_snapshot, run_edge

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}


class _Picky:
    """A sink taking analytics records only, and saying so."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def accepts(self, kind: type) -> bool:
        return kind is AnalyticsRecord

    async def submit_batch(self, records: list[Any]) -> None:
        self.records.extend(records)


class _TakesAll:
    async def submit_batch(self, records: list[Any]) -> None:
        pass


class _Durable:
    """A durable sink (the spool's shape): each write is done at once; only what it is, not what it does, matters
    to `wants`."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def write(self, record: Any) -> asyncio.Future[None]:
        self.records.append(record)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_a_kind_is_wanted_when_a_sink_accepts_it_a_sink_without_accepts_takes_all_a_durable_sink_takes_all():
    queue = TelemetryQueue()
    assert not queue.wants(ProxyLog)  # no sink at all
    queue.add_sink(_Picky(), name="picky")
    assert queue.wants(AnalyticsRecord)
    assert not queue.wants(ProxyLog) and not queue.wants(BudgetUsage)
    queue.add_durable_sink(_Durable(), name="spool")  # the spool ships every kind to the control plane
    assert queue.wants(ProxyLog) and queue.wants(BudgetUsage)

    other = TelemetryQueue()
    other.add_sink(_Picky(), name="picky")
    other.add_sink(_TakesAll(), name="all")
    assert other.wants(ProxyLog)


def test_a_durable_sink_that_does_not_accept_a_kind_is_not_handed_it_and_does_not_make_it_wanted():
    """The NATS shipper of an edge that does not log bodies takes no proxy logs (`TelemetryShipper.accepts`): they
    are built only for a collector that asks for them, and reach only it."""

    class _NoProxyLogs(_Durable):
        def accepts(self, kind: type) -> bool:
            return kind is not ProxyLog

    async def scenario() -> None:
        queue = TelemetryQueue()
        durable = _NoProxyLogs()
        queue.add_durable_sink(durable, name="nats")
        assert queue.wants(AnalyticsRecord) and queue.wants(BudgetUsage)
        assert not queue.wants(ProxyLog)
        collector = _TakesAll()
        queue.add_sink(collector, name="collector")
        assert queue.wants(ProxyLog)  # a collector plugin for proxy logs still gets them

        pending: list[asyncio.Future[None]] = []
        queue.put(AnalyticsRecord(request_id="r"), pending)
        queue.put(ProxyLog(request_id="r"), pending)
        assert [type(r) for r in durable.records] == [AnalyticsRecord] and len(pending) == 1
        assert queue.pending() == 2  # both in the collector's lane

    asyncio.run(scenario())


def test_an_edge_without_a_taker_builds_no_proxy_log_or_budget_usage_record(upstream, tmp_path):
    """The edge's own sinks (metrics; collector plugins, none here) take analytics only: the other two records
    of each request are not made (~30,000 instructions a request). Every lane gets every record that is put, so
    the picky sink would see them if they were."""
    picky = _Picky()
    with run_edge(make_snapshot(upstream), tmp_path) as edge:
        telemetry = edge.edge.telemetry
        telemetry.remove_sink(edge.sink)  # the harness's take-everything sink
        edge.call(_add(telemetry, picky))
        body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(2):
            reply = httpx.post(f"{edge.url}/v1/chat/completions", headers=AUTH, json=body, timeout=10)
            assert reply.status_code == 200
        edge.call(telemetry.flush())
    assert [type(r) for r in picky.records] == [AnalyticsRecord, AnalyticsRecord]


async def _add(telemetry: TelemetryQueue, sink: Any) -> None:
    telemetry.add_sink(sink, name="picky")


def test_the_nats_shipper_takes_one_record_per_request_and_its_batches_say_usage_comes_from_analytics(tmp_path):
    """A request's budget usage repeats its analytics record: the shipper takes no `BudgetUsage`, so an edge without
    a collector plugin for them builds none, and the control plane stores each request's usage row from its
    analytics record (`budget_usage_from_analytics`)."""

    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.sqlite3", max_bytes=1024 * 1024)
        await spool.open()
        try:
            shipper = TelemetryShipper(namespace="ns", edge_id="e1", spool=spool, proxy_logs=False)
            queue = TelemetryQueue()
            queue.add_durable_sink(shipper, name="nats")
            assert queue.wants(AnalyticsRecord)
            assert not queue.wants(BudgetUsage) and not queue.wants(ProxyLog)

            record = AnalyticsRecord(request_id="r", app_id=7, cost=Decimal("0.5"))
            pending: list[asyncio.Future[None]] = []
            queue.put(record, pending)
            await asyncio.gather(*pending)
            _, body = shipper._batch(await spool.head_records())
            shipped = decode(body, TelemetryBatch)
            assert [r.record_id for r in shipped.analytics] == [record.record_id]
            assert shipped.budget_usage == [] and shipped.budget_usage_from_analytics
        finally:
            await spool.close()

    asyncio.run(scenario())
