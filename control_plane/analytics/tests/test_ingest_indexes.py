"""What each ingested row costs PostgreSQL in indexes, and how an operator finds a request in the admin."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord, ProxyLogRecord
from control_plane.analytics.services import analytics_ingest_batches
from shared_sdk.messages import AnalyticsRecord, BudgetUsage, ProxyLog
from shared_sdk.sync_protocol import TelemetryBatch

pytestmark = pytest.mark.django_db


def _indexes(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize(("model", "count"), [(AnalyticsEvent, 6), (BudgetUsageRecord, 6), (ProxyLogRecord, 4)])
def test_the_rows_every_request_writes_carry_only_the_indexes_their_queries_use(model, count):
    """Three rows per request: each index is one more insertion per row. No LIKE (`varchar_pattern_ops`) index,
    no single-column index a (column, timestamp) one already serves; record_id stays unique (the bridge's
    ON CONFLICT)."""
    found = _indexes(model._meta.db_table)
    assert not [index for index in found if "pattern_ops" in index]
    assert len(found) == count, found
    assert any("UNIQUE" in index and "(record_id)" in index for index in found)


def test_a_request_is_found_in_the_admin_by_its_exact_id(admin_client):
    analytics_ingest_batches(
        [
            TelemetryBatch(
                batch_id="b",
                edge_id="e1",
                namespace="demo",
                created_at=time.time(),
                analytics=[AnalyticsRecord(request_id=f"req-{i}-abcdef", model="m") for i in range(3)],
                budget_usage=[BudgetUsage(request_id=f"req-{i}-abcdef") for i in range(2)],
                proxy_logs=[ProxyLog(request_id=f"req-{i}-abcdef", path="/v1/chat/completions") for i in range(2)],
            )
        ]
    )
    assert (AnalyticsEvent.objects.count(), BudgetUsageRecord.objects.count(), ProxyLogRecord.objects.count()) == (
        3,
        2,
        2,
    )
    for path in ("analyticsevent", "budgetusagerecord", "proxylogrecord"):
        page = admin_client.get(f"/admin/analytics/{path}/", {"q": "req-1-abcdef"}).content.decode()
        assert "1 result (" in page, path  # Django's "1 result (N total)"
    page = admin_client.get("/admin/analytics/analyticsevent/", {"q": "req-1-abcdef"}).content.decode()
    assert "req-0-abcdef" not in page
