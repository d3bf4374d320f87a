"""Models of the analytics domain: what edges ship up, stored once each.

Every row carries the `record_id` the edge gave it, unique here, so the bridge can insert with ON CONFLICT DO
NOTHING and a re-delivered NATS message never becomes a second row.

Why the ids' uniqueness and indexes are declared in `Meta` and not on the fields: on PostgreSQL a field-level
`unique=True` or `db_index=True` on a CharField adds a second, `varchar_pattern_ops` index for LIKE queries, which
no query here makes (the admin finds a request by its exact id). Every request the edges serve writes three rows,
and each index is one more insertion per row, on the same cores as the edges where they share a host
(`bench/README.md`): the three tables carried 23 indexes, and now 16.
"""

from __future__ import annotations

from django.db import models


class AnalyticsEvent(models.Model):
    """One proxied LLM call (shared_sdk AnalyticsRecord)."""

    record_id = models.CharField(max_length=64)
    request_id = models.CharField(max_length=64, blank=True, default="")
    timestamp = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField(auto_now_add=True)
    edge_id = models.CharField(max_length=63, blank=True, default="")
    namespace = models.CharField(max_length=63, blank=True, default="")
    app_id = models.BigIntegerField(null=True, blank=True)  # indexed with the timestamp (Meta), which serves both
    user_id = models.BigIntegerField(null=True, blank=True)
    llm_id = models.BigIntegerField(null=True, blank=True)
    llm_slug = models.CharField(max_length=100, blank=True, default="")
    vendor = models.CharField(max_length=32, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    status_code = models.PositiveSmallIntegerField(default=0)
    prompt_tokens = models.IntegerField(default=0)
    completion_tokens = models.IntegerField(default=0)
    cache_read_tokens = models.IntegerField(default=0)
    cache_write_tokens = models.IntegerField(default=0)
    total_tokens = models.IntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    currency = models.CharField(max_length=3, default="USD")
    latency_ms = models.FloatField(default=0)
    ttft_ms = models.FloatField(null=True, blank=True)
    upstream_latency_ms = models.FloatField(default=0)
    request_bytes = models.IntegerField(default=0)
    response_bytes = models.IntegerField(default=0)
    streamed = models.BooleanField(default=False)
    tool_calls = models.IntegerField(default=0)
    choices = models.IntegerField(default=0)
    error_type = models.CharField(max_length=64, blank=True, default="")
    context = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-timestamp"]
        constraints = [models.UniqueConstraint(fields=["record_id"], name="analytics_event_record_id_uniq")]
        indexes = [
            models.Index(fields=["request_id"], name="analytics_event_request_idx"),
            models.Index(fields=["app_id", "timestamp"]),
            models.Index(fields=["llm_id", "timestamp"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id or self.record_id} {self.model} {self.status_code}"


class BudgetUsageRecord(models.Model):
    """Spend of one request against budgets (shared_sdk BudgetUsage); summed per budget period by the bridge."""

    record_id = models.CharField(max_length=64)
    request_id = models.CharField(max_length=64, blank=True, default="")
    timestamp = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField(auto_now_add=True)
    edge_id = models.CharField(max_length=63, blank=True, default="")
    namespace = models.CharField(max_length=63, blank=True, default="")
    app_id = models.BigIntegerField(null=True, blank=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    llm_id = models.BigIntegerField(null=True, blank=True)
    tokens_used = models.IntegerField(default=0)
    prompt_tokens = models.IntegerField(default=0)
    completion_tokens = models.IntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    currency = models.CharField(max_length=3, default="USD")
    requests_count = models.IntegerField(default=1)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-timestamp"]
        constraints = [models.UniqueConstraint(fields=["record_id"], name="analytics_budget_record_id_uniq")]
        indexes = [
            models.Index(fields=["app_id", "timestamp"]),
            models.Index(fields=["user_id", "timestamp"]),
            models.Index(fields=["llm_id", "timestamp"]),
        ]

    def __str__(self) -> str:
        return f"{self.record_id} {self.cost} {self.currency}"


class _UsageSums(models.Model):
    """The spend of the budget-usage records of one span of time (`start`, cut in UTC), per edge, currency, app,
    user and LLM (0: none).

    Why: a budget's spend in its period was a SUM over every usage record of the period, read for each budget of
    a namespace four times a second while usage flows (`bridge.budgets`) and for every lease granted; at 1,000
    requests/s a month holds 2.6 billion records, and one read over a million took a second. A period is read
    from its whole hours, the whole minutes at either end and the records of a partial minute
    (`selectors.spent_in_window`): a month is at most 744 hour rows and 118 minute rows per edge and target,
    whatever its traffic.

    PostgreSQL keeps these tables equal to the records' sums (migration 0003): triggers on the records' table add
    what a statement inserted and take back what one deleted or changed, in the same transaction, so every writer
    (the bridge's ingest, the studio, retention, a test's `objects.create`) keeps them true, and a record stored
    once (`record_id`) is counted once.
    """

    start = models.DateTimeField()
    edge_id = models.CharField(max_length=63)
    currency = models.CharField(max_length=3)
    app_id = models.BigIntegerField()
    user_id = models.BigIntegerField()
    llm_id = models.BigIntegerField()
    cost = models.DecimalField(max_digits=30, decimal_places=10)
    records = models.BigIntegerField()

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["start", "edge_id", "currency", "app_id", "user_id", "llm_id"], name="%(class)s_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["app_id", "start"], name="%(class)s_app_idx"),
            models.Index(fields=["user_id", "start"], name="%(class)s_user_idx"),
            models.Index(fields=["llm_id", "start"], name="%(class)s_llm_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} {self.edge_id} {self.cost} {self.currency}"


class BudgetUsageMinute(_UsageSums):
    """Usage sums per minute (see `_UsageSums`)."""


class BudgetUsageHour(_UsageSums):
    """Usage sums per hour (see `_UsageSums`)."""


class ProxyLogRecord(models.Model):
    """One call's method, path, status and, from an edge with `EDGE_LOG_BODIES`, its request and response bodies
    (shared_sdk ProxyLog), kept for the retention period. An edge without bodies ships no proxy logs: the bridge
    stores each call's from its analytics record (`TelemetryBatch.proxy_logs_from_analytics`)."""

    record_id = models.CharField(max_length=64)
    request_id = models.CharField(max_length=64, blank=True, default="")
    timestamp = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField(auto_now_add=True)
    edge_id = models.CharField(max_length=63, blank=True, default="")
    namespace = models.CharField(max_length=63, blank=True, default="")
    app_id = models.BigIntegerField(null=True, blank=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    llm_id = models.BigIntegerField(null=True, blank=True)
    vendor = models.CharField(max_length=32, blank=True, default="")
    method = models.CharField(max_length=10, blank=True, default="")
    path = models.CharField(max_length=500, blank=True, default="")
    request_body = models.BinaryField(default=b"", blank=True)
    response_body = models.BinaryField(default=b"", blank=True)
    response_code = models.PositiveSmallIntegerField(default=0)
    context = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-timestamp"]
        constraints = [models.UniqueConstraint(fields=["record_id"], name="analytics_proxylog_record_id_uniq")]
        indexes = [models.Index(fields=["request_id"], name="analytics_proxylog_request_idx")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.response_code}"


class EdgePayloadRecord(models.Model):
    """A gateway plugin's payload, persisted here before it is handed to the studio plugin's accept_edge_payload."""

    record_id = models.CharField(max_length=64, unique=True)
    plugin_slug = models.CharField(max_length=100, db_index=True)
    edge_id = models.CharField(max_length=63)
    namespace = models.CharField(max_length=63, blank=True, default="")
    correlation_id = models.CharField(max_length=128, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    payload = models.BinaryField()
    size = models.IntegerField(default=0)
    edge_timestamp = models.DateTimeField()
    received_timestamp = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivery_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-received_timestamp"]

    def __str__(self) -> str:
        return f"{self.plugin_slug} from {self.edge_id} ({self.size} bytes)"
