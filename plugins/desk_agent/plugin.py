"""desk_agent: a chat agent that answers with the help of an LLM and a few safe, offline tools.

It runs in the studio (the portal's chat). Each turn: ask the LLM (through the studio's LLM service, so the LLM's
budgets refuse and every call is in analytics) with the tool definitions; when the LLM calls tools, run them and
show each call and result as it happens, then ask again with the results; stop when the LLM answers in text or
after `max_rounds` rounds. The chunks it streams: `thinking` (which LLM it asks), `tool_call`, `tool_result`,
`content`, then `done`; or `error` when it cannot answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from shared_sdk import AgentPlugin, BasePlugin, ConfigProvider, Context, ManifestProvider, ServiceError, SessionAware
from shared_sdk.messages import (
    LLM,
    AgentChunk,
    AgentChunkType,
    AgentMessageRequest,
    LLMMessage,
    ManifestPermissions,
    PluginManifest,
)

from .tools import TOOLS, ToolError, run_tool

SYSTEM_PROMPT = (
    "You are a careful desk assistant. Use the tools for arithmetic, the time and the list of LLMs instead of "
    "guessing. Answer briefly."
)


class DeskAgent(BasePlugin, AgentPlugin, ConfigProvider, ManifestProvider, SessionAware):
    name = "desk-agent"
    version = "1.0.0"
    description = "Chat agent with a calculator, a clock and the user's LLM list, over the studio's LLM service"

    def __init__(self) -> None:
        super().__init__()
        self.llm_slug = ""
        self.max_rounds = 4
        self.ready = False

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.llm_slug = str(config.get("llm", ""))
        self.max_rounds = int(config.get("max_rounds", 4))

    async def on_session_ready(self, ctx: Context) -> None:
        """The host is ready to serve our service calls: note it (the first chat turn needs no warm-up)."""
        self.ready = True

    async def on_session_closing(self, ctx: Context) -> None:
        self.ready = False

    def get_config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "llm": {
                    "type": "string",
                    "description": "slug of the LLM to use; empty = the first LLM of the user's catalogue",
                },
                "max_rounds": {"type": "integer", "minimum": 1, "maximum": 10, "default": 4},
            },
            "additionalProperties": False,
        }

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(
            id="desk-agent",
            version=self.version,
            name="Desk agent",
            description=self.description,
            # llms.proxy: the agent's own LLM calls (budgeted and recorded like any studio call)
            permissions=ManifestPermissions(services=["llms.proxy"]),
        )

    def _pick_llm(self, req: AgentMessageRequest) -> LLM | None:
        """The configured LLM when the user may use it, else the first of the user's LLMs."""
        for llm in req.available_llms:
            if self.llm_slug and llm.slug == self.llm_slug:
                return llm
        return req.available_llms[0] if req.available_llms and not self.llm_slug else None

    async def handle_agent_message(self, ctx: Context, req: AgentMessageRequest) -> AsyncIterator[AgentChunk]:
        llm = self._pick_llm(req)
        if llm is None or llm.id is None:
            wanted = f"the LLM {self.llm_slug!r}" if self.llm_slug else "an LLM"
            yield AgentChunk(type=AgentChunkType.ERROR, content=f"You have no access to {wanted}.", is_final=True)
            return
        assert ctx.services is not None and ctx.services.studio is not None, "a studio agent: the host gives both"
        studio = ctx.services.studio
        messages = [LLMMessage(role="system", content=SYSTEM_PROMPT)]
        messages += [LLMMessage(role=h.role, content=h.content) for h in req.history]
        messages.append(LLMMessage(role="user", content=req.user_message))
        for round_number in range(1, self.max_rounds + 1):
            yield AgentChunk(type=AgentChunkType.THINKING, content=f"Asking {llm.name} (round {round_number})")
            try:
                answer = await studio.call_llm(llm.id, messages, tools=TOOLS)
            except ServiceError as exc:
                yield AgentChunk(type=AgentChunkType.ERROR, content=str(exc), is_final=True)
                return
            if not answer.tool_calls:
                yield AgentChunk(type=AgentChunkType.CONTENT, content=answer.content)
                yield AgentChunk(type=AgentChunkType.DONE, metadata={"rounds": round_number}, is_final=True)
                return
            messages.append(LLMMessage(role="assistant", content=answer.content, tool_calls=answer.tool_calls))
            for call in answer.tool_calls:
                name = str((call.get("function") or {}).get("name", ""))
                arguments = str((call.get("function") or {}).get("arguments") or "{}")
                yield AgentChunk(
                    type=AgentChunkType.TOOL_CALL,
                    content=f"{name}({arguments})",
                    metadata={"id": call.get("id", ""), "name": name, "arguments": arguments},
                )
                try:
                    result, ok = run_tool(name, arguments, llms=req.available_llms), True
                except ToolError as exc:
                    result, ok = f"error: {exc}", False
                yield AgentChunk(type=AgentChunkType.TOOL_RESULT, content=result, metadata={"name": name, "ok": ok})
                messages.append(LLMMessage(role="tool", content=result, tool_call_id=str(call.get("id", ""))))
        yield AgentChunk(
            type=AgentChunkType.ERROR,
            content=f"No answer after {self.max_rounds} rounds of tool calls: "
            + json.dumps([m.content for m in messages if m.role == "tool"][-3:]),
            is_final=True,
        )


def create_plugin() -> DeskAgent:
    return DeskAgent()
