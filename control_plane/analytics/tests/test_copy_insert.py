"""The bridge's bulk insert: staging tables that live with the session, so a small fetch costs PostgreSQL no new
tables, and every record stored once however often the same transaction stages it."""

from __future__ import annotations

import time

import pytest
from django.db import connection, transaction

from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord, ProxyLogRecord
from control_plane.analytics.services import analytics_ingest_batches
from shared_sdk.messages import AnalyticsRecord, BudgetUsage, ProxyLog
from shared_sdk.sync_protocol import TelemetryBatch

pytestmark = pytest.mark.django_db(transaction=True)


def _batch(first: int, count: int) -> TelemetryBatch:
    ids = [f"req-{n}" for n in range(first, first + count)]
    return TelemetryBatch(
        batch_id=f"b{first}",
        edge_id="e1",
        namespace="ns",
        created_at=time.time(),
        analytics=[AnalyticsRecord(record_id=f"a-{i}", request_id=i) for i in ids],
        budget_usage=[BudgetUsage(record_id=f"u-{i}", request_id=i) for i in ids],
        proxy_logs=[ProxyLog(record_id=f"p-{i}", request_id=i) for i in ids],
    )


def _staging_tables() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, oid FROM pg_class WHERE relname LIKE 'staging_analytics_%%' AND relpersistence = 't'"
        )
        return dict(cursor.fetchall())


def _counts() -> tuple[int, int, int]:
    return AnalyticsEvent.objects.count(), BudgetUsageRecord.objects.count(), ProxyLogRecord.objects.count()


def test_fetch_after_fetch_reuses_the_session_s_staging_tables_and_stores_each_record_once():
    with transaction.atomic():
        analytics_ingest_batches([_batch(0, 5)])
    tables = _staging_tables()
    assert len(tables) == 3
    for first in (5, 10):
        with transaction.atomic():
            analytics_ingest_batches([_batch(first, 5)])
        assert _staging_tables() == tables  # the same tables (oids): nothing created or dropped per fetch
    assert _counts() == (15, 15, 15)
    with connection.cursor() as cursor:  # commit emptied them: nothing staged is inserted twice later
        for name in tables:
            cursor.execute(f"SELECT count(*) FROM {name}")
            assert cursor.fetchone()[0] == 0


def test_two_ingests_in_one_transaction_store_both_once_and_count_only_new_records():
    with transaction.atomic():
        first = analytics_ingest_batches([_batch(0, 4)])
        second = analytics_ingest_batches([_batch(2, 4)])  # records 2 and 3 again, 4 and 5 new
    assert (first.inserted, second.inserted) == (12, 6)
    assert _counts() == (6, 6, 6)


def test_a_rolled_back_ingest_leaves_nothing_and_the_next_one_stores_its_records():
    with pytest.raises(RuntimeError), transaction.atomic():
        analytics_ingest_batches([_batch(0, 3)])
        raise RuntimeError("the commit never happens")
    assert _counts() == (0, 0, 0)
    with transaction.atomic():
        analytics_ingest_batches([_batch(3, 2)])
    assert _counts() == (2, 2, 2)


def test_a_bulk_insert_outside_a_transaction_is_refused_not_lost():
    """In autocommit each statement commits and commit empties the staging table: the INSERT would find nothing."""
    from control_plane.analytics.copy_insert import copy_insert_new
    from control_plane.analytics.services import USAGE_COLUMNS

    with pytest.raises(RuntimeError, match="inside a transaction"):
        copy_insert_new(BudgetUsageRecord, USAGE_COLUMNS, [("u-1",)])
    assert _counts() == (0, 0, 0)
