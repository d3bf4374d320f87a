"""A studio plugin that subscribes to budget alerts, as an operator's notification plugin would."""

from __future__ import annotations

from typing import ClassVar

from shared_sdk import BasePlugin, SessionAware
from shared_sdk.messages import Event


class AlertListener(BasePlugin, SessionAware):
    """Subscribes to budget alerts when its session opens; every event it receives is kept in `received`."""

    name = "alert-listener"
    version = "1.0.0"
    received: ClassVar[list[Event]] = []

    async def on_session_ready(self, ctx) -> None:
        await ctx.services.events.subscribe("fjordgate.budget.alert", self._on_event)

    async def _on_event(self, event: Event) -> None:
        AlertListener.received.append(event)
