"""Budget threshold alerts: which thresholds a budget crossed this period, and telling people about each once.

`budget_alerts_fire` runs inside the transaction that stored the new spend (the budget row is locked, so two
bridges never fire the same threshold; the unique key per budget, period and threshold is the backstop). The
alerts are delivered after that transaction commits, so a rolled-back ingest never alerts:

- a log line on `fjordgate.budgets` (WARNING),
- an event on the studio event bus, topic `fjordgate.budget.alert`, JSON payload (`alert_payload`); studio
  plugins subscribed to it in this process (the bridge, which ingests) receive it,
- an e-mail through Django's mail settings (`EMAIL_*`) when the budget has a `notify_email`.

A failing delivery is logged and does not undo the alert: the admin shows it either way.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.mail import send_mail
from django.db import transaction

from .models import Budget, BudgetAlert

__all__ = ["ALERT_TOPIC", "alert_payload", "budget_alerts_fire", "budget_thresholds_crossed"]

log = logging.getLogger("fjordgate.budgets")

ALERT_TOPIC = "fjordgate.budget.alert"


def budget_thresholds_crossed(budget: Budget) -> list[int]:
    """The budget's thresholds (percent of the limit) that its spend has reached, lowest first."""
    if budget.spent <= 0:
        return []
    return [t for t in sorted(set(budget.alert_thresholds or ())) if budget.spent * 100 >= budget.limit * t]


def budget_alerts_fire(*, budget: Budget) -> list[BudgetAlert]:
    """Record each newly crossed threshold of the current period (call with the budget row locked)."""
    crossed = budget_thresholds_crossed(budget)
    if not crossed:
        return []
    seen = set(
        BudgetAlert.objects.filter(budget=budget, period_start=budget.period_start).values_list("threshold", flat=True)
    )
    fired = [
        BudgetAlert.objects.create(
            budget=budget,
            period_start=budget.period_start,
            threshold=threshold,
            spent=budget.spent,
            limit=budget.limit,
            emailed_to=budget.notify_email,
        )
        for threshold in crossed
        if threshold not in seen
    ]
    if fired:
        transaction.on_commit(lambda: _deliver(budget, fired))
    return fired


def alert_payload(budget: Budget, alert: BudgetAlert) -> dict[str, Any]:
    """What subscribers and e-mails are told: enough to act without reading the database."""
    return {
        "alert_id": alert.pk,
        "budget_id": budget.pk,
        "budget": str(budget),
        "scope": budget.scope,
        "target_id": budget.target_id,
        "namespace": budget.namespace,
        "action": budget.action,
        "threshold_percent": alert.threshold,
        "spent": str(alert.spent),
        "limit": str(alert.limit),
        "currency": budget.currency,
        "period_start": budget.period_start.isoformat(),
        "period_end": budget.period_end.isoformat(),
    }


def _deliver(budget: Budget, alerts: list[BudgetAlert]) -> None:
    for alert in alerts:
        payload = alert_payload(budget, alert)
        log.warning(
            "budget alert: %s (%s %s, action %s) reached %d%% of its limit: %s of %s %s",
            budget,
            budget.scope,
            budget.target_id,
            budget.action,
            alert.threshold,
            alert.spent,
            alert.limit,
            budget.currency,
        )
        _publish(payload)
        if alert.emailed_to:
            _email(alert.emailed_to, budget, alert)


def _publish(payload: dict[str, Any]) -> None:
    from control_plane.plugins.runtime import publish_local_event
    from shared_sdk.messages import Event

    try:
        publish_local_event(
            Event(
                topic=ALERT_TOPIC,
                payload=json.dumps(payload).encode(),
                source="fjordgate.budgets",
                namespace=payload["namespace"],
            ),
            timeout_s=10,
        )
    except Exception:
        log.exception("budget alert event for budget %s could not be delivered", payload["budget_id"])


def _email(address: str, budget: Budget, alert: BudgetAlert) -> None:
    subject = f"[Fjordgate] budget {budget} reached {alert.threshold}% of its limit"
    body = (
        f"Budget: {budget} ({budget.scope} {budget.target_id}, namespace {budget.namespace or '(global)'})\n"
        f"Spent: {alert.spent} of {alert.limit} {budget.currency} ({alert.threshold}% threshold)\n"
        f"Period: {budget.period_start:%Y-%m-%d %H:%M} to {budget.period_end:%Y-%m-%d %H:%M} UTC\n"
        f"Action at 100%: {budget.get_action_display()}\n"
    )
    try:
        send_mail(subject, body, None, [address])
    except Exception:
        log.exception("budget alert e-mail to %s failed", address)
