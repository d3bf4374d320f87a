"""A budget's spend read from per-hour and per-minute sums: the same figure as a SUM over its records, at a cost
that does not grow with the period's traffic, whoever wrote, deleted or changed the records."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from control_plane.analytics.models import BudgetUsageHour, BudgetUsageMinute, BudgetUsageRecord
from control_plane.analytics.selectors import budget_spend_by_edge, spent_in_window
from control_plane.analytics.services import analytics_apply_retention, analytics_ingest_batches
from shared_sdk.messages import BudgetUsage
from shared_sdk.snapshot import BudgetConfig
from shared_sdk.sync_protocol import TelemetryBatch

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _ship(edge: str, usage: list[BudgetUsage], batch_id: str = "b") -> None:
    analytics_ingest_batches(
        [TelemetryBatch(batch_id=batch_id, edge_id=edge, namespace="ns", created_at=time.time(), budget_usage=usage)]
    )


def _usage(n: int, at: dt.datetime, *, app: int = 7, user: int | None = 11, cost: str = "0.25", **kw) -> BudgetUsage:
    return BudgetUsage(
        record_id=f"r-{n}", app_id=app, user_id=user, llm_id=3, cost=Decimal(cost), timestamp=at.timestamp(), **kw
    )


def _sums_match_records() -> None:
    """Both tables hold exactly the records' sums per span, edge, currency, app, user and LLM."""
    for model, span in ((BudgetUsageMinute, "minute"), (BudgetUsageHour, "hour")):
        with connection.cursor() as cursor:
            cursor.execute(
                f"""SELECT date_trunc('{span}', "timestamp", 'UTC'), edge_id, currency, coalesce(app_id, 0),
                           coalesce(user_id, 0), coalesce(llm_id, 0), sum(cost), count(*)
                    FROM analytics_budgetusagerecord GROUP BY 1, 2, 3, 4, 5, 6"""
            )
            expected = sorted(cursor.fetchall())
        stored = sorted(
            model.objects.values_list("start", "edge_id", "currency", "app_id", "user_id", "llm_id", "cost", "records")
        )
        assert stored == expected, model.__name__


def _raw_spend(column: str, ids: list[int], since: dt.datetime, until: dt.datetime | None) -> dict[str, Decimal]:
    rows = BudgetUsageRecord.objects.filter(**{f"{column}__in": ids}, currency="USD", timestamp__gte=since)
    if until is not None:
        rows = rows.filter(timestamp__lt=until)
    return {r["edge_id"]: r["s"] for r in rows.values("edge_id").annotate(s=Sum("cost")) if r["s"] is not None}


def test_the_sums_equal_the_records_through_ingest_again_retention_and_every_kind_of_write():
    at = START + dt.timedelta(hours=5, minutes=3, seconds=20)
    usage = [_usage(i, at + dt.timedelta(seconds=17 * i), cost=f"0.{i + 1:02d}") for i in range(40)]
    _ship("edge-a", usage[:30])
    _ship("edge-a", usage[:30])  # the same NATS message delivered again: stored once, counted once
    _ship("edge-b", usage[25:])  # records 25-29 again, from another subject: still once
    _sums_match_records()
    assert BudgetUsageRecord.objects.count() == 40
    BudgetUsageRecord.objects.create(record_id="by-hand", timestamp=at, app_id=7, cost=Decimal("9"), edge_id="studio")
    BudgetUsageRecord.objects.filter(record_id__in=["r-3", "r-4"]).delete()
    BudgetUsageRecord.objects.filter(record_id="r-5").update(cost=Decimal("100"), timestamp=at + dt.timedelta(days=2))
    _sums_match_records()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE analytics_budgetusagerecord")
    assert not BudgetUsageMinute.objects.exists() and not BudgetUsageHour.objects.exists()


def test_retention_takes_the_deleted_records_out_of_the_sums(monkeypatch):
    monkeypatch.setenv("FJORDGATE_ANALYTICS_RETENTION_DAYS", "30")
    now = dt.datetime.now(dt.UTC)
    _ship("edge-a", [_usage(i, now - dt.timedelta(days=40, minutes=i)) for i in range(5)])
    _ship("edge-a", [_usage(i, now - dt.timedelta(minutes=i)) for i in range(5, 8)], batch_id="b2")
    assert analytics_apply_retention(now=now) == 5
    _sums_match_records()
    assert BudgetUsageMinute.objects.count() == 3


def test_any_window_reads_the_same_spend_as_a_sum_over_its_records():
    """Windows cut anywhere (an anniversary period starts at its anchor's second), open-ended, within one minute
    or one hour, on a span's edge: per edge, the same figure as the records' SUM."""
    rng = random.Random(17)
    usage = []
    for i in range(600):
        at = START + dt.timedelta(seconds=rng.randrange(0, 3 * 86400), microseconds=rng.randrange(10**6))
        usage.append(_usage(i, at, user=rng.choice([11, 12, None]), cost=str(Decimal(rng.randrange(1, 10**6)) / 10**7)))
    usage.append(_usage(600, START + dt.timedelta(hours=2)))  # exactly on an hour
    usage.append(_usage(601, START + dt.timedelta(hours=2, minutes=5)))  # exactly on a minute
    for n, edge in enumerate(("edge-a", "edge-b", "edge-c")):
        _ship(edge, usage[n::3], batch_id=edge)
    cuts = [
        START + dt.timedelta(seconds=rng.randrange(0, 3 * 86400), microseconds=rng.randrange(10**6)) for _ in range(40)
    ]
    cuts += [START + dt.timedelta(hours=2), START + dt.timedelta(hours=2, minutes=5), START]
    windows: list[tuple[dt.datetime, dt.datetime | None]] = [(a, b) for a, b in itertools.pairwise(cuts) if a < b]
    windows += [(cut, None) for cut in cuts[:5]]
    windows += [(cut, cut + dt.timedelta(seconds=40)) for cut in cuts[:5]]  # within a minute or across one
    windows += [(cut, cut + dt.timedelta(minutes=50)) for cut in cuts[:5]]  # within an hour or across one
    windows += [(START + dt.timedelta(hours=2), START + dt.timedelta(hours=2, minutes=5))]
    for since, until in windows:
        for target in (("app_id", [7]), ("user_id", [11]), ("user_id", [11, 12]), ("llm_id", [3]), ("app_id", [8])):
            assert spent_in_window(target, since, until, "USD") == _raw_spend(*target, since, until), (since, until)
    assert spent_in_window(("user_id", []), START, None, "USD") == {}
    assert spent_in_window(("app_id", [7]), START, None, "EUR") == {}


def _records_read() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
            "WHERE relname = 'analytics_budgetusagerecord'"
        )
        return cursor.fetchone()[0]


def test_reading_a_budget_s_spend_does_not_read_the_period_s_records():
    """A month of traffic in 5,000 records: the read takes its whole hours and minutes from their sums and reads
    only the records of the partial minute its period starts with (an anniversary budget's anchor second)."""
    anchor = START + dt.timedelta(seconds=30)
    _ship("edge-a", [_usage(i, anchor + dt.timedelta(seconds=517 * i + 3)) for i in range(5000)])
    budget = BudgetConfig(
        id=1,
        scope="app",
        target_id=7,
        limit=Decimal(1000),
        period_start=anchor.timestamp(),
        period_end=(anchor + dt.timedelta(days=30)).timestamp(),
    )
    before = _records_read()
    spend = budget_spend_by_edge(budget=budget)
    assert _records_read() - before <= 10
    assert spend == {"edge-a": Decimal("1250.0000000000")} == _raw_spend("app_id", [7], anchor, None)
