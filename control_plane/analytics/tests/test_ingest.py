import datetime as dt
import time
from decimal import Decimal

import pytest

from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord
from control_plane.analytics.selectors import budget_spend_for_snapshot
from control_plane.analytics.services import analytics_apply_retention, analytics_ingest_batches
from shared_sdk.messages import AnalyticsRecord, BudgetUsage
from shared_sdk.snapshot import BudgetConfig, ConfigSnapshot, UserConfig
from shared_sdk.sync_protocol import TelemetryBatch

pytestmark = pytest.mark.django_db


def batch(records, usage=()):
    return TelemetryBatch(
        batch_id="b",
        edge_id="e1",
        namespace="demo",
        created_at=time.time(),
        analytics=records,
        budget_usage=list(usage),
    )


def test_ingest_is_idempotent_on_record_id():
    records = [AnalyticsRecord(request_id=f"r{i}", app_id=1, cost=Decimal("0.5")) for i in range(3)]
    first = analytics_ingest_batches([batch(records)])
    again = analytics_ingest_batches([batch(records), batch(records[:1])])
    assert (first.inserted, again.inserted) == (3, 0)
    assert AnalyticsEvent.objects.count() == 3
    assert set(AnalyticsEvent.objects.values_list("edge_id", "namespace")) == {("e1", "demo")}


def test_budget_spend_counts_the_current_period_per_scope():
    now = time.time()
    usage = [
        BudgetUsage(app_id=1, user_id=10, cost=Decimal("1.25"), timestamp=now),
        BudgetUsage(app_id=1, user_id=11, cost=Decimal("2.00"), timestamp=now),
        BudgetUsage(app_id=2, user_id=10, cost=Decimal("5"), timestamp=now - 40 * 86400),  # previous period
    ]
    analytics_ingest_batches([batch([], usage)])
    start = now - 86400
    snapshot = ConfigSnapshot(
        namespace="demo",
        version=1,
        users=[UserConfig(id=10, group_ids=[7]), UserConfig(id=11)],
        budgets=[
            BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("10"), period_start=start),
            BudgetConfig(id=2, scope="group", target_id=7, limit=Decimal("10"), period_start=start),
            BudgetConfig(id=3, scope="app", target_id=2, limit=Decimal("10"), period_start=start),
        ],
    )
    spent = {s.budget_id: s.spent for s in budget_spend_for_snapshot(snapshot=snapshot)}
    assert spent == {1: Decimal("3.25"), 2: Decimal("1.25"), 3: Decimal("0")}


def test_retention_deletes_only_old_rows(monkeypatch):
    monkeypatch.setenv("FJORDGATE_ANALYTICS_RETENTION_DAYS", "30")
    old = time.time() - 31 * 86400
    analytics_ingest_batches([batch([AnalyticsRecord(timestamp=old), AnalyticsRecord()], [BudgetUsage(timestamp=old)])])
    assert analytics_apply_retention() == 2
    assert AnalyticsEvent.objects.count() == 1 and BudgetUsageRecord.objects.count() == 0
    assert AnalyticsEvent.objects.get().timestamp > dt.datetime.now(tz=dt.UTC) - dt.timedelta(days=1)
