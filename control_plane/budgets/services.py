"""Writes to budgets, the spend the edges report, and the periodic roll-over to a new period."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from control_plane.sync.services import config_change_record

from .models import Budget
from .periods import period_bounds

__all__ = [
    "BUDGET_FIELDS",
    "budget_create",
    "budget_delete",
    "budget_rollover_periods",
    "budget_spend_set",
    "budget_update",
]

BUDGET_FIELDS = (
    "name",
    "scope",
    "app",
    "user",
    "group",
    "llm",
    "limit",
    "currency",
    "period",
    "action",
    "on_unreachable",
    "anchor",
    "is_active",
)


def _namespace(budget: Budget) -> str:
    """App and LLM budgets belong to their target's namespace; user and group budgets are global."""
    if budget.scope == Budget.Scope.APP and budget.app is not None:
        return budget.app.namespace
    if budget.scope == Budget.Scope.LLM and budget.llm is not None:
        return budget.llm.namespace
    return ""


def _apply(budget: Budget, data: dict[str, Any]) -> Budget:
    for name in BUDGET_FIELDS:
        if name in data:
            setattr(budget, name, data[name])
    targets = {"app": budget.app_id, "user": budget.user_id, "group": budget.group_id, "llm": budget.llm_id}
    if budget.scope not in targets:
        raise ValidationError({"scope": f"Choose one of {', '.join(targets)}."})
    if targets[budget.scope] is None:
        raise ValidationError({budget.scope: f"A {budget.scope} budget needs a {budget.scope}."})
    for other, value in targets.items():
        if other != budget.scope and value is not None:
            raise ValidationError({other: f"A {budget.scope} budget cannot also name a {other}."})
    if budget.period == Budget.Period.ANNIVERSARY_MONTHLY and budget.anchor is None:
        budget.anchor = timezone.now()
    budget.period_start, budget.period_end = period_bounds(budget.period, timezone.now(), budget.anchor)
    budget.namespace = _namespace(budget)
    budget.full_clean()
    budget.save()
    return budget


@transaction.atomic
def budget_create(*, data: dict[str, Any]) -> Budget:
    budget = _apply(Budget(), data)
    config_change_record(namespace=budget.namespace, reason=f"budget {budget.pk} created")
    return budget


@transaction.atomic
def budget_update(*, budget: Budget, data: dict[str, Any]) -> Budget:
    old_namespace = budget.namespace
    budget = _apply(Budget.objects.select_for_update().get(pk=budget.pk), data)
    config_change_record(namespace=budget.namespace, reason=f"budget {budget.pk} updated")
    if old_namespace != budget.namespace:
        config_change_record(namespace=old_namespace, reason=f"budget {budget.pk} moved out")
    return budget


@transaction.atomic
def budget_delete(*, budget: Budget) -> None:
    namespace, pk = budget.namespace, budget.pk
    budget.delete()
    config_change_record(namespace=namespace, reason=f"budget {pk} deleted")


@transaction.atomic
def budget_spend_set(*, budget_id: int, spent: Decimal) -> Budget:
    """Record the spend the control plane summed for the current period (edges take max(control, local))."""
    budget = Budget.objects.select_for_update().get(pk=budget_id)
    budget.spent = spent
    budget.save(update_fields=["spent", "updated_at"])
    return budget


@transaction.atomic
def budget_rollover_periods() -> int:
    """Start a new period for every budget whose period ended; spend restarts at zero. Returns how many."""
    now = timezone.now()
    rolled = 0
    namespaces = set()
    for budget in Budget.objects.select_for_update(skip_locked=True).filter(period_end__lte=now):
        budget.period_start, budget.period_end = period_bounds(budget.period, now, budget.anchor)
        budget.spent = Decimal("0")
        budget.save(update_fields=["period_start", "period_end", "spent", "updated_at"])
        namespaces.add(budget.namespace)
        rolled += 1
    for namespace in sorted(namespaces):
        config_change_record(namespace=namespace, reason="budget periods rolled over")
    return rolled
