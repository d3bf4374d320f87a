"""Writes to budgets, the spend the edges report, and the periodic roll-over to a new period."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from control_plane.sync.services import config_change_record

from .currency_rule import budget_currency_errors
from .models import Budget, BudgetEdgeSpend
from .periods import period_bounds

__all__ = [
    "BUDGET_FIELDS",
    "budget_create",
    "budget_delete",
    "budget_rollover_periods",
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
    "alert_thresholds",
    "notify_email",
    "is_active",
)


_A_TARGET = {"app": "an app", "user": "a user", "group": "a group", "llm": "an LLM"}


def _a(target: str) -> str:
    return _A_TARGET.get(target, f"a {target}")


def budget_target_errors(scope: str, targets: dict[str, Any]) -> dict[str, str]:
    """Per field, what is wrong with the targets of a `scope` budget: it names exactly its own kind of target.
    The admin's form shows these beside its other errors (else the operator read the database constraint's name)."""
    errors = {}
    if targets.get(scope) is None:
        errors[scope] = f"{_a(scope).capitalize()} budget needs {_a(scope)}."
    for other, value in targets.items():
        if other != scope and value is not None:
            errors[other] = f"{_a(scope).capitalize()} budget cannot also name {_a(other)}."
    return errors


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
    errors = budget_target_errors(budget.scope, targets)
    if errors:
        raise ValidationError(errors)
    if budget.alert_thresholds is None:  # a blank JSON field skips field validators
        raise ValidationError({"alert_thresholds": "Give a list of percentages, e.g. [50, 80, 90, 100] ([]: none)."})
    if budget.period == Budget.Period.ANNIVERSARY_MONTHLY and budget.anchor is None:
        budget.anchor = timezone.now()
    budget.period_start, budget.period_end = period_bounds(budget.period, timezone.now(), budget.anchor)
    budget.namespace = _namespace(budget)
    budget.full_clean()
    if budget.is_active:
        mismatches = budget_currency_errors(
            scope=budget.scope, app=budget.app, llm=budget.llm, currency=budget.currency
        )
        if mismatches:
            raise ValidationError({"currency": mismatches})
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
def budget_rollover_periods() -> int:
    """Start a new period for every budget whose period ended; spend (total and per edge) restarts at zero.

    Returns how many. Alerts are per period, so every threshold can fire again in the new one."""
    now = timezone.now()
    rolled = 0
    namespaces = set()
    for budget in Budget.objects.select_for_update(skip_locked=True).filter(period_end__lte=now):
        budget.period_start, budget.period_end = period_bounds(budget.period, now, budget.anchor)
        budget.spent = budget.reserved = Decimal("0")
        budget.save(update_fields=["period_start", "period_end", "spent", "reserved", "updated_at"])
        BudgetEdgeSpend.objects.filter(budget=budget).delete()
        namespaces.add(budget.namespace)
        rolled += 1
    for namespace in sorted(namespaces):
        config_change_record(namespace=namespace, reason="budget periods rolled over")
    return rolled
