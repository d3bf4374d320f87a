"""A Chat Completions reply as an Anthropic Messages one (full and streamed), and a Messages stream relayed as is.

The request side is `messages_request.py`. What maps to what:

    finish_reason stop / length / tool_calls / content_filter -> end_turn / max_tokens / tool_use / refusal
    usage prompt (incl. cached) / completion -> input_tokens (without cached), cache_read_input_tokens,
                                               output_tokens
    content / tool_calls                    -> text / tool_use blocks (arguments parsed back to JSON)

Stop sequences: Chat Completions' finish_reason "stop" means "a natural end or one of your stop sequences" and
does not say which, so the edge answers `end_turn` with `stop_sequence: null`, as Anthropic does for a natural
end: it does not claim a sequence the vendor did not report (a guess would tell an agent its delimiter was
reached when the model merely ended). A vendor that names the sequence (vLLM's `stop_reason`, where
`bedrock_format` puts Bedrock's too; one of the requested `stop_sequences`) gets Anthropic's answer:
`stop_reason: "stop_sequence"` and the sequence, in full replies and in the stream's `message_delta` alike. A
vendor known to have stopped on one of them without saying which (Bedrock's `stopReason: stop_sequence`, kept by
`bedrock_format` as finish_reason "stop_sequence", which Chat Completions does not have) gets
`stop_reason: "stop_sequence"` with `stop_sequence: null`.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import orjson

from ..errors import UpstreamError
from .base import OpenAIRequest, Usage, token_count
from .messages_request import estimate_message_tokens
from .sse import event_data, event_json, event_name
from .stream_errors import anthropic_stream_error, openai_stream_error

__all__ = ["AnthropicEvents", "ChatToMessagesStream", "chat_to_message", "sse_event"]

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use"}
_STOP.update(content_filter="refusal", stop_sequence="stop_sequence")


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


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat message's text and tool calls as Messages content blocks (an id made up where none came)."""
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
    return blocks


def stop_of(choice: dict[str, Any], asked: Any) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) of a chat choice; `asked`: the request's `stop_sequences` (see the module
    docstring: only a sequence the vendor named, and the client asked for, is reported as matched)."""
    finish = choice.get("finish_reason") or "stop"
    named = choice.get("stop_reason")
    if finish in ("stop", "stop_sequence") and isinstance(named, str) and isinstance(asked, list) and named in asked:
        return "stop_sequence", named
    return _STOP.get(finish, "end_turn"), None


def chat_to_message(response: dict[str, Any], model: str, usage: Usage, asked: Any = None) -> dict[str, Any]:
    """A Chat Completions response (its first choice) as an Anthropic message; `asked`: the client's
    `stop_sequences`."""
    choices = response.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    stop_reason, stop_sequence = stop_of(choice, asked)
    return {
        "id": f"msg_{response.get('id') or uuid.uuid4().hex}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _blocks(message),
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": _usage_body(usage),
    }


def sse_event(name: str, payload: dict[str, Any]) -> bytes:
    """One Anthropic SSE event (`event:` line and JSON `data:`)."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class _Chunk(msgspec.Struct):
    id: str = ""
    usage: dict[str, Any] | None = None
    choices: list[dict[str, Any]] = []
    error: Any = None  # the vendor's in-band error chunk (`stream_errors`)


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
        self._stop: tuple[str, str | None] = ("end_turn", None)
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
        if chunk.error is not None:
            raise openai_stream_error({"error": chunk.error})
        out = [] if self._started else self._start(chunk.id)
        if chunk.usage:
            self._read_usage(chunk.usage)
        for choice in chunk.choices[:1]:
            out += self._choice(choice)
        return out

    def _choice(self, choice: dict[str, Any]) -> list[bytes]:
        """The first choice's delta: text into the open text block (opened if need be), tool calls into theirs."""
        out: list[bytes] = []
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
            self._stop = stop_of(choice, self._call.data.get("stop_sequences"))
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
        usage.prompt_tokens = token_count(raw.get("prompt_tokens"))
        usage.completion_tokens = token_count(raw.get("completion_tokens"))
        details = raw.get("prompt_tokens_details")
        if isinstance(details, dict):
            usage.cache_read_tokens = token_count(details.get("cached_tokens"))
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
            "delta": {"stop_reason": self._stop[0], "stop_sequence": self._stop[1]},
            "usage": _usage_body(self.usage),
        }
        out.append(sse_event("message_delta", delta))
        out.append(sse_event("message_stop", {"type": "message_stop"}))
        return out

    def finish(self) -> list[bytes]:
        return []


class AnthropicEvents:
    """An Anthropic stream relayed as is to a Messages client, reading usage on the way. The vendor's in-band
    `error` event goes to the client as is; the stream then ends as failed without an error event of the edge's
    (`stream_errors`: the client gets exactly one)."""

    def __init__(self, read_usage: Any) -> None:
        self.usage = Usage(choices=1)
        self._read_usage = read_usage
        self._done = False
        self._failure: UpstreamError | None = None

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: bytes) -> list[bytes]:
        self._read_usage(event, self.usage)
        if b"message_stop" in event or b"error" in event:
            name = event_name(event)
            if name not in (b"message_stop", b"error"):  # a stream without `event:` lines: the data's type
                kind = _data_type(event)
                name = kind.encode() if isinstance(kind, str) else name
            if name == b"message_stop":
                self._done = True
            elif name == b"error":
                self._failure = anthropic_stream_error(event_json(event), relayed=True)
        if b'"tool_use"' in event and b"content_block_start" in event:
            self.usage.tool_calls += 1
        return [event]

    def finish(self) -> list[bytes]:
        if self._failure is not None and not self._done:
            raise self._failure
        return []


def _data_type(event: bytes) -> str | None:
    """The `type` of an event's JSON data (for streams without `event:` lines)."""
    payload = event_json(event)
    return payload.get("type") if isinstance(payload, dict) else None
