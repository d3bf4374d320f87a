"""Plugin events across the tiers, control-plane side.

- Up: edges publish `Direction.UP` events on `fj.up.<ns>.<edge>.event`; one bridge of the queue group takes
  each and re-publishes it on the studio event bus as LOCAL (`runtime.publish_local_event`: studio plugins
  subscribed to the topic get it; LOCAL is never forwarded again, so it cannot echo back down).
- Down: studio plugins publish `Direction.DOWN` events in whichever control-plane process they run (web, Celery
  worker, this bridge); each goes into the event outbox (`control_plane.plugins.models.OutboundEvent`). The
  leader bridge drains it in order (`drain_outbox`) and sends each on `fj.down.<ns>.event` (the event's
  namespace) or `fj.down._all.event` (namespace "": every edge). Edges re-publish it locally as LOCAL, never back
  up. A row is marked sent in the transaction that claimed it, after NATS took the batch (flush), so NATS being
  down delays events instead of losing them; edges drop an event id they have just seen, so the rare re-send
  after a bridge crash between flush and commit is not delivered twice.

Events are otherwise at most once at the edges (core NATS: an edge that is disconnected misses them), like the
local buses they connect; payloads are the durable channel.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

from django.utils import timezone
from nats.aio.client import Client
from nats.aio.msg import Msg

from shared_sdk.messages import Direction, Event
from shared_sdk.sync_protocol import BRIDGE_QUEUE_GROUP, EventEnvelope, decode, down_subject, encode

from .db import run_db
from .identity import up_identity

log = logging.getLogger("fjordgate.bridge")

DRAIN_BATCH = 500
SENT_KEPT_FOR = datetime.timedelta(days=1)


def _studio_publish_local(event: Event) -> None:
    """Hand an event from an edge to the studio bus on the studio plugin loop (sync; waits for delivery)."""
    from control_plane.plugins.runtime import publish_local_event

    publish_local_event(event)


class EventRelay:
    def __init__(self, nc: Client, bridge_id: str) -> None:
        self._nc = nc
        self._origin = f"control:{bridge_id}"
        self.received = 0
        self.sent = 0

    async def start(self) -> None:
        await self._nc.subscribe("fj.up.*.*.event", queue=BRIDGE_QUEUE_GROUP, cb=self._on_up)

    # -- down ---------------------------------------------------------------------------------------------------

    async def drain_outbox(self) -> int:
        """Send every pending outbox event to the edges, oldest first; returns how many were sent.

        The claim, the NATS publication and the `sent_at` update are one database transaction on the bridge's DB
        thread; the publication itself runs on this loop (the DB thread waits for it).
        """
        from control_plane.plugins.services import outbound_event_drain

        if not self._nc.is_connected:
            return 0
        loop = asyncio.get_running_loop()

        def send(events: list[Event]) -> None:
            asyncio.run_coroutine_threadsafe(self._send(events), loop).result(15)

        total = 0
        while True:
            sent = await run_db(outbound_event_drain, send=send, limit=DRAIN_BATCH)
            total += sent
            if sent < DRAIN_BATCH:
                return total

    async def _send(self, events: list[Event]) -> None:
        for event in events:
            try:
                subject = down_subject(event.namespace or None, "event")
            except ValueError as exc:  # validated when queued; a row written by hand must not block the rest
                log.warning("down event %s not sent: %s", event.topic, exc)
                continue
            await self._nc.publish(subject, encode(EventEnvelope(event=event, origin=self._origin)))
        await self._nc.flush(timeout=10)  # raises when NATS did not take them: the rows stay unsent
        self.sent += len(events)

    async def purge_sent(self) -> int:
        from control_plane.plugins.services import outbound_event_purge

        return await run_db(outbound_event_purge, sent_before=timezone.now() - SENT_KEPT_FOR)

    # -- up -----------------------------------------------------------------------------------------------------

    async def _on_up(self, message: Msg) -> None:
        try:
            # the sender is the subject NATS let it publish on; the body's namespace and edge are not trusted
            identity = up_identity(message.subject, "event")
            event = decode(message.data, EventEnvelope).event
        except Exception as exc:
            log.warning("ignoring event on %s: %s", message.subject, exc)
            return
        self.received += 1
        local = Event(
            id=event.id,
            topic=event.topic,
            payload=event.payload,
            direction=Direction.LOCAL,
            source=event.source,
            origin_edge_id=identity.edge_id,
            namespace=identity.namespace,
            timestamp=event.timestamp,
        )
        try:
            await asyncio.get_running_loop().run_in_executor(None, _studio_publish_local, local)
        except Exception:
            log.exception("delivering event %s from edge %s failed", event.topic, identity.edge_id)
