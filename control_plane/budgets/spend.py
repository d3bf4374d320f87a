"""Writes of the spend the edges reported: the budget's figures, total and per edge, then its threshold alerts.

The bridge sums every budget's ingested usage after each telemetry batch (`analytics.selectors.
budget_spend_for_snapshot`) and hands the figures here, so the API and the admin show what the edges enforce
within the bridge's debounce (~0.3 s). A figure for another period than the budget's current one (computed from
a snapshot published before a roll-over) is ignored: the roll-over's reset to zero wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from shared_sdk.sync_protocol import BudgetSpend

from .alerts import budget_alerts_fire
from .models import Budget, BudgetAlert, BudgetEdgeSpend, BudgetLease
from .reserved import budget_reserved_store

__all__ = ["budget_spend_record"]

_PERIOD_TOLERANCE_S = 1.0


@transaction.atomic
def budget_spend_record(*, spends: Iterable[BudgetSpend]) -> list[BudgetAlert]:
    """Store each budget's spend (total and per edge) and fire the thresholds it crossed; returns new alerts."""
    figures = {s.budget_id: s for s in spends}
    if not figures:
        return []
    fired: list[BudgetAlert] = []
    for budget in Budget.objects.select_for_update().filter(pk__in=figures).order_by("pk"):
        figure = figures[budget.pk]
        if abs(budget.period_start.timestamp() - figure.period_start) > _PERIOD_TOLERANCE_S:
            continue
        by_edge = {edge: Decimal(value) for edge, value in figure.by_edge.items()}
        if budget.spent != figure.spent:
            budget.spent = figure.spent
            budget.save(update_fields=["spent", "updated_at"])
        _store_edges(budget, by_edge)
        leases = BudgetLease.objects.filter(budget=budget, period_start=budget.period_start)
        budget_reserved_store(budget=budget, leases=leases, spend=by_edge, now=timezone.now())
        fired.extend(budget_alerts_fire(budget=budget))
    return fired


def _store_edges(budget: Budget, by_edge: dict[str, Decimal]) -> None:
    current = {row.edge_id: row for row in budget.edge_spends.all()}
    for edge_id, spent in by_edge.items():
        row = current.pop(edge_id, None)
        if row is None:
            BudgetEdgeSpend.objects.create(budget=budget, edge_id=edge_id, spent=spent)
        elif row.spent != spent:
            row.spent = spent
            row.save(update_fields=["spent", "updated_at"])
    # an edge with no usage left in this period (its records belonged to an earlier one) has no row
    stale = [row.pk for row in current.values() if row.reserved == 0]
    if stale:
        BudgetEdgeSpend.objects.filter(pk__in=stale).delete()
