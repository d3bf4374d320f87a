"""Audit entries as control-plane events (topic `audit.entry`), so plugins can forward them (see
`plugins/audit_log`). Published after the transaction commits: a rolled-back write is never announced."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

__all__ = ["AUDIT_TOPIC", "add_event_sink", "entry_payload", "publish_on_commit"]

AUDIT_TOPIC = "audit.entry"

log = logging.getLogger("fjordgate.audit")


def entry_payload(entry: Any) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "at": entry.at.isoformat(),
        "actor_kind": entry.actor_kind,
        "actor": entry.actor_label,
        "actor_user_id": entry.actor_user_id,
        "source": entry.source,
        "remote_addr": entry.remote_addr,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "object_repr": entry.object_repr,
        "namespace": entry.namespace,
        "changes": entry.changes,
    }


EventSink = Callable[[str, dict[str, Any], str], None]
_sinks: list[EventSink] = []


def add_event_sink(sink: EventSink) -> None:
    """Called by the plugins app at start: `sink(topic, payload, namespace)` hands events to studio plugins.
    (A registration instead of an import, so the audit trail does not depend on the plugin runtime.)"""
    if sink not in _sinks:
        _sinks.append(sink)


def _publish(payload: dict[str, Any]) -> None:
    for sink in _sinks:
        try:
            sink(AUDIT_TOPIC, payload, payload["namespace"])
        except Exception:  # an unavailable plugin must not fail the write that already committed
            log.exception("audit entry %s not published to plugins", payload["id"])


def publish_on_commit(entry: Any) -> None:
    payload = entry_payload(entry)
    transaction.on_commit(lambda: _publish(payload))
