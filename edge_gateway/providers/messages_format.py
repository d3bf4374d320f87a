"""Anthropic Messages in front of an OpenAI-compatible vendor: the request, the reply and the stream translated.

Why here: `POST /v1/messages` is a kind of request of its own ("messages"); to an Anthropic LLM it goes as is,
to an OpenAI-compatible one (the mock included) the provider sends Chat Completions and hands the client
Messages back. What maps to what:

    system (string or text blocks)          -> a system message
    text / image (base64, url) blocks       -> text / image_url parts (base64 as a data: URL)
    assistant tool_use blocks               -> tool_calls (arguments as a JSON string)
    user tool_result blocks                 -> tool messages (before the rest of that user turn)
    tools / tool_choice (auto, any, tool, none), disable_parallel_tool_use -> tools / tool_choice,
                                               parallel_tool_calls
    max_tokens, temperature, top_p, stop_sequences, metadata.user_id -> max_tokens, ..., stop, user
    finish_reason stop / length / tool_calls / content_filter -> end_turn / max_tokens / tool_use / refusal
    usage prompt (incl. cached) / completion -> input_tokens (without cached), cache_read_input_tokens,
                                               output_tokens

`thinking` blocks and `top_k` have no Chat Completions counterpart and are dropped.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import orjson

from ..errors import GatewayError, UpstreamError
from .base import OpenAIRequest, Usage, estimate_tokens
from .sse import event_data, event_name

__all__ = [
    "AnthropicEvents",
    "ChatToMessagesStream",
    "chat_to_message",
    "estimate_message_tokens",
    "messages_to_chat",
    "sse_event",
]

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use"}
_STOP.update(content_filter="refusal")


def _bad(message: str, param: str = "messages") -> GatewayError:
    return GatewayError.bad_request(message, param=param)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _bad("an image block needs a 'source'")
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise _bad(f"image source type {source.get('type')!r} is not supported")
    return {"type": "image_url", "image_url": {"url": url}}


def _user_turn(content: Any) -> list[dict[str, Any]]:
    """One user turn: its tool results as tool messages first (they answer the previous assistant turn)."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise _bad("'content' must be a string or an array of blocks")
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block))
        elif kind == "tool_result":
            result = _text(block.get("content"))
            if block.get("is_error"):
                result = f"Error: {result}"
            tools.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": result})
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise _bad(f"content block type {kind!r} is not supported for this model")
    if parts:
        tools.append({"role": "user", "content": parts})
    return tools


def _assistant_turn(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise _bad("'content' must be a string or an array of blocks")
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": str(block.get("name", "")), "arguments": arguments}
            calls.append({"id": str(block.get("id", "")), "type": "function", "function": function})
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise _bad(f"content block type {kind!r} is not supported in an assistant turn")
    turn: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        turn["tool_calls"] = calls
    return turn


def _tool_choice(choice: dict[str, Any], out: dict[str, Any]) -> None:
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": str(choice.get("name", ""))}}
    if choice.get("disable_parallel_tool_use") and "tools" in out:
        out["parallel_tool_calls"] = False


def messages_to_chat(data: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """An Anthropic Messages request body as a Chat Completions request body."""
    chat: list[dict[str, Any]] = []
    system = _text(data.get("system"))
    if system:
        chat.append({"role": "system", "content": system})
    for message in data.get("messages") or ():
        if not isinstance(message, dict):
            raise _bad("each message must be an object")
        role = message.get("role")
        if role == "user":
            chat.extend(_user_turn(message.get("content")))
        elif role == "assistant":
            chat.append(_assistant_turn(message.get("content")))
        else:
            raise _bad(f"unsupported message role {role!r}")
    out: dict[str, Any] = {"model": model, "messages": chat}
    if isinstance(data.get("max_tokens"), int):
        out["max_tokens"] = data["max_tokens"]
    for key in ("temperature", "top_p"):
        if data.get(key) is not None:
            out[key] = data[key]
    if data.get("stop_sequences"):
        out["stop"] = list(data["stop_sequences"])
    tools = data.get("tools")
    if isinstance(tools, list) and tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": str(t.get("name", "")),
                    "description": str(t.get("description", "")),
                    "parameters": t.get("input_schema") or {"type": "object", "properties": {}},
                },
            }
            for t in tools
            if isinstance(t, dict)
        ]
    if isinstance(data.get("tool_choice"), dict):
        _tool_choice(data["tool_choice"], out)
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _usage_body(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.prompt_tokens - usage.cache_read_tokens - usage.cache_write_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


def _arguments(raw: Any) -> Any:
    if not isinstance(raw, str) or not raw.strip():
        return raw if isinstance(raw, dict) else {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_raw": raw}  # a vendor that sent broken JSON: keep what it said rather than fail the reply


def chat_to_message(response: dict[str, Any], model: str, usage: Usage) -> dict[str, Any]:
    """A Chat Completions response (its first choice) as an Anthropic message."""
    choices = response.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    blocks: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": function.get("name", ""),
                "input": _arguments(function.get("arguments")),
            }
        )
    return {
        "id": f"msg_{response.get('id') or uuid.uuid4().hex}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": _STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": _usage_body(usage),
    }


def sse_event(name: str, payload: dict[str, Any]) -> bytes:
    """One Anthropic SSE event (`event:` line and JSON `data:`)."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class _Chunk(msgspec.Struct):
    id: str = ""
    usage: dict[str, Any] | None = None
    choices: list[dict[str, Any]] = []


_chunk_decoder = msgspec.json.Decoder(_Chunk)


class ChatToMessagesStream:
    """Chat Completions chunks in, Anthropic events out: message_start, content_block_start/delta/stop per text
    or tool_use block, message_delta (stop_reason and usage, known only at the end), message_stop."""

    def __init__(self, call: OpenAIRequest, model: str) -> None:
        self.usage = Usage(choices=1)
        self._call = call
        self._model = model
        self._started = False
        self._block: tuple[str, int] | None = None  # ("text", -1) or ("tool", openai tool index)
        self._index = -1
        self._stop = "end_turn"
        self._chars = 0
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def _start(self, chunk_id: str) -> list[bytes]:
        self._started = True
        message: dict[str, Any] = {
            "id": f"msg_{chunk_id or uuid.uuid4().hex}",
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [sse_event("message_start", {"type": "message_start", "message": message})]

    def _open(self, block: tuple[str, int], content_block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self._index += 1
        self._block = block
        start = {"type": "content_block_start", "index": self._index, "content_block": content_block}
        out.append(sse_event("content_block_start", start))
        return out

    def _close(self) -> list[bytes]:
        if self._block is None:
            return []
        self._block = None
        return [sse_event("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    def feed(self, event: bytes) -> list[bytes]:
        data = event_data(event)
        if not data:
            return []
        if data == b"[DONE]":
            return self._end()
        try:
            chunk = _chunk_decoder.decode(data)
        except msgspec.DecodeError:
            raise UpstreamError(
                502, "upstream sent a malformed stream event", retryable=True, code="upstream_bad_response"
            ) from None
        out = [] if self._started else self._start(chunk.id)
        if chunk.usage:
            self._read_usage(chunk.usage)
        for choice in chunk.choices[:1]:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._block != ("text", -1):
                    out += self._open(("text", -1), {"type": "text", "text": ""})
                self._chars += len(text)
                out.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or ():
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._stop = _STOP.get(choice["finish_reason"], "end_turn")
        return out

    def _tool_delta(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        key = ("tool", int(call.get("index", 0)))
        function = call.get("function") or {}
        if self._block != key:
            self.usage.tool_calls += 1
            tool_id = call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}"
            name = function.get("name", "")
            out += self._open(key, {"type": "tool_use", "id": tool_id, "name": name, "input": {}})
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._chars += len(arguments)
            out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return out

    def _read_usage(self, raw: dict[str, Any]) -> None:
        usage = self.usage
        usage.prompt_tokens = int(raw.get("prompt_tokens") or 0)
        usage.completion_tokens = int(raw.get("completion_tokens") or 0)
        details = raw.get("prompt_tokens_details")
        if isinstance(details, dict):
            usage.cache_read_tokens = int(details.get("cached_tokens") or 0)
        usage.reported = True

    def _end(self) -> list[bytes]:
        if self._done:
            return []
        self._done = True
        if not self.usage.reported:
            self.usage.prompt_tokens = estimate_message_tokens(self._call.data)
            self.usage.completion_tokens = (self._chars + 3) // 4
        out = [] if self._started else self._start("")
        out += self._close()
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop, "stop_sequence": None},
            "usage": _usage_body(self.usage),
        }
        out.append(sse_event("message_delta", delta))
        out.append(sse_event("message_stop", {"type": "message_stop"}))
        return out

    def finish(self) -> list[bytes]:
        return []


class AnthropicEvents:
    """An Anthropic stream relayed as is to a Messages client, reading usage on the way."""

    def __init__(self, read_usage: Any) -> None:
        self.usage = Usage(choices=1)
        self._read_usage = read_usage
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: bytes) -> list[bytes]:
        self._read_usage(event, self.usage)
        if b"message_stop" in event or b"error" in event:
            # The end marker, or the vendor's own in-band error (the client already has it: nothing to add).
            if event_name(event) in (b"message_stop", b"error") or _data_type(event) in ("message_stop", "error"):
                self._done = True
        if b'"tool_use"' in event and b"content_block_start" in event:
            self.usage.tool_calls += 1
        return [event]

    def finish(self) -> list[bytes]:
        return []


def _data_type(event: bytes) -> str | None:
    """The `type` of an event's JSON data (for streams without `event:` lines)."""
    try:
        payload = orjson.loads(event_data(event) or b"")
    except orjson.JSONDecodeError:
        return None
    return payload.get("type") if isinstance(payload, dict) else None


def estimate_message_tokens(data: dict[str, Any]) -> int:
    """Input tokens of a Messages request, estimated (4 characters per token over system, messages and tools)."""
    return estimate_tokens([data.get("system") or "", data.get("messages") or [], data.get("tools") or []])
