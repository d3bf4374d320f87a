"""Budget enforcement at the edge: a check before the call with a cost estimate, and settlement after.

Tyk's community edition checks with an estimated cost of 0 and Bifrost books only afterwards, so concurrent
requests overshoot a budget freely. Here the pre-check *reserves* the estimate (from `max_tokens` and the
model's prices), so requests in flight count against the budget, and settlement swaps the reservation for the
real cost. What a budget has spent is `max(control plane's figure, this edge's)`: the control plane sums all
edges, this edge knows its own requests immediately (`update_budget_spend`).

Scopes: `app` (target = app id), `user` (user id), `llm` (LLM id), `group` (user group id). Only budgets with
`action="block"` reject; `notify` budgets are tracked and reported but never block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from shared_sdk.snapshot import BudgetConfig

__all__ = ["BudgetState", "BudgetTracker", "Reservation"]

_ZERO = Decimal("0")


@dataclass(slots=True)
class BudgetState:
    config: BudgetConfig
    spent: Decimal
    period_start: float
    reserved: Decimal = _ZERO

    @property
    def remaining(self) -> Decimal:
        return self.config.limit - self.spent - self.reserved


@dataclass(slots=True)
class Reservation:
    """What one request holds against its budgets until it is settled (or released)."""

    states: list[BudgetState] = field(default_factory=list)
    amount: Decimal = _ZERO
    settled: bool = False


class BudgetTracker:
    def __init__(self) -> None:
        self._by_id: dict[int, BudgetState] = {}
        self._by_target: dict[tuple[str, int], list[BudgetState]] = {}

    def load(self, budgets: list[BudgetConfig]) -> None:
        """Adopt a snapshot's budgets, keeping what this edge already spent in the same period."""
        by_id: dict[int, BudgetState] = {}
        by_target: dict[tuple[str, int], list[BudgetState]] = {}
        for config in budgets:
            old = self._by_id.get(config.id)
            if old is not None and old.period_start == config.period_start:
                state = BudgetState(config, max(old.spent, config.spent), config.period_start, old.reserved)
            else:
                state = BudgetState(config, config.spent, config.period_start)
            by_id[config.id] = state
            by_target.setdefault((config.scope, config.target_id), []).append(state)
        self._by_id = by_id
        self._by_target = by_target

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
        if not self._by_target:
            return []
        found: list[BudgetState] = []
        for key in (("app", app_id), ("user", user_id), ("llm", llm_id)):
            if key[1] is not None:
                found.extend(self._by_target.get(key, ()))  # type: ignore[arg-type]
        for group_id in group_ids or ():
            found.extend(self._by_target.get(("group", group_id), ()))
        return found

    def reserve(self, states: list[BudgetState], estimate: Decimal) -> BudgetState | None:
        """Reserve `estimate` on every state; returns the first blocking budget it would exceed (nothing held)."""
        for state in states:
            if state.config.action == "block" and state.spent + state.reserved + estimate > state.config.limit:
                return state
        for state in states:
            state.reserved += estimate
        return None

    def settle(self, reservation: Reservation, cost: Decimal) -> None:
        if reservation.settled:
            return
        reservation.settled = True
        for state in reservation.states:
            state.reserved = max(_ZERO, state.reserved - reservation.amount)
            state.spent += cost

    def state(self, budget_id: int) -> BudgetState | None:
        return self._by_id.get(budget_id)

    def for_app(self, app_id: int) -> list[BudgetState]:
        return list(self._by_target.get(("app", app_id), ()))
