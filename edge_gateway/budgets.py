"""Budget enforcement at the edge: reserve an upper bound before the call, settle the real cost after.

Tyk's community edition checks with an estimated cost of 0 and Bifrost books only afterwards, so concurrent
requests overshoot a budget freely. Here the pre-check *reserves* a strict upper bound of the request's cost
(`policy.reservation_bound`), so requests in flight count against the budget, and settlement swaps the
reservation for the real cost.

Across the namespace's edges a blocking budget is held by quota leasing (docs/governance.md): the control plane
grants this edge a slice (`granted`, cumulative for the period) and the edge spends only from it. `lease_used`
is what this edge settled plus what it holds in flight; a request fits while `lease_used + bound <= granted`
and the lease is live, with no round trip. A `LeaseSource` (the NATS client, `sync/leases.py`) fetches more:
in the background below a low-water mark, or while a request waits when its bound does not fit. Without a
source (an edge without NATS) the edge enforces the control plane's figure plus its own spend, as before.

Scopes: `app` (target = app id), `user` (user id), `llm` (LLM id), `group` (user group id). Only budgets with
`action="block"` reject; `notify` budgets are tracked and reported but never block.

Currencies: a budget counts only costs in its own currency, as the control plane does (there is no exchange
rate here). A request priced in another currency than a blocking budget in force for it is refused before the
call (the control plane refuses writing such a pair; this is the net for a configuration older than that rule);
a `notify` budget in another currency does not see it. Nothing is reserved, leased or spent across currencies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from shared_sdk.snapshot import BudgetConfig

from .ratelimit import RateLease

__all__ = ["LOW_WATER_UNITS", "BudgetState", "BudgetTracker", "LeaseSource", "Reservation"]

_ZERO = Decimal("0")
LOW_WATER_UNITS = 4
"""Ask for more in the background once a lease's headroom is below this many of the last request's bound."""
_APPLICABLE_CACHE = 10_000
"""(app, user, LLM, groups) combinations whose budgets are remembered; past it the cache starts over."""


@dataclass(slots=True)
class BudgetState:
    config: BudgetConfig
    spent: Decimal
    period_start: float
    reserved: Decimal = _ZERO
    leased: bool = False
    """Held by a lease (a blocking budget on an edge with a `LeaseSource`)."""
    granted: Decimal = _ZERO
    lease_used: Decimal = _ZERO
    """Settled spend plus reservations in flight at this edge in `lease_period`."""
    lease_period: float = 0.0
    lease_until: float = 0.0
    """Monotonic time after which the lease may no longer be spent unless renewed."""
    fresh: bool = True
    """Nothing heard from the ledger yet for this budget (the edge just started): adopt its figure."""
    own_spent: Decimal = _ZERO
    """What this edge's requests cost in `own_period` (in the budget's currency, started in that period): the
    config sync adds what of it the control plane's figure does not reflect yet (`ConfigSync.apply_budgets`)."""
    own_period: float = 0.0

    @property
    def remaining(self) -> Decimal:
        return self.config.limit - self.spent - self.reserved

    @property
    def headroom(self) -> Decimal:
        return self.granted - self.lease_used

    def lacks(self, amount: Decimal, now: float) -> Decimal:
        """What a leased budget lacks to take `amount` now (0: it fits)."""
        if not self.leased:
            return _ZERO
        if now >= self.lease_until:
            return amount
        return max(_ZERO, self.lease_used + amount - self.granted)


@dataclass(slots=True)
class Reservation:
    """What one request holds against its budgets until it is settled (or released)."""

    states: list[BudgetState] = field(default_factory=list)
    amount: Decimal = _ZERO
    settled: bool = False
    currency: str = ""
    """The currency `amount` is in (the price's); only budgets in it hold it. Empty: every state (no price)."""


class LeaseSource(Protocol):
    """Where leases come from (the edge's NATS client, `edge_gateway.sync.leases.LeaseClient`)."""

    async def obtain(self, short: list[tuple[BudgetState, Decimal]], unit: Decimal) -> bool:
        """One round trip (bounded) asking for what `short` lacks; False when the ledger could not be reached."""
        ...

    def top_up(self, state: BudgetState, unit: Decimal) -> None:
        """Ask for another slice in the background (no-op when an ask is already on its way)."""
        ...

    async def obtain_rate(self, lease: RateLease, need: int, unit: int = 1) -> bool:
        """One round trip (bounded) asking for `need` more of a rate limit's minute (requests, or tokens for a tpm
        limit; `unit` is one request's amount); False when the ledger could not be reached."""
        ...

    def top_up_rate(self, lease: RateLease, unit: int = 1) -> None:
        """Ask for another slice of a rate limit's minute in the background."""
        ...

    def unreachable_open(self, state: BudgetState) -> bool:
        """Whether to serve beyond the lease: the ledger is unreachable and the budget says `fail_open`."""
        ...


class BudgetTracker:
    def __init__(self) -> None:
        self._by_id: dict[int, BudgetState] = {}
        self._by_target: dict[tuple[str, int], list[BudgetState]] = {}
        self._applicable: dict[tuple[int | None, int | None, int | None, tuple[int, ...]], list[BudgetState]] = {}
        self.source: LeaseSource | None = None
        """Set by the sync service when the edge talks to NATS: blocking budgets are then leased."""

    def load(self, budgets: list[BudgetConfig]) -> None:
        """Adopt a snapshot's budgets, keeping what this edge already spent and holds in the same period."""
        by_id: dict[int, BudgetState] = {}
        by_target: dict[tuple[str, int], list[BudgetState]] = {}
        leasing = self.source is not None
        for config in budgets:
            old = self._by_id.get(config.id)
            state = BudgetState(config, config.spent, config.period_start, lease_period=config.period_start)
            if old is not None and old.period_start == config.period_start:
                state.spent = max(old.spent, config.spent)
            if old is not None:
                state.reserved = old.reserved  # the requests in flight settle on this state (`settle`)
                state.own_spent, state.own_period = old.own_spent, old.own_period
                state.granted, state.lease_used, state.lease_period = old.granted, old.lease_used, old.lease_period
                state.lease_until, state.fresh = old.lease_until, old.fresh
            state.leased = leasing and config.action == "block"
            by_id[config.id] = state
            by_target.setdefault((config.scope, config.target_id), []).append(state)
        self._by_id = by_id
        self._by_target = by_target
        self._applicable = {}

    def enable_leasing(self, source: LeaseSource) -> None:
        self.source = source
        for state in self._by_id.values():
            state.leased = state.config.action == "block"

    def update_spend(self, budget_id: int, spent: Decimal, period_start: float) -> None:
        """The control plane's total for a budget: a new period resets, the same period takes the max."""
        state = self._by_id.get(budget_id)
        if state is None:
            return
        if period_start != state.period_start:
            state.period_start = period_start
            state.spent = spent
        else:
            state.spent = max(state.spent, spent)

    def applicable(
        self, app_id: int | None, user_id: int | None, llm_id: int | None, group_ids: list[int] | None = None
    ) -> list[BudgetState]:
        """The budgets a request of this app, user, LLM and groups counts against. Cached until the next `load`
        (it runs on every request; callers must not change the list)."""
        if not self._by_target:
            return []
        key = (app_id, user_id, llm_id, tuple(group_ids) if group_ids else ())
        found = self._applicable.get(key)
        if found is None:
            if len(self._applicable) >= _APPLICABLE_CACHE:
                self._applicable.clear()
            found = self._applicable[key] = self._find(app_id, user_id, llm_id, group_ids)
        return found

    def _find(
        self, app_id: int | None, user_id: int | None, llm_id: int | None, group_ids: list[int] | None
    ) -> list[BudgetState]:
        found: list[BudgetState] = []
        for key in (("app", app_id), ("user", user_id), ("llm", llm_id)):
            if key[1] is not None:
                found.extend(self._by_target.get(key, ()))  # type: ignore[arg-type]
        for group_id in group_ids or ():
            found.extend(self._by_target.get(("group", group_id), ()))
        return found

    def short(self, states: list[BudgetState], estimate: Decimal) -> list[tuple[BudgetState, Decimal]]:
        """The leased budgets whose lease cannot take `estimate` now, with what each lacks."""
        now = time.monotonic()
        return [(state, lacking) for state in states if (lacking := state.lacks(estimate, now)) > 0]

    def reserve(
        self,
        states: list[BudgetState],
        estimate: Decimal,
        beyond_lease: frozenset[int] = frozenset(),
        currency: str = "",
    ) -> BudgetState | None:
        """Reserve `estimate` (in `currency`; empty: no price) on every state of that currency; returns the first
        blocking budget it would exceed, or that is in another currency (nothing held: the caller tells the two
        apart by the currency). A notify budget in another currency is left alone.

        A leased budget must also hold it in its lease, unless its id is in `beyond_lease` (fail_open while the
        ledger is unreachable: served and accounted, reported to the ledger as used once it is back)."""
        now = time.monotonic()
        for state in states:
            if state.config.action != "block":
                continue
            if currency and state.config.currency != currency:
                return state
            if state.spent + state.reserved + estimate > state.config.limit:
                return state
            if state.config.id not in beyond_lease and state.lacks(estimate, now) > 0:
                return state
        for state in states:
            if currency and state.config.currency != currency:
                continue
            state.reserved += estimate
            state.lease_used += estimate
        return None

    def settle(self, reservation: Reservation, cost: Decimal, started_at: float = 0.0, currency: str = "") -> None:
        """Swap what `reservation` holds for `cost`, on the budgets in force now: a snapshot applied while the
        request was in flight (`load`) replaced their states, and settling on the replaced ones left the bound held
        on the new ones for the rest of the period (a budget refusing every request after a few config changes
        under traffic). A budget no longer in the config is skipped.

        The cost (in `currency`) counts only on the budgets in that currency: in their spend, their lease and as
        this edge's own spend (`own_spent`) when the request started in their period (`started_at`, wall clock):
        counted here, where the budgets are at hand, rather than looked up again from each analytics record the
        telemetry shipper writes. A budget in another currency held nothing of the reservation either."""
        if reservation.settled:
            return
        reservation.settled = True
        by_id = self._by_id
        held_in = reservation.currency
        for held in reservation.states:
            state = by_id.get(held.config.id)
            if state is None or (held_in and held.config.currency != held_in):
                continue
            state.reserved = max(_ZERO, state.reserved - reservation.amount)
            state.lease_used = max(_ZERO, state.lease_used - reservation.amount)
            if not cost or currency != state.config.currency:
                continue
            state.lease_used += cost
            state.spent += cost
            if started_at >= state.period_start:
                if state.own_period != state.period_start:
                    state.own_spent, state.own_period = _ZERO, state.period_start
                state.own_spent += cost

    def state(self, budget_id: int) -> BudgetState | None:
        return self._by_id.get(budget_id)

    def states(self) -> list[BudgetState]:
        return list(self._by_id.values())

    def for_app(self, app_id: int) -> list[BudgetState]:
        return list(self._by_target.get(("app", app_id), ()))
