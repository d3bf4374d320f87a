import datetime as dt
import time
from decimal import Decimal

import pytest

from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord, ProxyLogRecord
from control_plane.analytics.selectors import budget_spend_for_snapshot
from control_plane.analytics.services import (
    ANALYTICS_COLUMNS,
    LOG_COLUMNS,
    USAGE_COLUMNS,
    analytics_apply_retention,
    analytics_ingest_batches,
)
from shared_sdk.messages import AnalyticsRecord, BudgetUsage, PluginContextInfo, ProxyLog
from shared_sdk.snapshot import BudgetConfig, ConfigSnapshot, UserConfig
from shared_sdk.sync_protocol import TelemetryBatch

pytestmark = pytest.mark.django_db


def batch(records, usage=(), **flags):
    return TelemetryBatch(
        batch_id="b",
        edge_id="e1",
        namespace="demo",
        created_at=time.time(),
        analytics=records,
        budget_usage=list(usage),
        **flags,
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


def test_every_value_an_edge_sends_is_stored_as_sent():
    """Rows go in through binary COPY from tuples: each column must land with its own value and type (the context
    as a JSON object, not a JSON string; the edge's timestamp to the microsecond; bodies as bytes)."""
    stamp = 1_733_240_123.456789
    context = PluginContextInfo(request_id="q1", app_id=7, metadata={"tag": "a\tb\n", "n": 2})
    record = AnalyticsRecord(
        request_id="q1",
        app_id=7,
        user_id=3,
        llm_id=5,
        llm_slug="s" * 150,
        model="gpt",
        status_code=429,
        prompt_tokens=12,
        completion_tokens=30,
        cost=Decimal("0.0000720001"),
        latency_ms=41.5,
        ttft_ms=None,
        streamed=True,
        timestamp=stamp,
        error_type="rate_limited",
        context=context,
    )
    usage = BudgetUsage(request_id="q1", app_id=7, cost=Decimal("1.25"), period_start=stamp, timestamp=stamp)
    log = ProxyLog(request_id="q1", app_id=7, request_body=b"\x00\xffin", response_body=b"out", response_code=200)
    analytics_ingest_batches([TelemetryBatch(batch_id="b", edge_id="e1", namespace="demo", created_at=stamp,
                                             analytics=[record], budget_usage=[usage], proxy_logs=[log])])  # fmt: skip
    when = dt.datetime(2024, 12, 3, 15, 35, 23, 456789, tzinfo=dt.UTC)
    event = AnalyticsEvent.objects.get()
    assert (event.timestamp, event.llm_slug, event.total_tokens, event.cost) == (when, "s" * 100, 42, record.cost)
    assert (event.ttft_ms, event.streamed, event.status_code, event.edge_id, event.namespace) == (
        None,
        True,
        429,
        "e1",
        "demo",
    )
    assert event.context == {"request_id": "q1", "app_id": 7, "metadata": {"tag": "a\tb\n", "n": 2}}  # defaults omitted
    assert event.received_at > dt.datetime.now(tz=dt.UTC) - dt.timedelta(minutes=1)
    stored_usage = BudgetUsageRecord.objects.get()
    assert (stored_usage.timestamp, stored_usage.period_start, stored_usage.period_end) == (when, when, None)
    assert (stored_usage.cost, stored_usage.edge_id, stored_usage.namespace) == (Decimal("1.25"), "e1", "demo")
    stored_log = ProxyLogRecord.objects.get()
    assert (bytes(stored_log.request_body), bytes(stored_log.response_body), stored_log.context) == (
        b"\x00\xffin",
        b"out",
        {},
    )


@pytest.mark.parametrize(
    ("model", "columns"),
    [(AnalyticsEvent, ANALYTICS_COLUMNS), (BudgetUsageRecord, USAGE_COLUMNS), (ProxyLogRecord, LOG_COLUMNS)],
)
def test_ingest_writes_every_column_of_its_table(model, columns):
    """The row builders list their columns by hand: a field added to the model must be added there too."""
    fields = {field.name for field in model._meta.concrete_fields if not field.primary_key}
    assert sorted(columns) == sorted(fields)


def test_an_edge_without_bodies_gets_a_proxy_log_per_request_from_its_analytics_records():
    """An edge that logs no bodies ships no proxy logs (`proxy_logs_from_analytics`): each request still has its
    log, built from its analytics record; a log the batch carries itself (with bodies) is the one kept."""
    stamp = 1_733_240_123.5
    context = PluginContextInfo(request_id="q1", app_id=7, metadata={"tag": "x"})
    plain = AnalyticsRecord(
        request_id="q1",
        app_id=7,
        user_id=3,
        llm_id=2,
        vendor="openai",
        status_code=429,
        timestamp=stamp,
        context=context,
        method="POST",
        path="/v1/chat/completions",
    )
    logged = AnalyticsRecord(request_id="q2", app_id=7, status_code=200, method="POST", path="/v1/messages")
    with_bodies = ProxyLog(
        record_id=logged.record_id, request_id="q2", app_id=7, request_body=b"{}", response_body=b"[]", method="POST"
    )
    flagged = TelemetryBatch(
        batch_id="b",
        edge_id="e1",
        namespace="demo",
        created_at=time.time(),
        analytics=[plain, logged],
        proxy_logs=[with_bodies],
        proxy_logs_from_analytics=True,
    )
    analytics_ingest_batches([flagged, batch([AnalyticsRecord(request_id="q3", method="POST", path="/v1/x")])])

    logs = {row.request_id: row for row in ProxyLogRecord.objects.all()}
    assert set(logs) == {"q1", "q2"}  # q3's batch did not say so: its edge ships its own logs, or none
    row = logs["q1"]
    assert (row.record_id, row.edge_id, row.namespace, row.app_id, row.user_id, row.llm_id) == (
        plain.record_id, "e1", "demo", 7, 3, 2,
    )  # fmt: skip
    assert (row.vendor, row.method, row.path, row.response_code) == ("openai", "POST", "/v1/chat/completions", 429)
    assert (bytes(row.request_body), bytes(row.response_body), row.context["metadata"]) == (b"", b"", {"tag": "x"})
    assert row.timestamp.timestamp() == stamp
    assert (bytes(logs["q2"].request_body), bytes(logs["q2"].response_body)) == (b"{}", b"[]")


def test_a_nul_in_any_text_is_stored_replaced_and_the_rest_of_the_fetch_with_it():
    """PostgreSQL's text and jsonb cannot hold NUL. A client's model name or a plugin's context can carry one (JSON
    has `\\u0000`); it failed the transaction of the whole fetch, every namespace's batches in it, on every
    redelivery. Now the values are stored with U+FFFD in its place."""
    context = PluginContextInfo(request_id="q1", metadata={"tag\x00": "a\x00b", "list": ["\x00"], "kept": "\\u0000"})
    hostile = AnalyticsRecord(
        request_id="q1", model="gpt\x00x", vendor="v\x00", error_type="e\x00", context=context, path="/v1/\x00"
    )
    other = TelemetryBatch(
        batch_id="b2",
        edge_id="e2",
        namespace="other",
        created_at=time.time(),
        analytics=[AnalyticsRecord(request_id="q2")],
    )
    flagged = TelemetryBatch(
        batch_id="b1",
        edge_id="e1",
        namespace="demo",
        created_at=time.time(),
        analytics=[hostile],
        budget_usage=[BudgetUsage(request_id="q1", currency="U\x00D")],
        proxy_logs_from_analytics=True,
    )
    result = analytics_ingest_batches([flagged, other])

    assert result.inserted == 4
    event = AnalyticsEvent.objects.get(request_id="q1")
    assert (event.model, event.vendor, event.error_type) == ("gpt\ufffdx", "v\ufffd", "e\ufffd")
    assert event.context["metadata"] == {"tag\ufffd": "a\ufffdb", "list": ["\ufffd"], "kept": "\\u0000"}
    assert BudgetUsageRecord.objects.get().currency == "U\ufffdD"
    assert ProxyLogRecord.objects.get().path == "/v1/\ufffd"
    assert AnalyticsEvent.objects.filter(request_id="q2", namespace="other").exists()


def test_an_edge_that_ships_no_usage_gets_a_usage_row_per_request_from_its_analytics_records():
    """An edge ships no BudgetUsage (`budget_usage_from_analytics`): each request it accounted (an app's) still has
    its usage row, built from its analytics record; a usage record the batch carries itself (spooled by an older
    edge) is the one kept, and a batch without the flag gets no derived rows."""
    stamp = 1_733_240_123.5
    plain = AnalyticsRecord(
        request_id="q1",
        app_id=7,
        user_id=3,
        llm_id=2,
        prompt_tokens=5,
        completion_tokens=4,
        total_tokens=9,
        cost=Decimal("0.125"),
        currency="EUR",
        timestamp=stamp,
    )
    carried = AnalyticsRecord(request_id="q2", app_id=7, cost=Decimal("1"))
    old_usage = BudgetUsage(
        record_id=carried.record_id, request_id="q2", app_id=7, cost=Decimal("1"), period_start=stamp
    )
    no_app = AnalyticsRecord(request_id="q3", cost=Decimal("2"))
    parts = AnalyticsRecord(request_id="q5", app_id=7, prompt_tokens=2, completion_tokens=3)  # no total: the sum
    flagged = TelemetryBatch(
        batch_id="b",
        edge_id="e1",
        namespace="demo",
        created_at=time.time(),
        analytics=[plain, carried, no_app, parts],
        budget_usage=[old_usage],
        budget_usage_from_analytics=True,
    )
    unflagged = batch([AnalyticsRecord(request_id="q4", app_id=7, cost=Decimal("3"))])
    result = analytics_ingest_batches([flagged, unflagged])

    assert result.inserted == 5 + 3  # five analytics rows, q1's and q5's derived usage rows and q2's carried one
    usage = {row.request_id: row for row in BudgetUsageRecord.objects.all()}
    assert set(usage) == {"q1", "q2", "q5"}
    assert usage["q5"].tokens_used == AnalyticsEvent.objects.get(request_id="q5").total_tokens == 5
    row = usage["q1"]
    assert (row.record_id, row.edge_id, row.namespace, row.app_id, row.user_id, row.llm_id) == (
        plain.record_id, "e1", "demo", 7, 3, 2,
    )  # fmt: skip
    assert (row.tokens_used, row.prompt_tokens, row.completion_tokens, row.requests_count) == (9, 5, 4, 1)
    assert (row.cost, row.currency, row.timestamp.timestamp()) == (Decimal("0.125"), "EUR", stamp)
    assert (row.period_start, row.period_end) == (None, None)
    assert usage["q2"].period_start is not None  # the carried record, not one derived beside it


def test_a_request_sent_twice_in_one_fetch_is_one_row_in_each_table_with_the_rows_built_from_it():
    """A record delivered again in the same fetch (a replayed message beside its original) is staged twice; its
    analytics row, and the usage row and proxy log built from it in SQL, are each stored once, and a second ingest
    of the same fetch stores nothing."""
    record = AnalyticsRecord(request_id="q1", app_id=7, cost=Decimal("0.5"), method="POST", path="/v1/x")
    derived = batch([record, record], budget_usage_from_analytics=True, proxy_logs_from_analytics=True)
    first = analytics_ingest_batches([derived, derived])
    again = analytics_ingest_batches([derived])

    assert (first.inserted, again.inserted) == (3, 0)
    stored = [model.objects.count() for model in (AnalyticsEvent, BudgetUsageRecord, ProxyLogRecord)]
    assert stored == [1, 1, 1]
    assert BudgetUsageRecord.objects.get().cost == Decimal("0.5")
