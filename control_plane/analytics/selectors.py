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
    spends = []
    for budget in snapshot.budgets:
        by_edge = _spent_by_edge(budget, members)
        total = sum(by_edge.values(), Decimal("0"))
        spends.append(BudgetSpend(budget_id=budget.id, spent=total, period_start=budget.period_start, by_edge=by_edge))
    return spends


def _spent_by_edge(budget: BudgetConfig, members: dict[int, list[int]]) -> dict[str, Decimal]:
    target = {
        "app": Q(app_id=budget.target_id),
        "user": Q(user_id=budget.target_id),
        "llm": Q(llm_id=budget.target_id),
        "group": Q(user_id__in=members.get(budget.target_id, [])),
    }[budget.scope]
    window = Q(timestamp__gte=dt.datetime.fromtimestamp(budget.period_start, tz=dt.UTC))
    if budget.period_end:
        window &= Q(timestamp__lt=dt.datetime.fromtimestamp(budget.period_end, tz=dt.UTC))
    rows = (
        BudgetUsageRecord.objects.filter(target & window, currency=budget.currency)
        .values("edge_id")
        .annotate(s=Sum("cost"))
        .order_by("edge_id")
    )
    return {row["edge_id"]: row["s"] or Decimal("0") for row in rows}


def usage_series(
    *, group_by: str, since: dt.datetime, bucket: str = "day", namespaces: frozenset[str] | None = None
) -> list[dict]:
    """Requests, tokens and spend per `group_by` ("app_id" or "llm_slug") per hour/day since `since`, in
    `namespaces` (None = every namespace)."""
    if group_by not in {"app_id", "llm_slug"}:
        raise ValueError("group_by must be app_id or llm_slug")
    trunc = TruncHour if bucket == "hour" else TruncDay
    events = AnalyticsEvent.objects.filter(timestamp__gte=since)
    if namespaces is not None:
        events = events.filter(namespace__in=sorted(namespaces))
    rows = (
        events.annotate(bucket=trunc("timestamp"))
        .values("bucket", group_by)
        .annotate(requests=Count("id"), tokens=Sum("total_tokens"), cost=Sum("cost"))
        .order_by("bucket", group_by)
    )
    return list(rows)


USAGE_SUMMARY_IMPORT_PATH = "plugins.usage_summary.plugin:UsageSummary"


def usage_summary_rows() -> list[dict]:
    """What the bundled usage_summary plugin's studio half stored (studio KV), added up per namespace/app/user.

    Read here rather than through the plugin because Django views may not call plugins synchronously per request
    and plugins may not import Django; the arithmetic is the plugin's own (`plugins.usage_summary.plugin.totals`).
    """
    import json

    from control_plane.kv.services import kv_list, kv_read
    from control_plane.plugins.models import Plugin
    from plugins.usage_summary.plugin import SUMMARY_PREFIX, totals

    records: list[dict] = []
    for slug in Plugin.objects.filter(import_path=USAGE_SUMMARY_IMPORT_PATH).values_list("slug", flat=True):
        for key in kv_list(plugin_slug=slug, prefix=SUMMARY_PREFIX):
            value = kv_read(plugin_slug=slug, key=key)
            if value is not None:
                records.append(json.loads(value))
    return totals(records)
