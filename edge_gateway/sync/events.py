"""Plugin events across the tiers, edge side: UP events out to the control plane, DOWN events in from it.

The edge's local bus (`EdgeEventHub`) hands every `Direction.UP` event to `publish_up`; this link puts it on
`fj.up.<ns>.<edge>.event`. Events the control plane sends down arrive on `fj.down.<ns>.event` (this
namespace) or `fj.down._all.event` (global) and go to `deliver`, which re-publishes them locally as LOCAL:
never sent back up, so nothing loops. Events are at most once, like the local bus (no spool; an id seen recently
is dropped): a plugin that needs delivery guarantees sends a payload instead.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg

from shared_sdk.messages import Direction, Event
from shared_sdk.sync_protocol import EventEnvelope, decode, down_subject, encode, up_subject

log = logging.getLogger("fjordgate.edge.events")

RECENT_EVENT_IDS = 4096
"""Down event ids remembered: the control plane's outbox may re-send a batch after a bridge crash (sent, not yet
marked); an id seen recently is dropped, so a plugin never gets the same event twice."""


class EdgeEventLink:
    def __init__(self, *, namespace: str, edge_id: str) -> None:
        self.namespace = namespace
        self.edge_id = edge_id
        self.deliver: Callable[[Event], Awaitable[None]] | None = None
        """Set by the app: `EdgeEventHub.deliver_from_remote`."""
        self._nc: Client | None = None
        self._subject = up_subject(namespace, edge_id, "event")
        self.sent = 0
        self.received = 0
        self.duplicates = 0
        self._recent: OrderedDict[str, None] = OrderedDict()

    async def attach(self, nc: Client) -> None:
        self._nc = nc
        await nc.subscribe(down_subject(self.namespace, "event"), cb=self._on_down)
        await nc.subscribe(down_subject(None, "event"), cb=self._on_down)

    async def publish_up(self, event: Event) -> None:
        """`EdgeEventHub.uplink`: send one UP event to the control plane (dropped, and logged, without NATS)."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            log.warning("event %s for the control plane dropped: NATS is not connected", event.topic)
            return
        event.origin_edge_id = event.origin_edge_id or self.edge_id
        event.namespace = self.namespace
        await nc.publish(self._subject, encode(EventEnvelope(event=event, origin=f"edge:{self.edge_id}")))
        self.sent += 1

    def _seen(self, event_id: str) -> bool:
        recent = self._recent
        if event_id in recent:
            return True
        recent[event_id] = None
        if len(recent) > RECENT_EVENT_IDS:
            recent.popitem(last=False)
        return False

    async def _on_down(self, message: Msg) -> None:
        try:
            envelope = decode(message.data, EventEnvelope)
        except Exception as exc:
            log.warning("ignoring malformed event on %s: %s", message.subject, exc)
            return
        event = envelope.event
        if event.namespace and event.namespace != self.namespace:
            return  # a namespaced event that reached us through a wrong subject is not ours
        if self._seen(event.id):
            self.duplicates += 1
            return
        self.received += 1
        if self.deliver is not None:
            event.direction = Direction.LOCAL
            await self.deliver(event)
