"""What the edge's lease client puts on the wire, over a real NATS server, with a stand-in ledger answering.

The ledger tops an edge's unused part of a rate minute up to a share (control_plane/budgets/leasing.py); it can
only when each ask says what the edge used of its grant so far. Without it every ask looks like an edge holding
its whole grant unused, and a busy edge is granted one request's worth per round trip.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from decimal import Decimal

import nats
import pytest

from edge_gateway.budgets import BudgetTracker
from edge_gateway.ratelimit import RateLimiter
from edge_gateway.sync.leases import LeaseClient
from shared_sdk.snapshot import BudgetConfig
from shared_sdk.sync_protocol import LeaseGrant, LeaseReply, LeaseRequest, RateGrant, decode, encode, up_subject

from .nats_server import NatsServer

TOKEN = secrets.token_hex(16)


@pytest.fixture
def private_nats(tmp_path):
    """A NATS server only this test's two connections can use (a token), so no client of another test can answer
    or take its asks."""
    conf = tmp_path / "nats.conf"
    conf.write_text(f'authorization {{ token: "{TOKEN}" }}\n')
    server = NatsServer(config=str(conf)).start()
    yield server
    server.cleanup()


async def test_a_rate_ask_says_what_the_edge_used_of_its_grant(private_nats, caplog):
    caplog.set_level(logging.DEBUG, logger="fjordgate")
    ledger = await nats.connect(private_nats.url, token=TOKEN)
    edge = await nats.connect(private_nats.url, token=TOKEN)
    asked: list[LeaseRequest] = []

    async def answer(message) -> None:
        request = decode(message.data, LeaseRequest)
        asked.append(request)
        rates = [RateGrant(key=r.key, window_start=r.window_start, granted=r.used + r.need + 9) for r in request.rates]
        await message.respond(encode(LeaseReply(rates=rates)))

    await ledger.subscribe(up_subject("ns", "e1", "lease"), cb=answer)
    await ledger.flush()
    limiter = RateLimiter()
    # A generous round-trip bound: in the full suite on a loaded 2-core box this test's ask went unanswered within
    # the default 2 s twice (never alone); what it checks is what the ask carries, not how fast it is answered.
    client = LeaseClient(BudgetTracker(), limiter, namespace="ns", edge_id="e1", timeout_s=15)
    client.attach(edge)
    try:
        lease = limiter.rate_lease("app:1:rpm", 1000)
        # In the full suite the first ask was answered "no responders" in about half the rehearsals (never alone),
        # though the ledger's subscription was flushed: asked again until the server routes it (bounded); what this
        # test checks is what an ask carries.
        for _ in range(50):
            if await client.obtain_rate(lease, lease.lacks(1)):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no ask answered: {asked}, {caplog.text}")
        assert lease.granted == 10
        taken = sum(lease.take(1) for _ in range(12))
        assert taken == 10 and lease.used == 10
        assert await client.obtain_rate(lease, lease.lacks(1))
        assert [(r.key, r.used, r.need) for r in asked[-1].rates] == [("app:1:rpm", 10, 1)]
        assert lease.granted == 20 and lease.take(1)
    finally:
        await edge.close()
        await ledger.close()


async def test_a_grant_that_arrives_after_a_config_change_goes_to_the_budget_in_force(private_nats, caplog):
    """A snapshot applied while an ask is on its way gives the budget a new state; the grant must land there (the
    request that waited reserves on the budget in force), not on the replaced state nobody reads any more."""
    caplog.set_level(logging.DEBUG, logger="fjordgate")
    ledger = await nats.connect(private_nats.url, token=TOKEN)
    edge = await nats.connect(private_nats.url, token=TOKEN)
    budget = BudgetConfig(id=1, scope="app", target_id=7, limit=Decimal("10"), period_start=100.0)
    tracker = BudgetTracker()
    tracker.load([budget])

    async def answer(message) -> None:
        request = decode(message.data, LeaseRequest)
        tracker.load([budget])  # the namespace's next snapshot, applied while the ask was on its way
        grants = [
            LeaseGrant(budget_id=a.budget_id, period_start=100.0, granted=a.used + a.need, ttl_s=60)
            for a in request.asks
        ]
        await message.respond(encode(LeaseReply(grants=grants)))

    await ledger.subscribe(up_subject("ns", "e1", "lease"), cb=answer)
    await ledger.flush()
    client = LeaseClient(tracker, namespace="ns", edge_id="e1", timeout_s=15)
    tracker.enable_leasing(client)
    client.attach(edge)
    try:
        states = tracker.applicable(7, None, None)
        bound = Decimal("0.5")
        assert tracker.reserve(states, bound) is states[0]  # nothing granted yet
        for _ in range(50):  # as above: asked again until the server routes it (bounded)
            if await client.obtain(tracker.short(states, bound), bound):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no ask answered: {caplog.text}")
        in_force = tracker.state(1)
        assert in_force is not states[0]
        assert in_force.granted == bound
        assert tracker.reserve(tracker.applicable(7, None, None), bound) is None
    finally:
        await edge.close()
        await ledger.close()
