"""The edge's side of quota leasing: ask the control plane for slices of blocking budgets, renew what it holds.

`BudgetTracker` spends locally from each lease (see `edge_gateway.budgets`); this client fills the leases over
core NATS request/reply on `fj.up.<ns>.<edge>.lease` (answered by one bridge from the PostgreSQL ledger):
- `obtain`: a request whose bound does not fit waits for one round trip (at most `timeout_s`). Asks made while
  a round trip is being prepared join it, so a burst of waiting requests costs one message.
- `top_up`: below the low-water mark, one background ask per budget at a time; the request goes on.
- `run`: every `renew_every_s` the leases this edge holds are renewed, reporting what it used (a lease not
  renewed expires at the ledger after its TTL; this edge stops spending it a margin before that).
When the ledger cannot be reached the edge spends only what it holds; then a `fail_open` budget serves and
accounts (reported once the ledger is back), a `fail_closed` one refuses (402).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

from nats.aio.client import Client
from prometheus_client import CollectorRegistry, Counter, Gauge

from shared_sdk.sync_protocol import (
    LeaseAsk,
    LeaseGrant,
    LeaseReply,
    LeaseRequest,
    RateAsk,
    decode,
    encode,
    up_subject,
)

from ..budgets import BudgetState, BudgetTracker
from ..ratelimit import RateLease, RateLimiter

log = logging.getLogger("fjordgate.edge.leases")

_ZERO = Decimal("0")
EXPIRY_MARGIN = 0.2
"""Stop spending a lease this fraction of its TTL before the ledger would let it expire."""


class _Round:
    """Asks gathered for one round trip: per budget, the sum of what waiting requests lack."""

    __slots__ = ("needs", "units", "rates", "done")

    def __init__(self) -> None:
        self.needs: dict[int, tuple[BudgetState, Decimal]] = {}
        self.units: dict[int, Decimal] = {}
        self.rates: dict[tuple[str, int], tuple[RateLease, int, int]] = {}
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def add_rate(self, lease: RateLease, need: int, unit: int) -> None:
        key = (lease.key, lease.window_start)
        _, before, unit_before = self.rates.get(key, (lease, 0, 0))
        self.rates[key] = (lease, before + need, max(unit, unit_before))

    def add(self, state: BudgetState, need: Decimal, unit: Decimal) -> None:
        key = state.config.id
        _, before = self.needs.get(key, (state, _ZERO))
        self.needs[key] = (state, before + need)
        self.units[key] = max(self.units.get(key, _ZERO), unit)


class LeaseClient:
    def __init__(
        self,
        tracker: BudgetTracker,
        limiter: RateLimiter | None = None,
        *,
        namespace: str,
        edge_id: str,
        timeout_s: float = 2.0,
        renew_every_s: float = 10.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._tracker = tracker
        if limiter is not None:
            limiter.leasing = True
        self.edge_id = edge_id
        self._subject = up_subject(namespace, edge_id, "lease")
        self.timeout_s = timeout_s
        self.renew_every_s = renew_every_s
        self._nc: Client | None = None
        self._round: _Round | None = None
        self._topping: set[int] = set()
        self._topping_rates: set[tuple[str, int]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.reachable = False
        self.requests = 0
        self.failures = 0
        self.served_open = 0
        """Requests served beyond the lease under `fail_open` while the ledger was unreachable."""
        self.last_ok = 0.0
        self._reachable_gauge = Gauge(
            "fjordgate_edge_lease_ledger_reachable",
            "1 when the last lease request reached the control plane's quota ledger",
            registry=registry,
        )
        self._requests_counter = Counter(
            "fjordgate_edge_lease_requests", "Lease requests sent (asks, top-ups, renewals)", registry=registry
        )
        self._failures_counter = Counter(
            "fjordgate_edge_lease_failures", "Lease requests that got no answer from the ledger", registry=registry
        )
        self._open_counter = Counter(
            "fjordgate_edge_lease_served_fail_open",
            "Requests served beyond the lease because the ledger was unreachable and the budget fails open",
            registry=registry,
        )

    def attach(self, nc: Client) -> None:
        self._nc = nc

    # -- LeaseSource ----------------------------------------------------------------------------------------

    async def obtain(self, short: list[tuple[BudgetState, Decimal]], unit: Decimal) -> bool:
        round_ = self._next_round()
        for state, need in short:
            round_.add(state, need, unit)
        return await self._wait(round_)

    async def obtain_rate(self, lease: RateLease, need: int, unit: int = 1) -> bool:
        round_ = self._next_round()
        round_.add_rate(lease, need, unit)
        return await self._wait(round_)

    def top_up_rate(self, lease: RateLease, unit: int = 1) -> None:
        key = (lease.key, lease.window_start)
        if key in self._topping_rates:
            return
        self._topping_rates.add(key)
        self._spawn(self._top_up_rate(lease, key, unit))

    def _next_round(self) -> _Round:
        round_ = self._round
        if round_ is None:
            round_ = self._round = _Round()
            self._spawn(self._send_round(round_))
        return round_

    async def _wait(self, round_: _Round) -> bool:
        try:
            return await asyncio.wait_for(asyncio.shield(round_.done), self.timeout_s)
        except TimeoutError:
            return False

    def top_up(self, state: BudgetState, unit: Decimal) -> None:
        key = state.config.id
        if key in self._topping:
            return
        self._topping.add(key)
        self._spawn(self._top_up(state, unit))

    def unreachable_open(self, state: BudgetState) -> bool:
        if self.reachable or state.config.on_unreachable != "fail_open":
            return False
        self.served_open += 1
        self._open_counter.inc()
        return True

    # -- status ---------------------------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        held = [state for state in self._tracker.states() if state.leased]
        return {
            "leasing": True,
            "ledger_reachable": self.reachable,
            "last_lease_ok_s_ago": round(time.time() - self.last_ok, 1) if self.last_ok else None,
            "budgets_leased": len(held),
            "lease_requests": self.requests,
            "lease_failures": self.failures,
            "served_fail_open": self.served_open,
        }

    # -- internals ------------------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_round(self, round_: _Round) -> None:
        await asyncio.sleep(0)  # requests arriving in the same loop turn join this round
        self._round = None
        asks = [self._ask(state, need, round_.units[key]) for key, (state, need) in round_.needs.items()]
        rates = list(round_.rates.values())
        ok = await self._request(asks, [state for state, _ in round_.needs.values()], rates)
        if not round_.done.done():
            round_.done.set_result(ok)

    async def _top_up(self, state: BudgetState, unit: Decimal) -> None:
        try:
            await self._request([self._ask(state, _ZERO, unit)], [state])
        finally:
            self._topping.discard(state.config.id)

    async def _top_up_rate(self, lease: RateLease, key: tuple[str, int], unit: int) -> None:
        try:
            await self._request([], [], [(lease, unit, unit)])
        finally:
            self._topping_rates.discard(key)

    def _ask(self, state: BudgetState, need: Decimal, unit: Decimal) -> LeaseAsk:
        return LeaseAsk(
            budget_id=state.config.id,
            period_start=state.lease_period,
            used=state.lease_used,
            need=need,
            unit=unit,
            fresh=state.fresh,
        )

    async def _request(
        self,
        asks: list[LeaseAsk],
        states: list[BudgetState],
        rates: list[tuple[RateLease, int, int]] | None = None,
    ) -> bool:
        nc = self._nc
        self.requests += 1
        self._requests_counter.inc()
        sent = time.monotonic()
        try:
            if nc is None or not nc.is_connected:
                raise ConnectionError("NATS is not connected")
            message = await nc.request(
                self._subject,
                encode(
                    LeaseRequest(
                        edge_id=self.edge_id,
                        asks=asks,
                        rates=[
                            RateAsk(
                                key=lease.key,
                                window_start=lease.window_start,
                                limit=lease.limit,
                                need=need,
                                unit=unit,
                                used=lease.used,
                            )
                            for lease, need, unit in rates or ()
                        ],
                    )
                ),
                timeout=self.timeout_s,
            )
            reply = decode(message.data, LeaseReply)
            if reply.error:
                raise RuntimeError(reply.error)
        except Exception as exc:
            self.failures += 1
            self._failures_counter.inc()
            self._reachable_gauge.set(0)
            self.reachable = False
            log.debug("lease request failed: %s", exc)
            return False
        self.reachable = True
        self._reachable_gauge.set(1)
        self.last_ok = time.time()
        by_id = {state.config.id: state for state in states}
        for grant in reply.grants:
            if grant.budget_id not in by_id:
                continue
            # The budget in force: a snapshot applied during the round trip replaced the state that asked.
            state = self._tracker.state(grant.budget_id) or by_id[grant.budget_id]
            _adopt(state, grant, sent)
        by_key = {(lease.key, lease.window_start): lease for lease, _, _ in rates or ()}
        for rate in reply.rates:
            lease = by_key.get((rate.key, rate.window_start))
            if lease is not None:
                lease.granted = max(lease.granted, rate.granted)
        return True

    async def run(self) -> None:
        """Renew the leases this edge holds (and report what it used) until cancelled."""
        while True:
            await asyncio.sleep(self.renew_every_s)
            held = [state for state in self._tracker.states() if state.leased and state.granted > 0]
            if held:
                await self._request([self._ask(state, _ZERO, _ZERO) for state in held], held)


def _adopt(state: BudgetState, grant: LeaseGrant, sent: float) -> None:
    if not grant.leased:
        state.leased = False  # no longer a blocking budget of this namespace; the next snapshot says so too
        return
    if grant.period_start != state.lease_period:
        # A new period: what this edge holds in flight is all it uses of the new one so far.
        state.lease_period = grant.period_start
        state.lease_used = state.reserved
        state.fresh = False
    if state.fresh:
        state.lease_used = max(state.lease_used, grant.used)
        state.fresh = False
    state.granted = grant.granted
    state.lease_until = sent + grant.ttl_s * (1.0 - EXPIRY_MARGIN)
