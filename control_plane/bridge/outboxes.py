"""Whether the outboxes the bridge polls hold anything for it: one statement, before any selector runs.

Why: the leader bridge polls three outboxes every `BRIDGE_POLL_INTERVAL_MS` (100 ms): config changes to publish,
edge reloads and plugin events to send. Each poll was an ORM query compiled anew (the events' in a transaction of
its own), so a bridge with nothing to do spent 55-61 ms of CPU a second on them (py-spy: Django's query compiler),
and PostgreSQL 9-13 ms, on the cores the edges' telemetry ingest needs. One raw statement of three EXISTS on
indexed columns, with the selectors' own conditions, tells each loop whether to run its selector at all.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

from django.db import connection, models
from django.utils import timezone


class Pending(NamedTuple):
    config: bool
    """Config changes `config_changes_unpublished` would return."""
    reloads: bool
    """Edge reload requests not yet published."""
    events: bool
    """Plugin events not yet sent to the edges."""


@cache
def _statement() -> str:
    from control_plane.edges.models import EdgeReloadRequest
    from control_plane.plugins.models import OutboundEvent
    from control_plane.sync.models import ConfigChange

    def table(model: type[models.Model]) -> str:
        return connection.ops.quote_name(model._meta.db_table)

    def column(model: type[models.Model], name: str) -> str:
        field = model._meta.get_field(name)
        assert isinstance(field, models.Field) and field.column
        return connection.ops.quote_name(field.column)

    change = ConfigChange
    return (
        f"SELECT EXISTS (SELECT 1 FROM {table(change)} WHERE {column(change, 'published_at')} IS NULL"
        f" AND {column(change, 'dead_lettered_at')} IS NULL"
        f" AND ({column(change, 'next_attempt_at')} IS NULL OR {column(change, 'next_attempt_at')} <= %s)),"
        f" EXISTS (SELECT 1 FROM {table(EdgeReloadRequest)}"
        f" WHERE {column(EdgeReloadRequest, 'published_at')} IS NULL),"
        f" EXISTS (SELECT 1 FROM {table(OutboundEvent)} WHERE {column(OutboundEvent, 'sent_at')} IS NULL)"
    )


def pending_outboxes() -> Pending:
    """What each outbox holds for the bridge now (run on the bridge's database thread, `run_db`)."""
    with connection.cursor() as cursor:
        cursor.execute(_statement(), [timezone.now()])
        config, reloads, events = cursor.fetchone()
    return Pending(bool(config), bool(reloads), bool(events))
