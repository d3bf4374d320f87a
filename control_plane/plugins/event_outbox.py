"""The event outbox: DOWN events from every control-plane process, sent to the edges by the leader bridge.

A studio plugin's DOWN event is written here on the caller's connection (inside its transaction when it has one),
and the leader bridge drains the table in order. Below the plugin runtime and the studio services, which both
write here, so neither needs the plugin registration services.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import msgspec
from django.db import transaction
from django.utils import timezone

from shared_sdk.messages import Event
from shared_sdk.sync_protocol import namespace_token

from .models import OutboundEvent

__all__ = [
    "EVENT_PAYLOAD_MAX_BYTES",
    "outbound_event_add",
    "outbound_event_drain",
    "outbound_event_purge",
    "outbound_event_validate",
]

EVENT_PAYLOAD_MAX_BYTES = 512 * 1024
"""Events travel as one core-NATS message each (server `max_payload` 2 MB in deploy/nats): bigger bodies belong in
the KV or a payload, not an event."""


def outbound_event_validate(event: Event) -> None:
    """Raise `ValueError` for a DOWN event no edge could receive (bad namespace, oversized payload)."""
    namespace_token(event.namespace)  # raises ValueError naming the rule
    if not event.topic:
        raise ValueError("an event needs a topic")
    if len(event.payload) > EVENT_PAYLOAD_MAX_BYTES:
        raise ValueError(f"event payloads are limited to {EVENT_PAYLOAD_MAX_BYTES} bytes, got {len(event.payload)}")


def outbound_event_add(*, events: list[Event]) -> list[OutboundEvent]:
    """Queue DOWN events for the edges, on the caller's connection: inside its transaction when one is open
    (they are sent only if it commits), committed at once otherwise."""
    rows = []
    for event in events:
        outbound_event_validate(event)
        rows.append(
            OutboundEvent(
                event_id=event.id,
                topic=event.topic,
                namespace=event.namespace,
                source=event.source,
                body=msgspec.msgpack.encode(event),
            )
        )
    return OutboundEvent.objects.bulk_create(rows)


_event_decoder = msgspec.msgpack.Decoder(Event)


def outbound_event_drain(*, send: Callable[[list[Event]], None], limit: int = 500) -> int:
    """Claim the oldest unsent events (at most `limit`), hand them to `send` in order, mark them sent.

    One transaction: the rows stay locked while `send` runs (another bridge skips them, `SKIP LOCKED`), and when
    `send` raises (NATS unreachable) nothing is marked, so the same events go out, in the same order, next time.
    Returns the number of events sent; fewer than `limit` means the outbox is empty for now.
    """
    with transaction.atomic():
        rows = list(
            OutboundEvent.objects.select_for_update(skip_locked=True)
            .filter(sent_at__isnull=True)
            .order_by("id")
            .only("id", "body")[:limit]
        )
        if not rows:
            return 0
        send([_event_decoder.decode(bytes(row.body)) for row in rows])
        OutboundEvent.objects.filter(id__in=[row.id for row in rows]).update(sent_at=timezone.now())
    return len(rows)


def outbound_event_purge(*, sent_before: datetime.datetime) -> int:
    """Forget events sent before `sent_before` (the leader bridge keeps a day for troubleshooting)."""
    deleted, _ = OutboundEvent.objects.filter(sent_at__lt=sent_before).delete()
    return deleted
