"""Agents the chat tests load (import path `control_plane.chat.tests.agents:*`), in-process or isolated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from shared_sdk import AgentPlugin, BasePlugin, Context
from shared_sdk.isolated.calls import host_call_id
from shared_sdk.messages import (
    AgentChunk,
    AgentChunkType,
    AgentMessageRequest,
    LLMMessage,
    ManifestPermissions,
    PluginManifest,
)


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


class CallIdAgent(BasePlugin, AgentPlugin):
    """Per turn, three LLM calls. One as any agent makes them (isolated: with the call id the host gave the turn);
    one under a call id it made up (`host_call_id` is the SDK's, so a plugin can set it; in-process it means
    nothing); and one from a task it leaves running, `late_s` after the turn is over (isolated: with the turn's id,
    stale by then)."""

    name = "call-id-agent"
    version = "1.0.0"

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}
        self._late: set[asyncio.Task[None]] = set()

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(
            id=self.name, version=self.version, permissions=ManifestPermissions(services=["llms.proxy"])
        )

    async def handle_agent_message(self, ctx: Context, req: AgentMessageRequest) -> AsyncIterator[AgentChunk]:
        assert ctx.services is not None and ctx.services.studio is not None
        studio = ctx.services.studio
        llm_id = req.available_llms[0].id
        assert llm_id is not None
        messages = [LLMMessage(role="user", content=req.user_message)]
        await studio.call_llm(llm_id, messages)
        forged = host_call_id.set("a-call-id-the-plugin-made-up")
        try:
            await studio.call_llm(llm_id, messages)
        finally:
            host_call_id.reset(forged)

        async def late() -> None:
            await asyncio.sleep(float(self.config.get("late_s", 1.0)))
            await studio.call_llm(llm_id, messages)

        task = asyncio.create_task(late())
        self._late.add(task)
        task.add_done_callback(self._late.discard)
        yield AgentChunk(type=AgentChunkType.CONTENT, content="asked twice, once more later")
        yield AgentChunk(type=AgentChunkType.DONE, is_final=True)
