"""Who sent a message up: the NATS subject, never the body (issue 13).

NATS permissions (deploy/nats/nats.conf, and the users `fjordgate up` generates) let an edge publish only on
`fj.up.<its namespace>.<its id>.>`, so the subject is the authenticated identity; the namespace and edge id in a
message body are whatever the sender chose to write. Everything the bridge stores or hands on therefore takes
both from the subject, and a telemetry record is stored only when the app and LLM it names belong to that
namespace or are global (namespace ""). Anything else (another namespace's app, an id that does not exist, a
value its table cannot store: `analytics.bounds`) is refused: counted, logged, never stored; the rest of its batch
is stored as usual. Without this, an edge could insert spend against another namespace's app and exhaust its
budget, or hold up every namespace's telemetry with one record PostgreSQL refuses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache

import msgspec
from django.db import connection, models

from control_plane.analytics.bounds import out_of_range
from shared_sdk import AnalyticsRecord, BudgetUsage, ProxyLog
from shared_sdk.sync_protocol import GLOBAL_TOKEN, TelemetryBatch

log = logging.getLogger("fjordgate.bridge")


@dataclass(frozen=True)
class UpIdentity:
    namespace: str
    """"" for the global namespace (token `_`)."""
    edge_id: str


def up_identity(subject: str, kind: str) -> UpIdentity:
    """The sender of `fj.up.<ns>.<edge>.<kind>`; ValueError for any other shape."""
    parts = subject.split(".")
    if len(parts) != 5 or parts[0] != "fj" or parts[1] != "up" or parts[4] != kind or not parts[2] or not parts[3]:
        raise ValueError(f"not an fj.up.<ns>.<edge>.{kind} subject: {subject!r}")
    return UpIdentity("" if parts[2] == GLOBAL_TOKEN else parts[2], parts[3])


@dataclass
class ScopedTelemetry:
    """What may be stored of a fetch of telemetry batches, and what was refused."""

    batches: list[TelemetryBatch] = field(default_factory=list)
    refused: int = 0
    reasons: list[str] = field(default_factory=list)
    """One line per batch with refusals (first reason and count), for the log."""


@cache
def _owners_statement() -> str:
    from control_plane.applications.models import App
    from control_plane.llms.models import LLM

    def lookup(kind: int, model: type[models.Model]) -> str:
        table = connection.ops.quote_name(model._meta.db_table)
        return f"SELECT {kind}, id, namespace FROM {table} WHERE id = ANY(%s)"

    return f"{lookup(0, App)} UNION ALL {lookup(1, LLM)}"


def _owners(app_ids: set[int], llm_ids: set[int]) -> tuple[dict[int, str], dict[int, str]]:
    """The namespace of each app and LLM named, in one statement: two ORM queries compiled anew for every fetch
    were ~15 % of the bridge's CPU at an edge's c=1 traffic (py-spy `--gil`), where fetches are small and many."""
    owners: tuple[dict[int, str], dict[int, str]] = ({}, {})
    if app_ids or llm_ids:
        with connection.cursor() as cursor:
            cursor.execute(_owners_statement(), [list(app_ids), list(llm_ids)])
            for kind, object_id, namespace in cursor.fetchall():
                owners[kind][object_id] = namespace
    return owners


def telemetry_in_scope(received: list[tuple[UpIdentity, TelemetryBatch]]) -> ScopedTelemetry:
    """Rewrite each batch with its subject's identity and drop the records naming objects outside it.

    Runs on the bridge's database thread: one statement of two indexed lookups (apps, LLMs) for the whole fetch.
    """
    app_ids: set[int] = set()
    llm_ids: set[int] = set()
    for _, batch in received:
        records: list[AnalyticsRecord | BudgetUsage | ProxyLog] = [
            *batch.analytics,
            *batch.budget_usage,
            *batch.proxy_logs,
        ]
        for record in records:
            if out_of_range(record) is not None:  # refused below; an id past int8 would break the lookup
                continue
            if record.app_id is not None:
                app_ids.add(record.app_id)
            if record.llm_id is not None:
                llm_ids.add(record.llm_id)
    app_ns, llm_ns = _owners(app_ids, llm_ids)

    def refusal(app_id: int | None, llm_id: int | None, namespace: str) -> str | None:
        for kind, object_id, owners in (("app", app_id, app_ns), ("LLM", llm_id, llm_ns)):
            if object_id is None:
                continue
            owner = owners.get(object_id)
            if owner is None:
                return f"{kind} {object_id} does not exist"
            if owner not in ("", namespace):
                return f"{kind} {object_id} belongs to namespace {owner!r}"
        return None

    # A fetch names a handful of (app, LLM) pairs across thousands of records: decide each pair once.
    verdicts: dict[tuple[int | None, int | None, str], str | None] = {}
    result = ScopedTelemetry()
    for identity, batch in received:
        namespace, edge_id = identity.namespace, identity.edge_id
        kept: dict[str, list] = {"analytics": [], "budget_usage": [], "proxy_logs": []}
        refused, first = 0, ""
        for section, records in kept.items():
            append = records.append
            for record in getattr(batch, section):
                reason = out_of_range(record)
                if reason is None:
                    key = (record.app_id, record.llm_id, namespace)
                    try:
                        reason = verdicts[key]
                    except KeyError:
                        reason = verdicts[key] = refusal(record.app_id, record.llm_id, namespace)
                if reason is not None:
                    refused, first = refused + 1, first or reason
                    continue
                # Budget-usage records carry no identity of their own. The others are rebuilt only when they claim
                # an edge or namespace other than the subject's (an empty one defers to the batch's, which is the
                # subject's below): an honest edge's records pass as they are.
                if section != "budget_usage" and (
                    (record.namespace and record.namespace != namespace)
                    or (record.edge_id and record.edge_id != edge_id)
                ):
                    record = msgspec.structs.replace(record, namespace=namespace, edge_id=edge_id)
                append(record)
        result.batches.append(msgspec.structs.replace(batch, namespace=namespace, edge_id=edge_id, **kept))
        if refused:
            result.refused += refused
            result.reasons.append(
                f"{refused} record(s) of batch {batch.batch_id[:64]!r} from edge {edge_id!r} of namespace "
                f"{namespace!r}: {first}"
            )
    return result
