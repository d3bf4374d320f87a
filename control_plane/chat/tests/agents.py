"""Agents the chat tests load (import path `control_plane.chat.tests.agents:*`), in-process or isolated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from shared_sdk import AgentPlugin, BasePlugin, Context
from shared_sdk.messages import AgentChunk, AgentChunkType, AgentMessageRequest


class SlowAgent(BasePlugin, AgentPlugin):
    """Says "working", then sleeps `sleep_s` before finishing; when its iterator is closed or cancelled it writes
    "closed" to the file `marker` (a file, so the proof crosses the isolated plugin's process boundary)."""

    name = "slow-agent"
    version = "1.0.0"

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config

    async def handle_agent_message(self, ctx: Context, req: AgentMessageRequest) -> AsyncIterator[AgentChunk]:
        try:
            tools = ",".join(t.slug for t in req.available_tools)
            text = f"working on {req.user_message} (session {ctx.session_id}, tools {tools})"
            yield AgentChunk(type=AgentChunkType.CONTENT, content=text)
            await asyncio.sleep(float(self.config.get("sleep_s", 30)))
            yield AgentChunk(type=AgentChunkType.DONE, is_final=True)
        finally:
            marker = self.config.get("marker")
            if marker:
                Path(marker).write_text("closed")
