"""The reply stream of one chat turn, as server-sent events: an LLM's tokens or an agent's chunks as they come.

One producer task reads the source (the LLM through the studio's governed LLM service, or the agent plugin
through the studio host) into a small queue; the response's generator forwards each chunk as an SSE event. The
whole reply is bounded by `FJORDGATE_CHAT_TIMEOUT_S`. When the user leaves, the server cancels the response, the
generator's `finally` cancels the producer, and that cancellation closes the agent's iterator (or the isolated
plugin's gRPC stream) and ends the upstream LLM stream, whose usage is still recorded. The reply is stored with
every chunk kind in order, however it ended (done, error, cancelled). The events that end the reply on the page
(`done`, `error`) carry the reply's content parts as Markdown rendered by the server (`html`, see `markdown.py`),
which the page puts in place of the plain text it showed while the reply arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection

from control_plane.plugins.streaming import plugin_stream
from control_plane.plugins.studio_services import ChatTurnUser, StudioServicesImpl, serving_chat_user
from control_plane.retrieval.context import chat_retrieve
from shared_sdk import Context, PluginCallError, Runtime, ServiceError
from shared_sdk.messages import (
    AgentChunk,
    AgentChunkType,
    AgentMessageRequest,
    LLMMessage,
    PluginContextInfo,
    User,
)

from .markdown import render
from .models import ChatMessage
from .services import Turn, turn_claim, turn_finish
from .tool_rounds import tool_round

__all__ = ["reply_events", "sse"]

logger = logging.getLogger(__name__)

_QUEUE = 32
_END = object()


def sse(chunk: AgentChunk, html: list[str] | None = None) -> str:
    """One event: its name is the chunk kind, its data the chunk as JSON (one line: JSON escapes newlines); with
    `html`, the reply's content parts so far, rendered."""
    data: dict[str, Any] = {"type": str(chunk.type), "content": chunk.content, "metadata": chunk.metadata}
    if html is not None:
        data["html"] = html
    return f"event: {chunk.type}\ndata: {json.dumps(data)}\n\n"


def _error(text: str) -> AgentChunk:
    return AgentChunk(type=AgentChunkType.ERROR, content=text, is_final=True)


async def _llm_chunks(turn: Turn) -> AsyncIterator[AgentChunk]:
    """The LLM's answer through `StudioServicesImpl.stream_llm`: the LLM's plugin chain runs (a block is an error
    chunk, chunk hooks rewrite the pieces), budgets refuse, usage is recorded for the user.

    With tools to offer, each round that ends in tool calls runs them (`tool_rounds`) and asks again with their
    results, at most `FJORDGATE_CHAT_TOOL_ROUNDS` times; every round is its own governed, accounted LLM call."""
    assert turn.llm_id is not None
    services = StudioServicesImpl("", user_id=turn.user_id, source="chat")
    messages = [LLMMessage(role=h.role, content=h.content) for h in turn.history]
    messages.append(LLMMessage(role="user", content=turn.text))
    offered = {operation.name: operation for operation in turn.tool_operations}
    definitions = [operation.definition() for operation in turn.tool_operations] or None
    rounds = settings.FJORDGATE_CHAT_TOOL_ROUNDS
    datasource_ids = [d.id for d in turn.available_datasources if d.id is not None]
    try:
        found = await chat_retrieve(
            user_id=turn.user_id, llm_id=turn.llm_id, datasource_ids=datasource_ids, text=turn.text
        )
        if found is not None:  # the sources are shown before the answer, and the passages go to the LLM
            yield found.chunk
            if found.prompt:
                messages.insert(0, LLMMessage(role="system", content=found.prompt))
        for done_rounds in range(rounds + 1):
            text: list[str] = []
            last = None
            async for piece in services.stream_llm(turn.llm_id, messages, tools=definitions):
                if piece.content:
                    text.append(piece.content)
                    yield AgentChunk(type=AgentChunkType.CONTENT, content=piece.content)
                if piece.done:
                    last = piece
            if last is None or not last.tool_calls:
                reason = last.finish_reason if last is not None else "stop"
                yield AgentChunk(type=AgentChunkType.DONE, metadata={"finish_reason": reason}, is_final=True)
                return
            if done_rounds == rounds:
                yield _error(f"The LLM still asked for tools after {rounds} rounds of tool calls: stopped.")
                return
            messages.append(LLMMessage(role="assistant", content="".join(text), tool_calls=last.tool_calls))
            async for chunk in tool_round(last.tool_calls, offered, messages):
                yield chunk
    except ServiceError as exc:
        yield _error(str(exc))


async def _agent_chunks(turn: Turn) -> AsyncIterator[AgentChunk]:
    """The agent plugin's chunks through the studio host (in-process or isolated, as the plugin is registered)."""
    context = PluginContextInfo(request_id=turn.request_id, user_id=turn.user_id, metadata={"source": "chat"})
    request = AgentMessageRequest(
        session_id=str(turn.session_id),
        user_message=turn.text,
        available_llms=turn.available_llms,
        available_tools=turn.available_tools,
        available_datasources=turn.available_datasources,
        config=turn.agent_config,
        history=turn.history,
        context=context,
    )
    ctx = Context(
        runtime=Runtime.STUDIO,
        request_id=turn.request_id,
        user=User(id=turn.user_id),
        session_id=str(turn.session_id),
        metadata={"source": "chat"},
    )
    # the agent's own LLM calls during this turn are the session owner's (budgets, analytics): set here, from the
    # claimed turn, and copied into every step the host runs; this generator runs in its own producer task. Ended
    # with the turn: a task the agent leaves running keeps the value but no longer spends the user's budget
    turn_user = ChatTurnUser(turn.user_id)
    token = serving_chat_user.set(turn_user)
    try:
        async for chunk in plugin_stream(turn.agent_slug, "handle_agent_message", request, ctx=ctx):
            yield chunk
    except PluginCallError as exc:
        yield _error(f"The agent failed ({exc.kind}): {exc.detail or 'no detail'}")
    finally:
        turn_user.end()
        with contextlib.suppress(ValueError):  # closed from another context (a finalizer): that one never had it
            serving_chat_user.reset(token)


class _Reply:
    """The reply as stored: text of the content chunks, and every chunk in order (content runs merged)."""

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        self.text: list[str] = []
        self.status = ChatMessage.Status.STREAMING
        self.finished = False

    def add(self, chunk: AgentChunk) -> None:
        kind = str(chunk.type)
        if chunk.type is AgentChunkType.CONTENT:
            self.text.append(chunk.content)
            if self.parts and self.parts[-1]["type"] == kind:
                self.parts[-1]["content"] += chunk.content
                return
        elif chunk.type is AgentChunkType.DONE:
            self.finished = True
            if self.status == ChatMessage.Status.STREAMING:
                self.status = ChatMessage.Status.DONE
        elif chunk.type is AgentChunkType.ERROR:
            self.status = ChatMessage.Status.ERROR
        part: dict[str, Any] = {"type": kind, "content": chunk.content}
        if chunk.metadata:
            part["metadata"] = chunk.metadata
        self.parts.append(part)

    def rendered(self) -> list[str]:
        """Each content part as HTML, in order: the page's content elements, one per part."""
        return [str(render(part["content"])) for part in self.parts if part["type"] == str(AgentChunkType.CONTENT)]

    async def event(self, chunk: AgentChunk) -> str:
        """The chunk's event; one that ends the reply on the page carries the rendered parts (rendered in a
        thread: up to `markdown.MAX_CHARS` a part is a fraction of a second, not for the event loop)."""
        if chunk.type not in (AgentChunkType.DONE, AgentChunkType.ERROR):
            return sse(chunk)
        return sse(chunk, await asyncio.to_thread(self.rendered))


async def _produce(turn: Turn, queue: asyncio.Queue[Any]) -> None:
    source = _llm_chunks(turn) if turn.llm_id is not None else _agent_chunks(turn)
    try:
        async for chunk in source:
            await queue.put(chunk)
            if chunk.is_final and chunk.type in (AgentChunkType.DONE, AgentChunkType.ERROR):
                break
    except Exception as exc:  # a bug on our side: the user sees that the reply failed, not a hanging page
        logger.exception("chat reply of session %s failed", turn.session_id)
        await queue.put(_error(f"The reply failed ({type(exc).__name__})."))
    finally:
        with contextlib.suppress(Exception):
            await source.aclose()  # type: ignore[attr-defined]
        await queue.put(_END)


async def _chunks(turn: Turn, reply: _Reply) -> AsyncIterator[AgentChunk]:
    """The source's chunks within the reply timeout; the producer is cancelled however this ends."""
    timeout = settings.FJORDGATE_CHAT_TIMEOUT_S
    deadline = time.monotonic() + timeout
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=_QUEUE)
    producer = asyncio.create_task(_produce(turn, queue))
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                yield _error(f"No complete reply within {timeout:g} s: stopped.")
                return
            if item is _END:
                return
            yield item
    finally:
        if not producer.done():
            producer.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.shield(producer)


async def reply_events(*, user_id: int, session_id: int) -> AsyncGenerator[str, None]:
    """The SSE body for the session's pending turn; ends with a `done` or `error` event."""
    from django.core.exceptions import ValidationError

    try:
        turn = await sync_to_async(turn_claim)(user_id=user_id, session_id=session_id)
    except ValidationError as exc:
        yield sse(_error(" ".join(exc.messages)))
        return
    if turn is None:
        yield sse(_error("There is no message waiting for a reply."))
        return
    reply = _Reply()
    try:
        async for chunk in _chunks(turn, reply):
            reply.add(chunk)
            yield await reply.event(chunk)
        if not reply.finished and reply.status == ChatMessage.Status.STREAMING:
            done = AgentChunk(type=AgentChunkType.DONE, is_final=True)
            reply.add(done)
            yield await reply.event(done)
    except (asyncio.CancelledError, GeneratorExit):
        reply.status = ChatMessage.Status.CANCELLED
        raise
    finally:
        if reply.status == ChatMessage.Status.STREAMING:
            reply.status = ChatMessage.Status.CANCELLED
        finish = _db(turn_finish)(turn=turn, content="".join(reply.text), parts=reply.parts, status=reply.status)
        await asyncio.shield(finish)


def _db(fn: Any) -> Any:
    """`fn` in a worker thread that closes its connection after use: the reply is stored even while the request
    is being torn down (the user left), when the request's own thread-sensitive executor is going away."""

    def run(**kwargs: Any) -> Any:
        close_old_connections()
        try:
            return fn(**kwargs)
        finally:
            connection.close()

    return sync_to_async(run, thread_sensitive=False)
