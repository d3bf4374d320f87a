"""The plugin pair in the SDK harness: the edge half sends per-user summaries as edge payloads on its timer; the
studio half stores them (idempotently) in the format the control plane's admin page reads. End to end (the admin
page's totals included): tests/e2e/test_processes_payloads.py."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import msgspec
import pytest

from plugins.usage_summary.plugin import SUMMARY_PREFIX, UsageSummary, summaries
from shared_sdk import Runtime
from shared_sdk.messages import AnalyticsRecord, EdgePayload
from shared_sdk.testing.harness import PluginHarness


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
async def test_edge_half_summarises_per_user_and_studio_half_stores_each_summary_once(isolated: bool) -> None:
    config = {"flush_interval_s": 0.1}
    async with PluginHarness(
        "plugins.usage_summary.plugin:UsageSummary" if isolated else UsageSummary(),
        runtime=Runtime.GATEWAY,
        config=config,
        slug="usage-summary",
        isolated=isolated,
    ) as edge:
        for user_id, tokens in ((1, 10), (1, 5), (2, 7)):
            record = AnalyticsRecord(app_id=3, user_id=user_id, total_tokens=tokens, cost=Decimal("0.5"))
            await edge.call("handle_analytics", record)
        for _ in range(100):
            if edge.payloads:
                break
            await asyncio.sleep(0.02)
    [sent] = edge.payloads  # the counts went up in one summary; nothing travelled as an event
    assert not edge.hub.published
    assert sent.plugin_slug == "usage-summary" and sent.metadata == {"kind": "usage-summary"} and sent.correlation_id
    assert [(u["user_id"], u["requests"], u["tokens"]) for u in json.loads(sent.payload)["users"]] == [
        (1, 2, 15),
        (2, 1, 7),
    ]

    async with PluginHarness(UsageSummary(), runtime=Runtime.STUDIO, slug="usage-summary") as studio:
        payload = msgspec.structs.replace(sent, edge_id="e1", edge_namespace="ns", received_timestamp=101)
        assert await studio.call("accept_edge_payload", payload) is True
        assert await studio.call("accept_edge_payload", payload) is True  # re-delivery: same key, no second copy
        other = EdgePayload(payload=b"{}", metadata={"kind": "something-else"})
        assert await studio.call("accept_edge_payload", other) is False
        kv = studio.services.kv
        assert len(await kv.list(SUMMARY_PREFIX)) == 1
        [stored] = await summaries(kv)
    assert (stored["edge_id"], stored["namespace"], stored["received_timestamp"]) == ("e1", "ns", 101)
    assert [(u["user_id"], u["requests"], u["tokens"], Decimal(u["cost"])) for u in stored["users"]] == [
        (1, 2, 15, Decimal("1.0")),
        (2, 1, 7, Decimal("0.5")),
    ]
