"""One round of an LLM chat's tool calls: each call shown as it starts (`tool_call`), run against the tool's API,
its result shown (`tool_result`) and added to the conversation for the LLM's next round.

Calls run one after another, so the chat shows them in the order the LLM asked. A call the LLM makes to a function
it was not offered, with arguments that are not a JSON object, or that fails (refused, timed out, unreachable, an
HTTP error) becomes a `tool_result` with `ok: false`, which the LLM reads like any other result: the reply goes on.
The tool's key is read and decrypted for each call, sent by `tool_calls`, and never part of a chunk or message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from control_plane.catalog.selectors import tool_auth_key
from control_plane.catalog.tool_calls import ToolOutcome, tool_auth, tool_call_run
from control_plane.catalog.tool_operations import ToolOperation
from shared_sdk.messages import AgentChunk, AgentChunkType, LLMMessage

__all__ = ["tool_round"]


def _key(tool_id: int) -> str:
    close_old_connections()
    try:
        return tool_auth_key(tool_id)
    finally:
        close_old_connections()


async def _run(operation: ToolOperation | None, name: str, arguments: str) -> ToolOutcome:
    if operation is None:
        return ToolOutcome(ok=False, text=f"Refused: no tool {name!r} was offered in this chat.")
    key = await sync_to_async(_key, thread_sensitive=False)(operation.tool_id)
    return await tool_call_run(
        operation,
        arguments,
        auth=tool_auth(operation, key),
        timeout_s=settings.FJORDGATE_CHAT_TOOL_TIMEOUT_S,
        max_bytes=settings.FJORDGATE_CHAT_TOOL_MAX_BYTES,
    )


async def tool_round(
    calls: list[dict[str, Any]], offered: dict[str, ToolOperation], messages: list[LLMMessage]
) -> AsyncIterator[AgentChunk]:
    """Run the LLM's `calls` (OpenAI's shape); each result is appended to `messages` as a `tool` message."""
    for call in calls:
        function = call.get("function") or {}
        name, arguments, call_id = str(function.get("name", "")), str(function.get("arguments") or "{}"), call["id"]
        operation = offered.get(name)
        where = {"tool": operation.tool_slug, "operation": operation.operation_id} if operation else {}
        label = f"{operation.tool_slug} · {operation.operation_id}" if operation else name
        yield AgentChunk(
            type=AgentChunkType.TOOL_CALL,
            content=f"{label} {arguments}",
            metadata={"id": call_id, "name": name, "arguments": arguments, **where},
        )
        outcome = await _run(operation, name, arguments)
        yield AgentChunk(
            type=AgentChunkType.TOOL_RESULT,
            content=outcome.text,
            metadata={"id": call_id, "name": name, "ok": outcome.ok, "status": outcome.status, **where},
        )
        messages.append(LLMMessage(role="tool", tool_call_id=call_id, name=name, content=outcome.text))
