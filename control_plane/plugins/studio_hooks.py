"""One studio LLM call through its LLM's plugin chain, as an edge runs a chat-completions request through it.

The hooks see what they see at an edge, in OpenAI's chat-completions shape (the studio's neutral shape), so a plugin
written for the edge works unchanged:

- request phase (`shared_sdk.attempt.prepare_attempt`, the edge's sequence): `handle_pre_auth`, then
  `handle_post_auth` with the request stamped as authenticated (a studio caller is known: no auth plugin is asked),
  then admission (the budgets, `StudioServicesImpl`). The request is `POST /v1/chat/completions` with the JSON body
  the vendor would get; a hook that rewrites it changes the call (messages, model, temperature, max_tokens, tools).
  A block or short-circuit stops the call before anything is sent upstream;
- a plain reply: `on_before_write_headers` then `on_before_write` over the `chat.completion` body, in reverse
  chain order over the plugins whose request phase ran; a hook may rewrite the reply, turn it into an error, or
  recover an error (a short-circuit's or the vendor's) into a reply;
- a stream: the headers hooks once, then `on_before_write` per `chat.completion.chunk` SSE event (one per text
  piece, one with the finish reason, then `data: [DONE]`), then `on_stream_complete` with what was passed on.

The hooks run on the studio host's loop (where isolated plugins' channels live); a call from another loop (the
portal's chat, on the web server's) hops there and back per hook phase, and only when the chain has hooks for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import msgspec

from shared_sdk import Context
from shared_sdk.attempt import AttemptRefused, Prepared, prepare_attempt
from shared_sdk.host import PluginHandle
from shared_sdk.messages import (
    AuthRequest,
    EnrichedRequest,
    LLMCallResponse,
    LLMMessage,
    PluginContextInfo,
    PluginError,
    ResponseWriteRequest,
    ShortCircuit,
    StreamCompleteRequest,
)
from shared_sdk.pipeline import AuthResult, HookChain

from .studio_vendor import openai_answer, openai_messages

__all__ = ["DONE", "StudioAttempt", "StudioRequest", "answer_of", "completion_body", "event_texts"]

DONE = b"data: [DONE]\n\n"
_PATH = "/v1/chat/completions"
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class StudioRequest:
    """A studio call as the hooks may change it."""

    model: str
    messages: list[LLMMessage]
    temperature: float | None = None
    max_tokens: int | None = None
    tools: list[dict[str, Any]] | None = None
    stream: bool = False

    def body(self) -> bytes:
        data: dict[str, Any] = {"model": self.model, "messages": openai_messages(self.messages)}
        if self.stream:
            data["stream"] = True
        if self.temperature is not None:
            data["temperature"] = self.temperature
        if self.max_tokens is not None:
            data["max_tokens"] = self.max_tokens
        if self.tools:
            data["tools"] = self.tools
        return json.dumps(data).encode()

    def rewritten(self, body: bytes) -> StudioRequest:
        """The call a hook's rewritten body asks for; `ValueError` when it is not a chat-completions request."""
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise ValueError("not a chat-completions request (no messages)")
        messages = [_message(m) for m in data["messages"]]
        max_tokens = data.get("max_tokens", data.get("max_completion_tokens"))
        return StudioRequest(
            model=str(data.get("model") or self.model),
            messages=messages,
            temperature=data.get("temperature"),
            max_tokens=int(max_tokens) if max_tokens is not None else None,
            tools=data.get("tools") or None,
            stream=self.stream,  # how the studio caller reads the answer does not change
        )


def _message(item: Any) -> LLMMessage:
    if not isinstance(item, dict):
        raise ValueError("a message is not an object")
    content = item.get("content")
    if isinstance(content, list):  # text parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return LLMMessage(
        role=str(item.get("role") or "user"),
        content=content if isinstance(content, str) else "",
        name=str(item.get("name") or ""),
        tool_call_id=str(item.get("tool_call_id") or ""),
        tool_calls=list(item.get("tool_calls") or []),
    )


def completion_body(answer: LLMCallResponse, request_id: str) -> bytes:
    """A plain reply as the `chat.completion` JSON a response hook sees at an edge."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    data = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason or "stop"}],
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        },
    }
    return json.dumps(data).encode()


def _chunk_event(request_id: str, model: str, text: str | None, finish_reason: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    data = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def event_texts(body: bytes) -> list[str]:
    """The text of the SSE events in `body` (a hook may have turned one event into several, or into none)."""
    texts: list[str] = []
    for event in body.split(b"\n\n"):
        for line in event.split(b"\n"):
            if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                continue
            try:
                data = json.loads(line[5:])
            except ValueError:
                continue
            for choice in data.get("choices") or () if isinstance(data, dict) else ():
                delta = choice.get("delta") or choice.get("message") or {}
                text = delta.get("content") if isinstance(delta, dict) else None
                if not isinstance(text, str):
                    text = choice.get("text")
                if isinstance(text, str) and text:
                    texts.append(text)
    return texts


class _Steps:
    """`AttemptSteps` of a studio call: no credential to check, admission by the caller's `admit`."""

    def __init__(self, attempt: StudioAttempt, admit: Callable[[StudioRequest], Awaitable[None]]) -> None:
        self.attempt = attempt
        self._admit = admit

    def request(self) -> EnrichedRequest:
        a = self.attempt
        return EnrichedRequest(
            method="POST",
            path=_PATH,
            headers={"content-type": "application/json"},
            body=a.request.body(),
            context=a.info,
            request_id=a.ctx.request_id,
            stream=a.request.stream,
            model=a.request.model,
        )

    def adopt(self, before: EnrichedRequest, after: EnrichedRequest) -> EnrichedRequest:
        if after.body != before.body:
            try:
                self.attempt.request = self.attempt.request.rewritten(after.body)
            except (ValueError, TypeError) as exc:
                raise AttemptRefused(
                    PluginError(
                        status_code=500,
                        message=f"a plugin rewrote the request into one the LLM cannot take: {exc}",
                        type="plugin_error",
                        code="plugin_bad_rewrite",
                        allow_fallbacks=False,
                    )
                ) from None
        elif after.model and after.model != before.model:
            self.attempt.request = dataclasses.replace(self.attempt.request, model=after.model)
        return after

    def auth_request(self, req: EnrichedRequest) -> AuthRequest | None:
        return None  # the caller is the control plane's own (a plugin, an agent, a signed-in user)

    async def accept(self, auth: AuthResult, req: EnrichedRequest | None) -> EnrichedRequest | None:
        return req

    def authenticated(self, req: EnrichedRequest) -> EnrichedRequest:
        return msgspec.structs.replace(req, authenticated=True, user_id=self.attempt.info.user_id)

    async def admit(self) -> None:
        await self._admit(self.attempt.request)


class StudioAttempt:
    """One studio call's pass through a chain (`hooks` None: no plugin runs, nothing is built for them)."""

    def __init__(
        self,
        hooks: HookChain | None,
        loop: asyncio.AbstractEventLoop | None,
        ctx: Context,
        request: StudioRequest,
    ) -> None:
        self.hooks = hooks
        self.loop = loop
        self.ctx = ctx
        self.request = request
        self.info: PluginContextInfo = ctx.info()
        self.executed: tuple[PluginHandle, ...] = ()
        self.sent: list[bytes] = []
        self.chunks = 0
        self._chunk_hooks = hooks is not None and bool(hooks.chunk_hooks())

    async def _on_host(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run `coro` on the studio host's loop (at once when already there)."""
        if self.loop is None or asyncio.get_running_loop() is self.loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def prepare(self, admit: Callable[[StudioRequest], Awaitable[None]]) -> Prepared:
        """The request phase; `admit(request)` (budgets) may refuse by raising `AttemptRefused`."""
        steps = _Steps(self, admit)
        if self.hooks is None:
            prepared = await prepare_attempt(None, self.ctx, steps)
        else:
            prepared = await self._on_host(prepare_attempt(self.hooks, self.ctx, steps))
        self.executed = prepared.executed
        return prepared

    async def reply(self, status: int, body: bytes, error: PluginError | None) -> ResponseWriteRequest:
        """Headers then body hooks over a plain reply (or an error); returns what the caller gets."""
        write = ResponseWriteRequest(
            request_id=self.ctx.request_id,
            status_code=status,
            headers={"content-type": "application/json"},
            body=body,
            error=error,
            context=self.info,
        )
        hooks = self.hooks
        if hooks is None:
            return write

        async def run() -> ResponseWriteRequest:
            out = await hooks.run_response_headers(self.ctx, self.executed, write)
            return await hooks.run_response_body(self.ctx, self.executed, out)

        return await self._on_host(run())

    async def stream_start(self) -> PluginError | None:
        """The headers hooks of a stream; the error one of them turned it into, if any."""
        hooks = self.hooks
        if hooks is None or not hooks.hooks("on_before_write_headers"):
            return None
        write = ResponseWriteRequest(
            request_id=self.ctx.request_id,
            headers={"content-type": "text/event-stream"},
            context=self.info,
        )
        out = await self._on_host(hooks.run_response_headers(self.ctx, self.executed, write))
        return out.error

    async def chunk(self, event: bytes) -> list[str]:
        """One SSE event through the chunk hooks; the text pieces to pass on. Raises `PluginCallError` when a
        fail-closed hook fails (the stream then ends with an error)."""
        index, self.chunks = self.chunks, self.chunks + 1
        hooks = self.hooks
        if hooks is None or not self._chunk_hooks:
            self.sent.append(event)
            return event_texts(event)
        write = ResponseWriteRequest(
            request_id=self.ctx.request_id,
            body=event,
            is_stream_chunk=True,
            chunk_index=index,
            is_final_chunk=event == DONE,
            context=self.info,
        )
        out = await self._on_host(hooks.run_response_chunk(self.ctx, self.executed, write))
        if out is None:
            return []
        self.sent.append(out.body)
        return event_texts(out.body)

    def text_event(self, text: str) -> bytes:
        return _chunk_event(self.ctx.request_id, self.request.model, text)

    def finish_event(self, finish_reason: str) -> bytes:
        return _chunk_event(self.ctx.request_id, self.request.model, None, finish_reason)

    async def stream_complete(self, status: int) -> None:
        """`on_stream_complete` with the events passed on (failures are logged: the stream is over)."""
        hooks = self.hooks
        if hooks is None or not hooks.hooks("on_stream_complete"):
            return
        req = StreamCompleteRequest(
            request_id=self.ctx.request_id,
            accumulated_response=b"".join(self.sent),
            headers={"content-type": "text/event-stream"},
            status_code=status,
            chunk_count=self.chunks,
            request_body=self.request.body(),
            context=self.info,
        )
        await self._on_host(hooks.run_stream_complete(self.ctx, self.executed, req))

    async def short_circuit_reply(self, sc: ShortCircuit) -> ResponseWriteRequest:
        """A request hook's answer (an error, a full response, or stream chunks) as a plain reply, through the
        response hooks of the plugins reached (a hook may recover an error)."""
        if sc.error is not None:
            return await self.reply(sc.error.status_code, b"", sc.error)
        if sc.response is not None:
            return await self.reply(sc.response.status_code, sc.response.body, None)
        text = "".join(event_texts(b"".join(sc.stream_chunks or ())))
        answer = LLMCallResponse(content=text, model=self.request.model, finish_reason="stop")
        return await self.reply(200, completion_body(answer, self.ctx.request_id), None)

    def short_circuit_events(self, sc: ShortCircuit) -> list[bytes] | None:
        """A request hook's streamed answer as SSE events (None: not a stream, answer it as a plain reply)."""
        if sc.stream_chunks is None:
            return None
        return [event for chunk in sc.stream_chunks for event in _split_events(chunk)]

    def reply_events(self, body: bytes) -> list[bytes]:
        """A plain reply replayed as a stream's events (a full short-circuit answer to a streamed call)."""
        answer = answer_of(body)
        events = [self.text_event(answer.content)] if answer.content else []
        return [*events, self.finish_event(answer.finish_reason or "stop"), DONE]


def _split_events(chunk: bytes) -> list[bytes]:
    return [event + b"\n\n" for event in chunk.split(b"\n\n") if event.strip()]


def answer_of(body: bytes) -> LLMCallResponse:
    """A `chat.completion` body (as the hooks left it) as the studio's answer; `ValueError` when it is not one."""
    data = json.loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise ValueError("not a chat completion")
    return openai_answer(data)
