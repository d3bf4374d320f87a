"""The subject is the sender (issue 13): an edge of namespace `demo` cannot spend `victim`'s budget.

A batch on `fj.up.demo.edge-demo-1.telemetry` (the subject NATS lets that edge use) names an app of namespace
`victim` and claims, in its body, to come from `victim`: the bridge's real ingestor on real NATS and PostgreSQL
stores no row for victim's app, stores the edge's own record as `demo`/`edge-demo-1`, counts the refusals and
acknowledges the batch. A heartbeat whose body claims another identity is recorded as its subject.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import suppress
from decimal import Decimal

import nats
import pytest
from django.db import connections

from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord, ProxyLogRecord
from control_plane.applications.services import app_create
from control_plane.bridge.db import run_db
from control_plane.bridge.heartbeats import HeartbeatReceiver
from control_plane.bridge.runner import ensure_up_stream
from control_plane.bridge.telemetry import TelemetryIngestor
from control_plane.edges.models import EdgeInstance
from control_plane.llms.services import llm_create
from shared_sdk.messages import AnalyticsRecord, BudgetUsage, ProxyLog
from shared_sdk.sync_protocol import UP_STREAM, EdgeHeartbeat, TelemetryBatch, encode, up_subject

from .test_telemetry_pipeline import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def _seed() -> dict[str, int]:
    ids = {}
    for namespace in ("demo", "victim"):
        llm = llm_create(
            data={"name": namespace, "slug": namespace, "vendor": "mock", "api_endpoint": "http://m.local/v1"}
            | {"namespace": namespace}
        )
        ids[f"{namespace}_llm"] = llm.pk
        ids[namespace] = app_create(data={"name": namespace, "namespace": namespace, "llm_ids": [llm.pk]}).pk
    ids["global"] = app_create(data={"name": "shared", "namespace": ""}).pk
    return ids


def _rows() -> dict[str, list]:
    return {
        "analytics": list(AnalyticsEvent.objects.values_list("request_id", "app_id", "namespace", "edge_id")),
        "usage": list(BudgetUsageRecord.objects.values_list("request_id", "app_id", "namespace", "edge_id", "cost")),
        "logs": list(ProxyLogRecord.objects.values_list("request_id", "namespace", "edge_id")),
    }


async def test_a_batch_naming_another_namespace_stores_nothing_for_it(nats_server):
    ids = await run_db(_seed)
    bridge_nc = await nats.connect(nats_server.url)
    edge_nc = await nats.connect(nats_server.url)
    js = bridge_nc.jetstream(timeout=5)
    await ensure_up_stream(js)
    ingestor = TelemetryIngestor(js)
    consumer = asyncio.create_task(ingestor.run())
    beats = HeartbeatReceiver(bridge_nc)
    await beats.start()
    try:
        steal = Decimal("9.50")
        batch = TelemetryBatch(
            batch_id=uuid.uuid4().hex,
            edge_id="edge-victim-1",  # the body lies about who sends it
            namespace="victim",
            created_at=time.time(),
            analytics=[
                AnalyticsRecord(request_id="steal", app_id=ids["victim"], cost=steal, namespace="victim"),
                AnalyticsRecord(request_id="via-llm", app_id=ids["demo"], llm_id=ids["victim_llm"]),
                AnalyticsRecord(request_id="no-such-app", app_id=10**9),
                AnalyticsRecord(request_id="own", app_id=ids["demo"], llm_id=ids["demo_llm"], namespace="victim"),
                AnalyticsRecord(request_id="shared", app_id=ids["global"], edge_id="edge-victim-1"),
            ],
            budget_usage=[
                BudgetUsage(request_id="steal", app_id=ids["victim"], cost=steal),
                BudgetUsage(request_id="own", app_id=ids["demo"], cost=Decimal("0.25")),
            ],
            proxy_logs=[
                ProxyLog(request_id="steal", app_id=ids["victim"], namespace="victim"),
                ProxyLog(request_id="own", app_id=ids["demo"], namespace="victim"),
            ],
        )
        subject = up_subject("demo", "edge-demo-1", "telemetry")
        await edge_nc.jetstream(timeout=5).publish(subject, encode(batch), headers={"Nats-Msg-Id": batch.batch_id})

        async def acked() -> bool:
            return ingestor.batches == 1 and (await js.stream_info(UP_STREAM)).state.messages == 0

        await wait_for(acked, timeout=30)
        rows = await run_db(_rows)
        assert sorted(rows["analytics"]) == [
            ("own", ids["demo"], "demo", "edge-demo-1"),
            ("shared", ids["global"], "demo", "edge-demo-1"),
        ]
        assert rows["usage"] == [("own", ids["demo"], "demo", "edge-demo-1", Decimal("0.25"))]
        assert rows["logs"] == [("own", "demo", "edge-demo-1")]
        assert ingestor.records_refused == 5  # 3 analytics, 1 budget usage, 1 proxy log

        # a heartbeat is the edge of its subject, whatever its body says
        beat = EdgeHeartbeat(edge_id="edge-victim-1", namespace="victim", version=3)
        await edge_nc.publish(up_subject("demo", "edge-demo-1", "heartbeat"), encode(beat))
        await wait_for(lambda: asyncio.sleep(0, beats.received == 1), timeout=15)
        edges = await run_db(lambda: list(EdgeInstance.objects.values_list("edge_id", "namespace")))
        assert edges == [("edge-demo-1", "demo")]
    finally:
        await _shut(consumer, bridge_nc, edge_nc)


_UNSTORABLE = [
    AnalyticsRecord(request_id="far-future", timestamp=1e13),
    AnalyticsRecord(request_id="not-a-time", timestamp=float("nan")),
    AnalyticsRecord(request_id="status", status_code=70_000),  # binary COPY wrapped it into 4,464
    AnalyticsRecord(request_id="tokens", prompt_tokens=2**40),  # ... and this into 0
    AnalyticsRecord(request_id="huge-id", app_id=2**63),
    AnalyticsRecord(request_id="r" * 65),
    AnalyticsRecord(request_id="sum", prompt_tokens=2**31 - 1, completion_tokens=1),
]


async def test_records_postgresql_cannot_store_are_refused_and_hold_up_no_one_else(nats_server):
    """One edge ships values no column can hold; they are fetched with another namespace's batch. Before, the
    fetch's transaction failed, nothing was acknowledged, and both came back every ack wait (30 s), forever."""
    ids = await run_db(_seed)
    bridge_nc, edge_nc = await nats.connect(nats_server.url), await nats.connect(nats_server.url)
    js = bridge_nc.jetstream(timeout=5)
    await ensure_up_stream(js)
    hostile = TelemetryBatch(
        batch_id=uuid.uuid4().hex,
        edge_id="edge-demo-1",
        namespace="demo",
        created_at=time.time(),
        analytics=[*_UNSTORABLE, AnalyticsRecord(request_id="demo-ok", app_id=ids["demo"])],
        budget_usage=[
            BudgetUsage(request_id="overflow", app_id=ids["demo"], cost=Decimal("1e12")),
            BudgetUsage(request_id="negative", app_id=ids["demo"], cost=Decimal("-5")),  # lowers a budget's spend
            BudgetUsage(request_id="nan", app_id=ids["demo"], cost=Decimal("NaN")),
            BudgetUsage(request_id="period", app_id=ids["demo"], period_end=1e300),
        ],
        proxy_logs=[ProxyLog(request_id="code", response_code=2**16)],
    )
    honest = TelemetryBatch(
        batch_id=uuid.uuid4().hex,
        edge_id="edge-victim-1",
        namespace="victim",
        created_at=time.time(),
        analytics=[AnalyticsRecord(request_id="victim-ok", app_id=ids["victim"])],
        budget_usage=[BudgetUsage(request_id="victim-ok", app_id=ids["victim"], cost=Decimal("0.5"))],
    )
    publisher = edge_nc.jetstream(timeout=5)
    for namespace, edge, batch in (("demo", "edge-demo-1", hostile), ("victim", "edge-victim-1", honest)):
        subject = up_subject(namespace, edge, "telemetry")
        await publisher.publish(subject, encode(batch), headers={"Nats-Msg-Id": batch.batch_id})
    ingestor = TelemetryIngestor(js)  # started after both are in: one fetch takes them together
    consumer = asyncio.create_task(ingestor.run())
    try:

        async def acked() -> bool:
            return ingestor.batches == 2 and (await js.stream_info(UP_STREAM)).state.messages == 0

        await wait_for(acked, timeout=30)
        rows = await run_db(_rows)
        assert sorted(r[0] for r in rows["analytics"]) == ["demo-ok", "victim-ok"]
        assert rows["usage"] == [("victim-ok", ids["victim"], "victim", "edge-victim-1", Decimal("0.5"))]
        assert rows["logs"] == []
        assert ingestor.records_refused == len(_UNSTORABLE) + 5
    finally:
        await _shut(consumer, bridge_nc, edge_nc)


async def _shut(consumer: asyncio.Task, *clients) -> None:
    """Stop the ingest task, close the NATS connections and the bridge thread's database connection."""
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    for nc in clients:
        with suppress(Exception):
            await nc.close()
    await run_db(connections.close_all)
