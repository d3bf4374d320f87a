"""Reads of the analytics domain: budget spend for the bridge, time series for the dashboard."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDay, TruncHour

from control_plane.kv.services import kv_list, kv_read
from control_plane.plugins.models import Plugin
from shared_sdk.snapshot import BudgetConfig, ConfigSnapshot
from shared_sdk.sync_protocol import BudgetSpend

from .models import AnalyticsEvent, BudgetUsageHour, BudgetUsageMinute, BudgetUsageRecord
from .usage_summaries import SUMMARY_PREFIX, USAGE_SUMMARY_ENTRY_POINT, USAGE_SUMMARY_IMPORT_PATH, totals


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


def budget_spend_by_edge(*, budget: BudgetConfig, group_members: list[int] | None = None) -> dict[str, Decimal]:
    """One budget's ingested spend in its current period per edge (the quota ledger's view of telemetry)."""
    members = {budget.target_id: group_members or []} if budget.scope == "group" else {}
    return _spent_by_edge(budget, members)


def _spent_by_edge(budget: BudgetConfig, members: dict[int, list[int]]) -> dict[str, Decimal]:
    target = {
        "app": ("app_id", [budget.target_id]),
        "user": ("user_id", [budget.target_id]),
        "llm": ("llm_id", [budget.target_id]),
        "group": ("user_id", members.get(budget.target_id, [])),
    }[budget.scope]
    since = dt.datetime.fromtimestamp(budget.period_start, tz=dt.UTC)
    until = dt.datetime.fromtimestamp(budget.period_end, tz=dt.UTC) if budget.period_end else None
    return spent_in_window(target, since, until, budget.currency)


def _hour(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _minute(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(second=0, microsecond=0)


_SumsModel = type[BudgetUsageHour] | type[BudgetUsageMinute]
_LEVELS: tuple[tuple[_SumsModel, Callable[[dt.datetime], dt.datetime], dt.timedelta], ...] = (
    (BudgetUsageHour, _hour, dt.timedelta(hours=1)),
    (BudgetUsageMinute, _minute, dt.timedelta(minutes=1)),
)
"""From the coarsest: (sums, the start of the span a moment lies in, the span); then the records themselves."""


def spent_in_window(
    target: tuple[str, list[int]], since: dt.datetime, until: dt.datetime | None, currency: str
) -> dict[str, Decimal]:
    """What the usage records of `target` (`("app_id", [7])`, `("user_id", members)`, ...) in `currency` cost in
    [since, until) per edge (`until` None: no end). The whole hours come from their sums (`BudgetUsageHour`), the
    whole minutes at either end from theirs, a partial minute at either end from the records themselves, so the
    cost of a read does not grow with the traffic of the window."""
    column, ids = target
    spent: dict[str, Decimal] = {}
    if not ids:
        return spent

    def add(rows: Any) -> None:
        for row in rows.filter(**{f"{column}__in": ids}, currency=currency).values("edge_id").annotate(s=Sum("cost")):
            spent[row["edge_id"]] = spent.get(row["edge_id"], Decimal("0")) + (row["s"] or Decimal("0"))

    def read(low: dt.datetime, high: dt.datetime | None, level: int) -> None:
        if high is not None and high <= low:
            return
        if level == len(_LEVELS):
            window = {"timestamp__gte": low} if high is None else {"timestamp__gte": low, "timestamp__lt": high}
            add(BudgetUsageRecord.objects.filter(**window))
            return
        model, floor, span = _LEVELS[level]
        first = floor(low)
        if first < low:
            first += span
        last = floor(high) if high is not None else None
        if last is not None and last <= first:  # no whole span inside: the finer levels read it all
            read(low, high, level + 1)
            return
        whole = {"start__gte": first} if last is None else {"start__gte": first, "start__lt": last}
        add(model.objects.filter(**whole))
        read(low, first, level + 1)
        if last is not None:
            read(last, high, level + 1)

    read(since, until, 0)
    return spent


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


def usage_summary_rows() -> list[dict[str, Any]]:
    """What the bundled usage_summary plugin's studio half stored (studio KV), added up per namespace/app/user.

    Read here rather than through the plugin because Django views may not call plugins synchronously per request;
    the stored format and the arithmetic are in `usage_summaries`.
    """
    records: list[dict[str, Any]] = []
    summaries = Plugin.objects.filter(
        Q(entry_point=USAGE_SUMMARY_ENTRY_POINT) | Q(import_path=USAGE_SUMMARY_IMPORT_PATH)
    ).values_list("slug", flat=True)
    for slug in summaries:
        for key in kv_list(plugin_slug=slug, prefix=SUMMARY_PREFIX):
            value = kv_read(plugin_slug=slug, key=key)
            if value is not None:
                records.append(json.loads(value))
    return totals(records)


def app_usage_daily(*, app_id: int, start: dt.date, end: dt.date) -> list[dict]:
    """One row per UTC day from `start` to `end` (both included) for one app, days without traffic as zeros,
    so charts and CSV exports have a point for every day of the range the user picked."""
    since = dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    rows = (
        AnalyticsEvent.objects.filter(app_id=app_id, timestamp__gte=since, timestamp__lt=until)
        .annotate(day=TruncDay("timestamp", tzinfo=dt.UTC))
        .values("day")
        .annotate(
            requests=Count("id"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            tokens=Sum("total_tokens"),
            cost=Sum("cost"),
        )
        .order_by("day")
    )
    by_day = {row["day"].date(): row for row in rows}
    days = []
    for offset in range((end - start).days + 1):
        day = start + dt.timedelta(days=offset)
        row = by_day.get(day, {})
        days.append(
            {
                "day": day,
                "requests": row.get("requests") or 0,
                "prompt_tokens": row.get("prompt_tokens") or 0,
                "completion_tokens": row.get("completion_tokens") or 0,
                "tokens": row.get("tokens") or 0,
                "cost": row.get("cost") or Decimal("0"),
            }
        )
    return days


def app_spent_in_period(*, app_id: int, since: dt.datetime, until: dt.datetime, currency: str) -> Decimal:
    """What an app spent in [since, until) from the ingested budget-usage records (what the bridge sums for edges)."""
    return sum(spent_in_window(("app_id", [app_id]), since, until, currency).values(), Decimal("0"))
