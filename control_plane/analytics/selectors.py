"""Reads of the analytics domain: budget spend for the bridge, time series for the dashboard."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDay, TruncHour

from shared_sdk.snapshot import BudgetConfig, ConfigSnapshot
from shared_sdk.sync_protocol import BudgetSpend

from .models import AnalyticsEvent, BudgetUsageRecord


def budget_spend_for_snapshot(*, snapshot: ConfigSnapshot) -> list[BudgetSpend]:
    """Spend in the current period of every budget in the snapshot, from the usage records ingested so far."""
    members: dict[int, list[int]] = {}
    for user in snapshot.users:
        for group_id in user.group_ids:
            members.setdefault(group_id, []).append(user.id)
    return [
        BudgetSpend(budget_id=budget.id, spent=_spent(budget, members), period_start=budget.period_start)
        for budget in snapshot.budgets
    ]


def _spent(budget: BudgetConfig, members: dict[int, list[int]]) -> Decimal:
    target = {
        "app": Q(app_id=budget.target_id),
        "user": Q(user_id=budget.target_id),
        "llm": Q(llm_id=budget.target_id),
        "group": Q(user_id__in=members.get(budget.target_id, [])),
    }[budget.scope]
    window = Q(timestamp__gte=dt.datetime.fromtimestamp(budget.period_start, tz=dt.UTC))
    if budget.period_end:
        window &= Q(timestamp__lt=dt.datetime.fromtimestamp(budget.period_end, tz=dt.UTC))
    total = BudgetUsageRecord.objects.filter(target & window, currency=budget.currency).aggregate(s=Sum("cost"))["s"]
    return total or Decimal("0")


def usage_series(*, group_by: str, since: dt.datetime, bucket: str = "day") -> list[dict]:
    """Requests, tokens and spend per `group_by` ("app_id" or "llm_slug") per hour/day since `since`."""
    if group_by not in {"app_id", "llm_slug"}:
        raise ValueError("group_by must be app_id or llm_slug")
    trunc = TruncHour if bucket == "hour" else TruncDay
    rows = (
        AnalyticsEvent.objects.filter(timestamp__gte=since)
        .annotate(bucket=trunc("timestamp"))
        .values("bucket", group_by)
        .annotate(requests=Count("id"), tokens=Sum("total_tokens"), cost=Sum("cost"))
        .order_by("bucket", group_by)
    )
    return list(rows)
