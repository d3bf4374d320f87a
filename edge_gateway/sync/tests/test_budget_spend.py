"""The edge enforces the control plane's spend figure plus its own spend the control plane has not seen yet."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from edge_gateway.budgets import BudgetTracker
from edge_gateway.sync.client import ConfigSync
from shared_sdk.messages import AnalyticsRecord
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


def _spend(cost: str) -> AnalyticsRecord:
    return AnalyticsRecord(app_id=7, cost=Decimal(cost), timestamp=PERIOD + 10)


def _update(total: str, mine: str) -> BudgetUpdate:
    spend = BudgetSpend(budget_id=1, spent=Decimal(total), period_start=PERIOD, by_edge={"e1": Decimal(mine)})
    return BudgetUpdate(namespace="ns", generated_at=0, budgets=[spend])


def test_control_figure_plus_own_unreflected_spend():
    store = Store()
    sync = ConfigSync(store=store, namespace="ns", edge_id="e1")
    for cost in ("1", "2", "0.5"):  # this edge spent 3.5; the control plane has seen 1 of it, other edges 4
        sync.note_spend(_spend(cost))
    sync.apply_budgets(_update(total="5", mine="1"))
    assert store.budgets.state(1).spent == Decimal("7.5")  # 5 + (3.5 - 1), not max(5, 3.5)
    sync.apply_budgets(_update(total="7.5", mine="3.5"))  # everything reflected: nothing added twice
    assert store.budgets.state(1).spent == Decimal("7.5")


def test_other_budgets_and_other_apps_do_not_count():
    store = Store()
    sync = ConfigSync(store=store, namespace="ns", edge_id="e1")
    sync.note_spend(AnalyticsRecord(app_id=8, cost=Decimal("4"), timestamp=PERIOD + 1))  # another app
    sync.note_spend(AnalyticsRecord(app_id=7, cost=Decimal("4"), timestamp=PERIOD - 1))  # before the period
    sync.apply_budgets(_update(total="2", mine="0"))
    assert store.budgets.state(1).spent == Decimal("2")
