"""A studio plugin that subscribes to budget alerts, as an operator's notification plugin would."""

from __future__ import annotations

from typing import ClassVar

from shared_sdk import BasePlugin, SchedulerPlugin
from shared_sdk.messages import Event


class AlertListener(BasePlugin, SchedulerPlugin):
    """Its first run subscribes to `config["topic"]`; every event it receives is kept in `received`."""

    name = "alert-listener"
    version = "1.0.0"
    received: ClassVar[list[Event]] = []

    async def execute_scheduled_task(self, ctx, schedule) -> None:
        await ctx.services.events.subscribe(schedule.config["topic"], self._on_event)

    async def _on_event(self, event: Event) -> None:
        AlertListener.received.append(event)
