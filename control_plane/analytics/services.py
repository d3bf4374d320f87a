"""Writes of the analytics domain: bulk ingest of what edges ship up, payload delivery state, retention.

Ingest is idempotent by construction: every table has a unique `record_id` and rows go in with
ON CONFLICT DO NOTHING, so the bridge can re-process any NATS message (after a crash between commit and ack)
without creating a second row.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg
from django.db import DataError, transaction
from django.utils import timezone

from fjordgate.env import env_int
from shared_sdk.messages import AnalyticsRecord, BudgetUsage, PluginContextInfo, ProxyLog
from shared_sdk.sync_protocol import PayloadEnvelope, TelemetryBatch

from .copy_insert import Derived, copy_insert_new
from .models import AnalyticsEvent, BudgetUsageRecord, EdgePayloadRecord, ProxyLogRecord


@dataclass(frozen=True)
class IngestResult:
    received: int
    inserted: int


def _ts(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, tz=dt.UTC)


def _ts_or_none(value: float) -> dt.datetime | None:
    return _ts(value) if value else None


_EMPTY_CONTEXT = "{}"
_json_encode = msgspec.json.encode


def _context(context: PluginContextInfo | None) -> str:
    """The context as JSON text, which PostgreSQL casts to jsonb (no Python json.dumps per row; most records
    carry none)."""
    return _EMPTY_CONTEXT if context is None else _json_encode(context).decode()


# Rows are plain tuples in the column order below, written straight into COPY: building a Django model instance per
# row (and reading it back field by field) was the largest cost of ingest in a profile (~40% of the bridge's
# database thread), more than COPY and PostgreSQL together. `received_at` is the only column the edge does not send.
ANALYTICS_COLUMNS = (
    "record_id", "request_id", "timestamp", "received_at", "edge_id", "namespace", "app_id", "user_id", "llm_id",
    "llm_slug", "vendor", "model", "status_code", "prompt_tokens", "completion_tokens", "cache_read_tokens",
    "cache_write_tokens", "total_tokens", "cost", "currency", "latency_ms", "ttft_ms", "upstream_latency_ms",
    "request_bytes", "response_bytes", "streamed", "tool_calls", "choices", "error_type", "context",
)  # fmt: skip
USAGE_COLUMNS = (
    "record_id", "request_id", "timestamp", "received_at", "edge_id", "namespace", "app_id", "user_id", "llm_id",
    "tokens_used", "prompt_tokens", "completion_tokens", "cost", "currency", "requests_count", "period_start",
    "period_end",
)  # fmt: skip
LOG_COLUMNS = (
    "record_id", "request_id", "timestamp", "received_at", "edge_id", "namespace", "app_id", "user_id", "llm_id",
    "vendor", "method", "path", "request_body", "response_body", "response_code", "context",
)  # fmt: skip


_EPOCH = ("timestamp",)
"""The edge's own timestamp goes in as it came (seconds since the epoch); PostgreSQL converts it."""


def _from_staged(columns: tuple[str, ...], values: dict[str, str]) -> tuple[str, ...]:
    """The SQL value of each column over the staged analytics row: `values` where given, else its namesake."""
    return tuple(values.get(column, f'"{column}"') for column in columns)


ANALYTICS_STAGED_ONLY: tuple[tuple[str, str], ...] = (
    ("method", "TextField"),
    ("path", "TextField"),
    ("derive_usage", "BooleanField"),
    ("derive_log", "BooleanField"),
)
"""What each staged analytics row carries after its columns, for the rows built from it in SQL (`_DERIVED`)."""
_ANALYTICS_JSON_AT, _LOG_JSON_AT = ANALYTICS_COLUMNS.index("context"), LOG_COLUMNS.index("context")
_STAGED_TIME = 'to_timestamp("timestamp")'  # staged as epoch seconds
_DERIVED = (
    # The usage row of a request an app made, from an edge that ships none. No budget period: spend is summed over
    # time windows (`selectors.spent_in_window`), never by a record's period.
    Derived(
        BudgetUsageRecord,
        USAGE_COLUMNS,
        _from_staged(
            USAGE_COLUMNS,
            {
                "timestamp": _STAGED_TIME,
                "tokens_used": '"total_tokens"',
                "requests_count": "1",
                "period_start": "NULL",
                "period_end": "NULL",
            },
        ),
        where="derive_usage",
    ),
    # The proxy log of a request, without bodies, from an edge that ships none (it logs no bodies).
    Derived(
        ProxyLogRecord,
        LOG_COLUMNS,
        _from_staged(
            LOG_COLUMNS,
            {
                "timestamp": _STAGED_TIME,
                "request_body": "''::bytea",
                "response_body": "''::bytea",
                "response_code": '"status_code"',
                "context": '"context"::jsonb',
            },
        ),
        where="derive_log",
    ),
)


def _analytics_row(
    r: AnalyticsRecord, edge_id: str, namespace: str, now: dt.datetime, derive_usage: bool, derive_log: bool
) -> tuple:
    """The analytics row, then what `ANALYTICS_STAGED_ONLY` names: whether the request's usage row and proxy log are
    built from it (the edge shipped none of its own)."""
    return (
        r.record_id,
        r.request_id,
        r.timestamp,
        now,
        r.edge_id or edge_id,
        r.namespace or namespace,
        r.app_id,
        r.user_id,
        r.llm_id,
        r.llm_slug[:100],
        r.vendor[:32],
        r.model[:200],
        r.status_code,
        r.prompt_tokens,
        r.completion_tokens,
        r.cache_read_tokens,
        r.cache_write_tokens,
        _total_tokens(r),
        r.cost,
        r.currency[:3],
        r.latency_ms,
        r.ttft_ms,
        r.upstream_latency_ms,
        r.request_bytes,
        r.response_bytes,
        r.streamed,
        r.tool_calls,
        r.choices,
        r.error_type[:64],
        _context(r.context),
        r.method[:10],
        r.path[:500],
        derive_usage,
        derive_log,
    )


def _total_tokens(r: AnalyticsRecord) -> int:
    """A request's tokens as its analytics row and its usage row both store them (an edge may send only the parts)."""
    return r.total_tokens or r.prompt_tokens + r.completion_tokens


def _usage_row(r: BudgetUsage, edge_id: str, namespace: str, now: dt.datetime) -> tuple:
    """A usage record a batch carries (spooled by an older edge: `TelemetryShipper` ships none now)."""
    return (
        r.record_id,
        r.request_id,
        r.timestamp,
        now,
        edge_id,
        namespace,
        r.app_id,
        r.user_id,
        r.llm_id,
        r.tokens_used,
        r.prompt_tokens,
        r.completion_tokens,
        r.cost,
        r.currency[:3],
        r.requests_count,
        _ts_or_none(r.period_start),
        _ts_or_none(r.period_end),
    )


def _log_row(r: ProxyLog, edge_id: str, namespace: str, now: dt.datetime) -> tuple:
    """A proxy log an edge shipped (with bodies: `EDGE_LOG_BODIES`)."""
    return (
        r.record_id,
        r.request_id,
        r.timestamp,
        now,
        r.edge_id or edge_id,
        r.namespace or namespace,
        r.app_id,
        r.user_id,
        r.llm_id,
        r.vendor[:32],
        r.method[:10],
        r.path[:500],
        r.request_body,
        r.response_body,
        r.response_code,
        _context(r.context),
    )


def _analytics_rows(batch: TelemetryBatch, now: dt.datetime) -> list[tuple]:
    """The batch's analytics rows, each saying whether its request's usage row and proxy log are built from it: a
    usage row for each request with an app (an edge accounts only requests an app made) from an edge that ships
    none, and a proxy log for each request from an edge that ships none (it logs no bodies)."""
    edge_id, namespace = batch.edge_id, batch.namespace
    usage, logs = batch.budget_usage_from_analytics, batch.proxy_logs_from_analytics
    usage_shipped = {r.record_id for r in batch.budget_usage}  # both empty from an edge of this release
    logs_shipped = {r.record_id for r in batch.proxy_logs}
    return [
        _analytics_row(
            r,
            edge_id,
            namespace,
            now,
            usage and r.app_id is not None and r.record_id not in usage_shipped,
            logs and r.record_id not in logs_shipped,
        )
        for r in batch.analytics
    ]


def analytics_ingest_batches(batches: Iterable[TelemetryBatch]) -> IngestResult:
    """Store every record of these batches in one transaction (the caller acknowledges the messages after it).

    PostgreSQL's text and jsonb cannot hold a NUL character, and a client or a hostile edge can put one in any string
    an edge ships (a model name, a plugin's context). One such value failed the transaction of the whole fetch, every
    namespace's batches in it, on every redelivery. Checking every string of every record would tax each record for
    a value honest traffic never has, so the fetch is stored again with each NUL replaced by U+FFFD only when
    PostgreSQL refused one of its values."""
    batches = list(batches)
    try:
        return _ingest(batches, clean=False)
    except (DataError, psycopg.errors.DataError):
        return _ingest(batches, clean=True)  # raises again if a NUL was not what the data error was about


@transaction.atomic
def _ingest(batches: list[TelemetryBatch], *, clean: bool) -> IngestResult:
    now = timezone.now()
    analytics: list[tuple] = []
    usage: list[tuple] = []
    logs: list[tuple] = []
    for batch in batches:
        edge_id, namespace = batch.edge_id, batch.namespace
        analytics.extend(_analytics_rows(batch, now))
        usage.extend([_usage_row(r, edge_id, namespace, now) for r in batch.budget_usage])
        logs.extend([_log_row(r, edge_id, namespace, now) for r in batch.proxy_logs])
    if clean:
        analytics = _without_nul(analytics, json_at=_ANALYTICS_JSON_AT)
        usage = _without_nul(usage, json_at=None)
        logs = _without_nul(logs, json_at=_LOG_JSON_AT)
    inserted = (
        copy_insert_new(
            AnalyticsEvent,
            ANALYTICS_COLUMNS,
            analytics,
            epoch_columns=_EPOCH,
            staged_only=ANALYTICS_STAGED_ONLY,
            derived=_DERIVED,
        )
        + copy_insert_new(BudgetUsageRecord, USAGE_COLUMNS, usage, epoch_columns=_EPOCH)
        + copy_insert_new(ProxyLogRecord, LOG_COLUMNS, logs, epoch_columns=_EPOCH)
    )
    derived = sum(row[-2] + row[-1] for row in analytics)
    return IngestResult(received=len(analytics) + derived + len(usage) + len(logs), inserted=inserted)


def _without_nul(rows: list[tuple], *, json_at: int | None) -> list[tuple]:
    """`rows` with every NUL in their text replaced by U+FFFD; `json_at`: where their JSON column's text is
    (`_context`), in which a NUL is the escape `\\u0000` that jsonb refuses."""
    cleaned = [tuple(_no_nul(value) if type(value) is str else value for value in row) for row in rows]
    if json_at is not None:
        cleaned = [(*row[:json_at], _no_nul_in_json(row[json_at]), *row[json_at + 1 :]) for row in cleaned]
    return cleaned


def _no_nul(text: str) -> str:
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _no_nul_in_json(text: str) -> str:
    if "\\u0000" not in text:
        return text
    return json.dumps(_no_nul_json(json.loads(text)), ensure_ascii=False)  # rebuilt: "\\\\u0000" is no NUL


def _no_nul_json(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_no_nul_json(key): _no_nul_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_no_nul_json(item) for item in value]
    return value


def edge_payload_store(*, envelope: PayloadEnvelope) -> tuple[EdgePayloadRecord, bool]:
    """Persist a payload once (by record_id); returns the row and whether it was new."""
    payload = envelope.payload
    return EdgePayloadRecord.objects.get_or_create(
        record_id=envelope.record_id,
        defaults={
            "plugin_slug": payload.plugin_slug,
            "edge_id": payload.edge_id,
            "namespace": payload.edge_namespace,
            "correlation_id": payload.correlation_id[:128],
            "metadata": dict(payload.metadata),
            "payload": payload.payload,
            "size": len(payload.payload),
            "edge_timestamp": _ts(payload.edge_timestamp),
            "received_timestamp": _ts(payload.received_timestamp or timezone.now().timestamp()),
        },
    )


def edge_payload_mark_delivered(*, record: EdgePayloadRecord, error: str = "") -> None:
    record.delivered_at = None if error else timezone.now()
    record.delivery_error = error[:2000]
    record.save(update_fields=["delivered_at", "delivery_error"])


RETENTION_DAYS_VARIABLE = "FJORDGATE_ANALYTICS_RETENTION_DAYS"


def analytics_apply_retention(*, now: dt.datetime | None = None) -> int:
    """Periodic job: delete analytics, usage, proxy logs and delivered payloads older than the retention age.

    The age comes from FJORDGATE_ANALYTICS_RETENTION_DAYS (default 90). Deletes go in slices so a large backlog
    does not hold one huge transaction. Returns the number of rows deleted.
    """
    days = env_int(RETENTION_DAYS_VARIABLE, 90, minimum=1)
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    deleted = 0
    targets = [
        (AnalyticsEvent.objects.filter(timestamp__lt=cutoff)),
        (BudgetUsageRecord.objects.filter(timestamp__lt=cutoff)),
        (ProxyLogRecord.objects.filter(timestamp__lt=cutoff)),
        (EdgePayloadRecord.objects.filter(received_timestamp__lt=cutoff, delivered_at__isnull=False)),
    ]
    for queryset in targets:
        while True:
            ids = list(queryset.values_list("pk", flat=True)[:5000])
            if not ids:
                break
            count, _ = queryset.model._default_manager.filter(pk__in=ids).delete()
            deleted += count
    return deleted
