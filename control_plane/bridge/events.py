"""Plugin events across the tiers, control-plane side.

- Up: edges publish `Direction.UP` events on `fj.up.<ns>.<edge>.event`; one bridge of the queue group takes
  each and re-publishes it on the studio event bus as LOCAL (studio plugins subscribed to the topic get it;
  LOCAL is never forwarded again, so it cannot echo back down).
- Down: a studio plugin publishing a `Direction.DOWN` event in this process reaches the forwarder registered
  with `control_plane.plugins.studio_services.register_event_forwarder`; the bridge sends it on
  `fj.down.<ns>.event` (the event's namespace) or `fj.down._all.event` (namespace "": every edge). Edges
  re-publish it locally as LOCAL, never back up.

Events are at most once (core NATS), like the local buses they connect.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg

from shared_sdk.messages import Direction, Event
from shared_sdk.sync_protocol import BRIDGE_QUEUE_GROUP, EventEnvelope, decode, down_subject, encode, up_subject

log = logging.getLogger("fjordgate.bridge")


def _studio_publish_local(event: Event) -> None:
    """Hand an event from an edge to the studio bus on the studio plugin loop (sync; waits for delivery)."""
    from control_plane.plugins import runtime

    local = Event(
        id=event.id,
        topic=event.topic,
        payload=event.payload,
        direction=Direction.LOCAL,
        source=event.source,
        origin_edge_id=event.origin_edge_id,
        namespace=event.namespace,
        timestamp=event.timestamp,
    )
    # the studio bus lives on the plugin runtime's loop; there is no public accessor for it yet (reported)
    loop, _ = runtime._ensure_loop()
    asyncio.run_coroutine_threadsafe(runtime._event_bus.publish_event(local), loop).result(30)


class EventRelay:
    def __init__(self, nc: Client, bridge_id: str) -> None:
        self._nc = nc
        self._origin = f"control:{bridge_id}"
        self._outgoing: asyncio.Queue[Event] = asyncio.Queue(maxsize=10_000)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.received = 0
        self.sent = 0

    async def start(self) -> None:
        from control_plane.plugins.studio_services import register_event_forwarder

        self._loop = asyncio.get_running_loop()
        await self._nc.subscribe("fj.up.*.*.event", queue=BRIDGE_QUEUE_GROUP, cb=self._on_up)
        register_event_forwarder(self.forward_down)

    def forward_down(self, event: Event) -> None:
        """The studio bus's forwarder (called on the plugin loop's thread): queue a DOWN event for NATS."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._enqueue, event)
        except RuntimeError:  # the bridge is shutting down
            pass

    def _enqueue(self, event: Event) -> None:
        try:
            self._outgoing.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("dropping down event %s: 10000 events waiting for NATS", event.topic)

    async def run(self) -> None:
        while True:
            event = await self._outgoing.get()
            try:
                subject = down_subject(event.namespace or None, "event")
                await self._nc.publish(subject, encode(EventEnvelope(event=event, origin=self._origin)))
                self.sent += 1
            except ValueError as exc:
                log.warning("down event %s not sent: %s", event.topic, exc)
            except Exception as exc:
                log.warning("down event %s not sent (NATS: %s)", event.topic, exc)

    async def _on_up(self, message: Msg) -> None:
        try:
            envelope = decode(message.data, EventEnvelope)
            event = envelope.event
            if message.subject != up_subject(event.namespace, event.origin_edge_id, "event"):
                # NATS permissions pin each edge to its own subjects; the body must agree with them
                raise ValueError(f"body names {event.namespace!r}/{event.origin_edge_id!r}")
        except Exception as exc:
            log.warning("ignoring event on %s: %s", message.subject, exc)
            return
        self.received += 1
        try:
            await asyncio.get_running_loop().run_in_executor(None, _studio_publish_local, event)
        except Exception:
            log.exception("delivering event %s from edge %s failed", event.topic, event.origin_edge_id)
