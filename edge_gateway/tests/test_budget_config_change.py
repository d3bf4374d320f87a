"""A config snapshot applied while requests are in flight (any change an operator publishes to the namespace) gives
the budgets new state objects; the requests still in flight settle on the budgets in force, so what they held is
given back and what they cost is counted. Before, they settled on the replaced objects: their reservations stayed
held on the new ones until the period ended, and after a few changes under traffic a budget refused every request
(402) with nothing spent."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx

from edge_gateway.budgets import BudgetState
from shared_sdk import AnalyticsRecord
from shared_sdk.snapshot import BudgetConfig

from .support import CLIENT_KEY, make_snapshot, run_edge

# A request's bound: (8 per message + "user" 4 + "hi" 2 + 8) prompt tokens x $1000/M + 100 x $2000/M = $0.222.
# The limit takes one bound and the little a request really costs, not two bounds.
LIMIT = Decimal("0.35")


def _chat(url: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "mock-gpt", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **extra},
        timeout=10,
    )


def test_a_request_in_flight_during_a_config_change_gives_back_what_it_held_on_its_budget(
    upstream: str, tmp_path: Any
) -> None:
    budget = BudgetConfig(id=1, scope="app", target_id=1, limit=LIMIT, period_start=0.0, period_end=9e9)
    with run_edge(make_snapshot(upstream, budgets=[budget]), tmp_path) as edge:
        tracker = edge.edge.runtime.budgets
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(_chat, edge.url, mock="latency_ms=500")
            deadline = time.monotonic() + 5
            while tracker.state(1).reserved == 0:  # the request holds its bound on the budget
                assert time.monotonic() < deadline, "the request never reserved its bound"
                time.sleep(0.01)
            edge.call(edge.edge.store.apply(make_snapshot(upstream, budgets=[budget], version=2)))
            assert slow.result().status_code == 200
        after = _chat(edge.url)
        assert after.status_code == 200, after.text  # was 402: the first request's bound still held
        costs = [Decimal(str(r.cost)) for r in edge.sink.wait_for(AnalyticsRecord, 2)]
        state = tracker.state(1)
        assert state.reserved == 0
        assert state.spent == state.own_spent == sum(costs)  # the config sync adds what the control plane lacks


class _LedgerApplyingAConfig:
    """A `LeaseSource` whose round trip outlasts a config change: while a request waits for its budget's lease, the
    namespace's next snapshot is applied, then the ledger grants what was asked on the budget in force (as
    `LeaseClient` adopts a grant)."""

    def __init__(self, edge: Any, snapshot: Any) -> None:
        self.edge, self.snapshot = edge, snapshot
        self.asks = 0

    async def obtain(self, short: list[tuple[BudgetState, Decimal]], unit: Decimal) -> bool:
        self.asks += 1
        await self.edge.store.apply(self.snapshot)
        for asked, need in short:
            state = self.edge.runtime.budgets.state(asked.config.id)
            state.granted = state.lease_used + need
            state.lease_until = time.monotonic() + 60
        return True

    def top_up(self, state: BudgetState, unit: Decimal) -> None:
        return None

    async def obtain_rate(self, lease: Any, need: int, unit: int = 1) -> bool:
        return False

    def top_up_rate(self, lease: Any, unit: int = 1) -> None:
        return None

    def unreachable_open(self, state: BudgetState) -> bool:
        return False


def test_a_request_whose_lease_round_trip_outlasts_a_config_change_reserves_on_the_budget_in_force(
    upstream: str, tmp_path: Any
) -> None:
    budget = BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("100"), period_start=0.0, period_end=9e9)
    with run_edge(make_snapshot(upstream, budgets=[budget]), tmp_path) as edge:
        source = _LedgerApplyingAConfig(edge.edge, make_snapshot(upstream, budgets=[budget], version=2))
        tracker = edge.edge.runtime.budgets
        edge.call(_enable_leasing(tracker, source))
        reply = _chat(edge.url)
        assert reply.status_code == 200, reply.text  # was 402: reserved on the replaced state, which had no grant
        assert source.asks == 1
        cost = Decimal(str(edge.sink.wait_for(AnalyticsRecord, 1)[0].cost))
        state = tracker.state(1)
        assert state.reserved == 0 and state.lease_used == cost == state.spent


async def _enable_leasing(tracker: Any, source: Any) -> None:
    tracker.enable_leasing(source)
