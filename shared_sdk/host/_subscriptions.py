"""`TrackedEvents`: the event bus as one load of one plugin sees it, remembering that load's subscriptions.

Why: a plugin subscribes in `on_session_ready` and rarely unsubscribes in `shutdown`. When the host reloads it
(new config, new code) the old instance's handlers would stay on the bus and every event would reach the plugin
twice, then three times. The host wraps each load's bus in one of these and drops whatever is left when that load
is stopped, so a reload leaves exactly the new instance's subscriptions.
"""

from __future__ import annotations

from ..context import EventBus, EventHandler
from ..messages import Event

__all__ = ["TrackedEvents"]


class TrackedEvents(EventBus):
    def __init__(self, inner: EventBus) -> None:
        self._inner = inner
        self.source = inner.source
        self._ids: set[str] = set()

    async def publish_event(self, event: Event) -> None:
        await self._inner.publish_event(event)

    async def subscribe(self, topic: str, handler: EventHandler) -> str:
        sub_id = await self._inner.subscribe(topic, handler)
        self._ids.add(sub_id)
        return sub_id

    async def subscribe_all(self, handler: EventHandler) -> str:
        sub_id = await self._inner.subscribe_all(handler)
        self._ids.add(sub_id)
        return sub_id

    async def unsubscribe(self, subscription_id: str) -> bool:
        self._ids.discard(subscription_id)
        return await self._inner.unsubscribe(subscription_id)

    @property
    def active(self) -> int:
        """Subscriptions of this load still on the bus."""
        return len(self._ids)

    async def drop_all(self) -> int:
        """Unsubscribe everything this load subscribed; returns how many were left."""
        ids, self._ids = self._ids, set()
        for sub_id in ids:
            await self._inner.unsubscribe(sub_id)
        return len(ids)
