"""Answering a short-circuit in the mode the client asked for.

A request hook may answer with a full response, a stream, or an error, whatever the client asked for. The
client gets what it asked for (chat and legacy completions; a native pass-through gets the plugin's answer
as is):
- a full response to a `stream: true` call is replayed as SSE chunks (`chat.completion.chunk` /
  `text_completion` shape: role, content, finish, then `data: [DONE]`); an error status is sent as an error;
- a stream to a non-streaming call is collected into one `chat.completion` / `text_completion` JSON;
- a Responses call (`/v1/responses`) given a chat-shaped answer (a `chat.completion`, or chunks) gets it as a
  Responses object or event stream; an answer already in the Responses shape goes out as is;
- what cannot be adapted (not the OpenAI shape) is a 500 `plugin_error` / `plugin_short_circuit_mismatch`
  naming the plugin, never a body the client's SDK cannot parse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from shared_sdk import PluginError, ShortCircuit

from .providers import Usage
from .providers.responses import ResponsesSession
from .respond_full import Executed, Outlet, respond_full
from .respond_stream import DONE, respond_stream
from .upstream_call import StreamResult

__all__ = ["answer_short_circuit", "collect_stream", "replay_as_stream"]

_ADAPTABLE = frozenset({"chat", "completions"})
_CHUNK_OBJECT = {"chat": "chat.completion.chunk", "completions": "text_completion"}
_FULL_OBJECT = {"chat": "chat.completion", "completions": "text_completion"}


class _NotAdaptable(ValueError):
    """The plugin's answer is not in the OpenAI shape of the requested kind."""


async def answer_short_circuit(
    out: Outlet, hooks: Any, executed: Executed, sc: ShortCircuit, by: str | None, stream: bool
) -> None:
    """Answer the client with a short-circuit (response hooks run over it as over any answer)."""
    ex = out.ex
    ex.short_circuited = True
    try:
        await _answer(out, hooks, executed, sc, stream)
    except _NotAdaptable as exc:
        error = PluginError(
            status_code=500,
            message=f"plugin '{by or '?'}' short-circuited with an answer the client cannot take: {exc}",
            type="plugin_error",
            code="plugin_short_circuit_mismatch",
            allow_fallbacks=False,
        )
        ex.error_type = error.code or error.type
        await respond_full(out, hooks, executed, error.status_code, {}, b"", error)


async def _answer(out: Outlet, hooks: Any, executed: Executed, sc: ShortCircuit, stream: bool) -> None:
    """An error as an error; a chat-shaped answer to a Responses call translated; anything else by `_answer_as`."""
    if sc.error is not None:
        out.ex.error_type = sc.error.code or sc.error.type
        await respond_full(out, hooks, executed, sc.error.status_code, {}, b"", sc.error)
        return
    if out.ex.kind == "responses":
        chat = _chat_answer(sc)
        if chat is not None:
            await _answer_responses(out, hooks, executed, chat, stream)
            return
    await _answer_as(out, hooks, executed, sc, stream)


async def _answer_as(out: Outlet, hooks: Any, executed: Executed, sc: ShortCircuit, stream: bool) -> None:
    """A response or stream in the mode asked for (chat and completions), as is for any other kind."""
    kind = out.ex.kind if out.ex.kind in _ADAPTABLE else ""
    if sc.stream_chunks is not None and (stream or not kind):
        await respond_stream(out, hooks, executed, _replay(sc.stream_chunks))
    elif sc.stream_chunks is not None:
        body = collect_stream(kind, sc.stream_chunks)
        await respond_full(out, hooks, executed, 200, {"content-type": "application/json"}, body, None)
    elif sc.response is not None and stream and kind and sc.response.status_code < 400:
        await respond_stream(out, hooks, executed, _replay(replay_as_stream(kind, sc.response.body)))
    elif sc.response is not None:
        response = sc.response
        await respond_full(out, hooks, executed, response.status_code, dict(response.headers), response.body, None)
    else:
        raise _NotAdaptable("a short-circuit without a response, stream or error")


def _chat_answer(sc: ShortCircuit) -> bytes | None:
    """A short-circuit's answer as one `chat.completion` body when it is chat-shaped, else None (sent as is)."""
    if sc.stream_chunks is not None:
        try:
            events = _events(sc.stream_chunks)
        except _NotAdaptable:
            return None
        return collect_stream("chat", sc.stream_chunks) if events and "choices" in events[0] else None
    if sc.response is None or sc.response.status_code >= 400:
        return None
    try:
        data = _json_object(sc.response.body)
    except _NotAdaptable:
        return None
    return sc.response.body if data.get("object") == "chat.completion" else None


async def _answer_responses(out: Outlet, hooks: Any, executed: Executed, chat_body: bytes, stream: bool) -> None:
    """A chat-shaped plugin answer to a Responses call, as a Responses object or event stream."""
    ex = out.ex
    session = ex.responses or ResponsesSession()
    data = ex.call.data if ex.call is not None else {}
    if stream:
        events = session.replay(data, ex.model, replay_as_stream("chat", chat_body))
        await respond_stream(out, hooks, executed, _replay(events, done=False))
        return
    chat = _json_object(chat_body)
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    found = choice.get("message")
    message: dict[str, Any] = found if isinstance(found, dict) else {}
    response = session.finish(data, str(chat.get("model") or ex.model), message, choice.get("finish_reason"), None)
    headers = {"content-type": "application/json"}
    await respond_full(out, hooks, executed, 200, headers, orjson.dumps(response), None)


def replay_as_stream(kind: str, body: bytes) -> list[bytes]:
    """A full `chat.completion` / `text_completion` as the SSE events a stream of it would have had."""
    data = _json_object(body)
    choices = data.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise _NotAdaptable(f"a {_FULL_OBJECT[kind]} with 'choices' is needed to stream it")
    base = {
        "id": data.get("id", ""),
        "object": _CHUNK_OBJECT[kind],
        "created": data.get("created", 0),
        "model": data.get("model", ""),
    }
    events: list[dict[str, Any]] = []
    for position, choice in enumerate(choices):
        events.extend(_choice_events(kind, base, choice.get("index", position), choice))
    return [b"data: " + orjson.dumps(event) + b"\n\n" for event in events] + [DONE]


def _choice_events(kind: str, base: dict[str, Any], index: Any, choice: dict[str, Any]) -> list[dict[str, Any]]:
    """One choice of a full answer as two chunks: its content (and tool calls), then its finish reason."""
    if kind == "chat":
        raw_message = choice.get("message")
        message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
        delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": message.get("content") or ""}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        opening: dict[str, Any] = {**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]}
        closing: dict[str, Any] = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
    else:
        opening = {**base, "choices": [{"index": index, "text": choice.get("text") or "", "finish_reason": None}]}
        closing = {"index": index, "text": "", "finish_reason": choice.get("finish_reason")}
    return [opening, {**base, "choices": [{**closing, "finish_reason": closing["finish_reason"] or "stop"}]}]


def collect_stream(kind: str, chunks: list[bytes]) -> bytes:
    """The `chat.completion` / `text_completion` a stream of chunks amounts to (content, tool calls, finish)."""
    head: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for event in _events(chunks):
        head = head or event
        usage = event.get("usage") or usage
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                raise _NotAdaptable("a stream chunk's choice is not an object")
            _merge(kind, choices.setdefault(int(choice.get("index", 0)), {}), choice)
    if not head:
        raise _NotAdaptable(f"a stream of {_CHUNK_OBJECT[kind]} events is needed to answer in full")
    body: dict[str, Any] = {
        "id": head.get("id", ""),
        "object": _FULL_OBJECT[kind],
        "created": head.get("created", 0),
        "model": head.get("model", ""),
        "choices": [_finished(kind, index, acc) for index, acc in sorted(choices.items())],
    }
    if usage:
        body["usage"] = usage
    return orjson.dumps(body)


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _NotAdaptable("the answer is not JSON") from None
    if not isinstance(value, dict):
        raise _NotAdaptable("the answer is not a JSON object")
    return value


def _events(chunks: list[bytes]) -> list[dict[str, Any]]:
    """The JSON events of SSE chunks (or of bare JSON chunks); `[DONE]` and comments skipped."""
    out: list[dict[str, Any]] = []
    for chunk in chunks:
        for line in chunk.split(b"\n") if chunk.lstrip().startswith((b"data:", b"event:", b":")) else [chunk]:
            line = line.strip()
            if line.startswith(b"data:"):
                line = line[5:].strip()
            elif line.startswith((b"event:", b":", b"id:", b"retry:")) or not line:
                continue
            if line == b"[DONE]":
                continue
            out.append(_json_object(line))
    return out


def _merge(kind: str, acc: dict[str, Any], choice: dict[str, Any]) -> None:
    """One streamed choice chunk added to what its index has accumulated. Text and tool-call fragments wait in
    lists, joined once by `_finished`: `+=` per chunk copied all that came before, CPU quadratic in an answer's size
    (a plugin may answer megabytes in small chunks, up to its body limit)."""
    acc["finish_reason"] = choice.get("finish_reason") or acc.get("finish_reason")
    if kind != "chat":
        acc.setdefault("text", []).append(choice.get("text") or "")
        return
    raw_delta = choice.get("delta")
    delta: dict[str, Any] = raw_delta if isinstance(raw_delta, dict) else {}
    acc["role"] = delta.get("role") or acc.get("role") or "assistant"
    acc.setdefault("content", []).append(delta.get("content") or "")
    _merge_tool_calls(acc, delta.get("tool_calls") or ())


def _merge_tool_calls(acc: dict[str, Any], deltas: Any) -> None:
    """Tool-call deltas kept per index: id and type as last sent, name and arguments fragments in lists."""
    for call in deltas:
        calls: dict[int, dict[str, Any]] = acc.setdefault("tool_calls", {})
        slot = calls.setdefault(int(call.get("index", len(calls))), {"name": [], "arguments": []})
        slot.update({k: v for k, v in call.items() if k in ("id", "type")})
        function: dict[str, Any] = call.get("function") or {}
        slot["name"].append(function.get("name") or "")
        slot["arguments"].append(function.get("arguments") or "")


def _whole_call(slot: dict[str, Any]) -> dict[str, Any]:
    """A tool call's fragments joined (`_merge_tool_calls`), as a message's `tool_calls` item."""
    call = {k: v for k, v in slot.items() if k in ("id", "type")}
    call["function"] = {"name": "".join(slot["name"]), "arguments": "".join(slot["arguments"])}
    return call


def _finished(kind: str, index: int, acc: dict[str, Any]) -> dict[str, Any]:
    finish = acc.get("finish_reason") or "stop"
    if kind != "chat":
        return {"index": index, "text": "".join(acc.get("text", ())), "finish_reason": finish, "logprobs": None}
    message: dict[str, Any] = {"role": acc.get("role", "assistant"), "content": "".join(acc.get("content", ()))}
    if acc.get("tool_calls"):
        message["tool_calls"] = [_whole_call(slot) for _, slot in sorted(acc["tool_calls"].items())]
    return {"index": index, "message": message, "finish_reason": finish, "logprobs": None}


class _ListReply:
    """The `reply` of a replayed stream: nothing to close."""

    async def aclose(self) -> None:
        return None


def _replay(chunks: list[bytes], done: bool = True) -> StreamResult:
    """A short-circuit stream (e.g. a cache hit) as a `StreamResult`; chunks become SSE events if they are not,
    and end with `[DONE]` unless `done` is False (Responses streams have no such marker)."""
    events = [c if c.startswith((b"data:", b"event:")) else b"data: " + c + b"\n\n" for c in chunks]
    if done and (not events or events[-1] != DONE):
        events.append(DONE)

    async def rest() -> AsyncIterator[list[bytes]]:
        yield events[1:]

    return StreamResult(200, {"content-type": "text/event-stream"}, events[:1], rest(), Usage(), _ListReply())
