"""Budgets down through real processes: spend one edge of the namespace made reaches the namespace's other edge
within about a second of its ingest; once one edge exhausted the budget, the other serves only what its lease
holds and refuses (402), and both together stay within the limit."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import nats
import pytest
from django.db.models import Sum
from nats.js.errors import NotFoundError

from control_plane.analytics.models import BudgetUsageRecord
from control_plane.applications.models import App
from control_plane.budgets.services import budget_create
from shared_sdk.sync_protocol import KEY_BUDGETS, BudgetUpdate, config_bucket, decode

from .cluster import config_version, seed_namespace, wait_until

pytestmark = [pytest.mark.timeout(240)]


def test_spend_at_one_edge_blocks_the_other_edge_of_the_namespace(cluster, capsys):
    a = seed_namespace("ns-a", cluster.mock_url)
    b = seed_namespace("ns-b", cluster.mock_url)
    budget_create(
        data={
            "name": "tight",
            "scope": "app",
            "app": App.objects.get(pk=a.app_id),
            "limit": Decimal("0.2"),
            "action": "block",
            "period": "monthly",
        }
    )
    cluster.start_bridge()
    a1, a2 = cluster.start_edge(cluster.add_edge("a1", "ns-a")), cluster.start_edge(cluster.add_edge("a2", "ns-a"))
    b1 = cluster.start_edge(cluster.add_edge("b1", "ns-b"))
    for edge, seed in ((a1, a), (a2, a), (b1, b)):
        wait_until(lambda e=edge, s=seed: e.ready().get("version", 0) >= config_version(s.namespace), message="config")

    assert a2.chat(a.key)[0] == 200, "the budget is not exhausted yet"
    answered = 1
    for _ in range(100):  # a1 spends until its own figure reaches the limit
        status, body, _ = a1.chat(a.key)
        if status == 402:
            assert body["error"]["code"] == "budget_exceeded"
            break
        assert status == 200, body
        answered += 1
    else:
        raise AssertionError("a1 never reached the budget")
    assert answered > 2, "the limit must allow a few requests"

    # every accepted request is accounted, the refused one too (at cost 0)
    wait_until(lambda: BudgetUsageRecord.objects.filter(app_id=a.app_id).count() == answered + 1, 20, "ingested")
    ingested_at = time.monotonic()
    total = BudgetUsageRecord.objects.filter(app_id=a.app_id).aggregate(s=Sum("cost"))["s"]
    published = asyncio.run(_wait_for_published_spend(cluster.nats.url, "ns-a", total))
    with capsys.disabled():
        print(f"\nspend ingested -> published to the namespace's edges: {(published - ingested_at) * 1000:.0f} ms")
    # a2 holds a lease (docs/governance.md): it serves what that slice covers, then refuses too
    for _ in range(20):
        status, body, _ = a2.chat(a.key)
        if status == 402:
            break
        assert status == 200, body
    assert status == 402 and body["error"]["code"] == "budget_exceeded", "a2 spent what it held, then refused"
    wait_until(lambda: BudgetUsageRecord.objects.filter(app_id=a.app_id, cost__gt=0).count() >= answered, 20, "in")
    spent = BudgetUsageRecord.objects.filter(app_id=a.app_id).aggregate(s=Sum("cost"))["s"]
    assert spent <= Decimal("0.2"), f"both edges together spent {spent} of 0.2"
    assert b1.chat(b.key)[0] == 200, "another namespace's app is not affected"


async def _wait_for_published_spend(url: str, namespace: str, total: Decimal) -> float:
    nc = await nats.connect(url)
    try:
        kv = await nc.jetstream().key_value(config_bucket(namespace))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                update = decode((await kv.get(KEY_BUDGETS)).value, BudgetUpdate)
                if any(spend.spent >= total for spend in update.budgets):
                    return time.monotonic()
            except NotFoundError:
                pass
            await asyncio.sleep(0.01)
        raise AssertionError(f"ctl.budgets never showed {total}")
    finally:
        await nc.close()
