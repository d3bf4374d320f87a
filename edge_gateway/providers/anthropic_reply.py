"""An Anthropic reply as an OpenAI one: the full message, and the stream event by event.

Text blocks become `content`, `tool_use` blocks become `tool_calls` with JSON-string arguments, `stop_reason`
maps to `finish_reason`, and usage is normalised to OpenAI's meaning (`prompt_tokens` counts cache reads and
writes too). The request's translation is `anthropic_request.py`.

An answer of tool calls only has `content: null`, as at OpenAI, streamed too: the stream's role chunk waits for
the first content block and is `{"role": "assistant", "content": ""}` before text (what OpenAI sends, so a
client concatenating deltas never meets a null there) but carries the first tool call with `content: null`
before a tool call, so the OpenAI SDK's accumulated message has `content is None`, not "".
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from ..errors import UpstreamError
from .base import OpenAIRequest, Usage
from .openai import _UsageBody, native_stream_usage, usage_from
from .sse import event_data
from .stream_errors import anthropic_stream_error

__all__ = ["AnthropicStreamTranslator", "to_openai_response", "usage_struct"]

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


def _usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The message's `tool_use` blocks as OpenAI tool calls (arguments as a JSON string)."""
    return [
        {
            "id": b.get("id", ""),
            "type": "function",
            "function": {"name": b.get("name", ""), "arguments": orjson.dumps(b.get("input") or {}).decode()},
        }
        for b in message.get("content") or ()
        if b.get("type") == "tool_use"
    ]


def to_openai_response(message: dict[str, Any], model: str, usage: Usage) -> dict[str, Any]:
    text = "".join(b.get("text", "") for b in message.get("content") or () if b.get("type") == "text")
    tool_calls = _tool_calls(message)
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if tool_calls else "")}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    usage.tool_calls = len(tool_calls)
    usage.choices = 1
    return {
        "id": f"chatcmpl-{message.get('id', uuid.uuid4().hex)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": _FINISH.get(message.get("stop_reason") or "end_turn", "stop"),
            }
        ],
        "usage": _usage_dict(usage),
    }


class AnthropicStreamTranslator:
    """Anthropic stream events in, OpenAI `chat.completion.chunk` events out."""

    def __init__(self, call: OpenAIRequest, model: str) -> None:
        self.usage = Usage(choices=1)
        self._model = model
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())
        self._include_usage = call.client_wants_usage
        self._completions = call.kind == "completions"
        self._tool_index: dict[int, int] = {}
        self._opened = False  # the role chunk was sent (with the first content block, see the module docstring)
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        if self._completions:
            choice: dict[str, Any] = {"index": 0, "text": delta.get("content") or "", "finish_reason": finish_reason}
            body = {
                "id": self._id,
                "object": "text_completion",
                "created": self._created,
                "model": self._model,
                "choices": [choice],
            }
        else:
            body = {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def feed(self, event: bytes) -> list[bytes]:
        data = event_data(event)
        if not data:
            return []
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                502, "upstream sent a malformed stream event", retryable=True, code="upstream_bad_response"
            ) from None
        kind = payload.get("type")
        if kind == "message_start":
            return self._message_start(payload)
        if kind == "content_block_start":
            return self._block_start(payload)
        if kind == "content_block_delta":
            return self._block_delta(payload)
        if kind == "message_delta":
            native_stream_usage(event, self.usage)
            reason = (payload.get("delta") or {}).get("stop_reason")
            return [*self._open(), self._chunk({}, _FINISH.get(reason or "end_turn", "stop"))]
        if kind == "message_stop":
            return self._message_stop()
        if kind == "error":
            raise anthropic_stream_error(payload)
        return []  # ping and future event types

    def _message_start(self, payload: dict[str, Any]) -> list[bytes]:
        message = payload.get("message") or {}
        self._model = message.get("model") or self._model
        usage_from(usage_struct(message.get("usage")), self.usage)
        return []  # the role chunk waits for the first block: its `content` depends on it (module docstring)

    def _open(self) -> list[bytes]:
        """The role chunk before text (or an empty answer), once."""
        if self._opened:
            return []
        self._opened = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, payload: dict[str, Any]) -> list[bytes]:
        """A `tool_use` block opens a tool call (its OpenAI index counted from 0; the first one carries the role
        and `content: null`, as at OpenAI); a text block opens the text with the role chunk."""
        block = payload.get("content_block") or {}
        if block.get("type") == "text" or (block.get("type") == "tool_use" and self._completions):
            return self._open()
        if block.get("type") != "tool_use":
            return []  # thinking blocks have no chat counterpart
        index = len(self._tool_index)
        self._tool_index[payload.get("index", 0)] = index
        self.usage.tool_calls += 1
        function = {"name": block.get("name", ""), "arguments": ""}
        call = {"index": index, "id": block.get("id", ""), "type": "function", "function": function}
        if self._opened:
            return [self._chunk({"tool_calls": [call]})]
        self._opened = True
        return [self._chunk({"role": "assistant", "content": None, "tool_calls": [call]})]

    def _block_delta(self, payload: dict[str, Any]) -> list[bytes]:
        delta = payload.get("delta") or {}
        if delta.get("type") == "text_delta":
            return [*self._open(), self._chunk({"content": delta.get("text", "")})]
        if delta.get("type") == "input_json_delta" and not self._completions:
            index = self._tool_index.get(payload.get("index", 0), 0)
            return [
                self._chunk(
                    {"tool_calls": [{"index": index, "function": {"arguments": delta.get("partial_json", "")}}]}
                )
            ]
        return []

    def _message_stop(self) -> list[bytes]:
        """The end: the usage chunk when the client asked for it (`stream_options.include_usage`), then `[DONE]`."""
        self._done = True
        out = []
        if self._include_usage:
            usage_chunk = {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": _usage_dict(self.usage),
            }
            out.append(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
        out.append(b"data: [DONE]\n\n")
        return out

    def finish(self) -> list[bytes]:
        return []


def usage_struct(raw: dict[str, Any] | None) -> _UsageBody | None:
    """An Anthropic `usage` object in the shape `usage_from` reads (shared by the provider's native paths)."""
    if not raw:
        return None
    return _UsageBody(
        input_tokens=raw.get("input_tokens"),
        output_tokens=raw.get("output_tokens"),
        cache_read_input_tokens=raw.get("cache_read_input_tokens"),
        cache_creation_input_tokens=raw.get("cache_creation_input_tokens"),
    )
