"""The plugin pair in the SDK harness: the edge half sends per-user summaries as edge payloads on its timer; the
studio half stores them (idempotently) and `totals` adds them up. End to end: tests/e2e/test_processes_payloads.py."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from plugins.usage_summary.plugin import SUMMARY_PREFIX, UsageSummary, summaries, totals
from shared_sdk import Runtime
from shared_sdk.messages import AnalyticsRecord, Direction, EdgePayload
from shared_sdk.sync_protocol import EDGE_PAYLOAD_TOPIC, EdgePayloadRequest, decode
from shared_sdk.testing.harness import PluginHarness


async def test_edge_half_summarises_per_user_and_studio_half_stores_each_summary_once():
    config = {"flush_interval_s": 0.1}
    async with PluginHarness(UsageSummary(), runtime=Runtime.GATEWAY, config=config, slug="usage-summary") as edge:
        for user_id, tokens in ((1, 10), (1, 5), (2, 7)):
            record = AnalyticsRecord(app_id=3, user_id=user_id, total_tokens=tokens, cost=Decimal("0.5"))
            await edge.call("handle_analytics", record)
        for _ in range(50):
            if edge.hub.published:
                break
            await asyncio.sleep(0.02)
    [event] = [e for e in edge.hub.published if e.topic == EDGE_PAYLOAD_TOPIC]
    assert event.direction is Direction.UP
    request = decode(event.payload, EdgePayloadRequest)
    assert request.metadata == {"kind": "usage-summary"} and request.correlation_id

    async with PluginHarness(UsageSummary(), runtime=Runtime.STUDIO, slug="usage-summary") as studio:
        payload = EdgePayload(
            payload=request.payload,
            edge_id="e1",
            edge_namespace="ns",
            correlation_id=request.correlation_id,
            plugin_slug="usage-summary",
            metadata=request.metadata,
            edge_timestamp=100,
            received_timestamp=101,
        )
        assert await studio.call("accept_edge_payload", payload) is True
        assert await studio.call("accept_edge_payload", payload) is True  # re-delivery: same key, no second copy
        other = EdgePayload(payload=b"{}", metadata={"kind": "something-else"})
        assert await studio.call("accept_edge_payload", other) is False
        kv = studio.services.kv
        assert len(await kv.list(SUMMARY_PREFIX)) == 1
        rows = totals(await summaries(kv))
    assert [(r["user_id"], r["requests"], r["tokens"], r["cost"], r["edges"]) for r in rows] == [
        (1, 2, 15, Decimal("1.0"), ["e1"]),
        (2, 1, 7, Decimal("0.5"), ["e1"]),
    ]
