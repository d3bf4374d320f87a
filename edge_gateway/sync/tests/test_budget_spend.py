"""The edge enforces the control plane's figure plus its own spend the control plane has not seen yet.

Its own spend is counted per budget as its requests settle (`BudgetTracker.settle`): in the budget's currency, and
only for requests that started in the budget's period."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from edge_gateway.budgets import BudgetTracker, Reservation
from edge_gateway.sync.client import ConfigSync
from shared_sdk.snapshot import BudgetConfig
from shared_sdk.sync_protocol import BudgetSpend, BudgetUpdate

PERIOD = 1_700_000_000.0


class Store:
    def __init__(self) -> None:
        self.budgets = BudgetTracker()
        self.budgets.load([BudgetConfig(id=1, scope="app", target_id=7, limit=Decimal("10"), period_start=PERIOD)])
        self.current = SimpleNamespace(users={})

    def update_budget_spend(self, budget_id: int, spent: Decimal, period_start: float) -> None:
        self.budgets.update_spend(budget_id, spent, period_start)

    def spend(self, cost: str, *, app_id: int = 7, started_at: float = PERIOD + 10, currency: str = "USD") -> None:
        """A request of `app_id` reserves its bound and settles at `cost`, as accounting does."""
        states = self.budgets.applicable(app_id, None, None)
        bound = Decimal("1")
        assert self.budgets.reserve(states, bound) is None
        self.budgets.settle(Reservation(states, bound), Decimal(cost), started_at, currency)


def _update(total: str, mine: str) -> BudgetUpdate:
    spend = BudgetSpend(budget_id=1, spent=Decimal(total), period_start=PERIOD, by_edge={"e1": Decimal(mine)})
    return BudgetUpdate(namespace="ns", generated_at=0, budgets=[spend])


def test_control_figure_plus_own_unreflected_spend():
    store = Store()
    sync = ConfigSync(store=store, namespace="ns", edge_id="e1")
    for cost in ("1", "2", "0.5"):  # this edge spent 3.5; the control plane has seen 1 of it, other edges 4
        store.spend(cost)
    sync.apply_budgets(_update(total="5", mine="1"))
    assert store.budgets.state(1).spent == Decimal("7.5")  # 5 + (3.5 - 1), not max(5, 3.5)
    sync.apply_budgets(_update(total="7.5", mine="3.5"))  # everything reflected: nothing added twice
    assert store.budgets.state(1).spent == Decimal("7.5")


def test_other_apps_other_currencies_and_requests_from_before_the_period_do_not_count():
    store = Store()
    sync = ConfigSync(store=store, namespace="ns", edge_id="e1")
    store.spend("4", app_id=8)  # another app: not this budget's
    store.spend("4", started_at=PERIOD - 1)  # started before the period
    store.spend("4", currency="EUR")  # priced in another currency
    assert store.budgets.state(1).own_spent == 0
    sync.apply_budgets(_update(total="9", mine="0"))
    assert store.budgets.state(1).spent == Decimal("9")  # not 9 + the 8 settled here under this budget


def test_own_spend_survives_a_config_change_and_starts_over_with_a_new_period():
    store = Store()
    sync = ConfigSync(store=store, namespace="ns", edge_id="e1")
    store.spend("3")
    store.budgets.load([BudgetConfig(id=1, scope="app", target_id=7, limit=Decimal("20"), period_start=PERIOD)])
    sync.apply_budgets(_update(total="1", mine="0"))
    assert store.budgets.state(1).spent == Decimal("4")  # 1 + 3 this edge spent before the change
    later = PERIOD + 3600
    store.update_budget_spend(1, Decimal("0"), later)  # the next period
    store.spend("2", started_at=later + 1)
    assert store.budgets.state(1).own_spent == Decimal("2")
