"""Gemini streams for OpenAI-shaped callers: `streamGenerateContent?alt=sse` chunks as `chat.completion.chunk`
events, Gemini's in-band errors, and `ChainedStream` (two translators in a row: vendor -> chat -> the client's
format, e.g. Gemini -> chat -> Anthropic Messages, or OpenAI -> chat -> Gemini).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from ..errors import UpstreamError
from .base import OpenAIRequest, StreamTranslator, Usage
from .gemini_format import finish_reason, read_usage, requires_signatures, tool_call, usage_body
from .sse import event_data
from .stream_errors import gemini_stream_error

__all__ = ["ChainedStream", "GeminiToChatStream", "stream_error"]


def stream_error(payload: dict[str, Any]) -> UpstreamError:
    """Gemini's in-band error (`{"error": {"code", "message", "status"}}`) as the edge's stream failure."""
    return gemini_stream_error(payload)


class GeminiToChatStream:
    """Gemini SSE chunks in (`streamGenerateContent?alt=sse`), `chat.completion.chunk` events out.

    Gemini has no end marker: a chunk carrying `finishReason` ends the stream (`done`); `[DONE]` follows.
    The role chunk goes with the first part, as OpenAI's: `content: ""` before text (or an empty answer), and
    `content: null` with the first function call, so an answer of calls only accumulates to `content is None`
    in the OpenAI SDK, as a non-streamed one has (`gemini_format.gemini_to_chat`)."""

    def __init__(self, call: OpenAIRequest, model: str) -> None:
        self.usage = Usage(choices=1)
        self._model = model
        self._signed_ids = requires_signatures(model)
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())
        self._include_usage = call.client_wants_usage
        self._completions = call.kind == "completions"
        self._started = False
        self._tools = 0
        self._thoughts = 0
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if self._completions:
            choice: dict[str, Any] = {"index": 0, "text": delta.get("content") or "", "finish_reason": finish}
            body = {"id": self._id, "object": "text_completion", "created": self._created, "model": self._model}
            body["choices"] = [choice]
        else:
            body = {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model}
            body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
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
        if not isinstance(payload, dict):
            return []
        if "error" in payload:
            raise stream_error(payload)
        out: list[bytes] = []
        if payload.get("usageMetadata"):
            read_usage(payload["usageMetadata"], self.usage)
            self._thoughts = int(payload["usageMetadata"].get("thoughtsTokenCount") or 0)
        candidates = payload.get("candidates") or [{}]
        candidate = candidates[0] if isinstance(candidates[0], dict) else {}
        for part in (candidate.get("content") or {}).get("parts") or ():
            out += self._part(part)
        reason = candidate.get("finishReason")
        if reason or (payload.get("promptFeedback") or {}).get("blockReason"):
            self._done = True
            out += self._open({"content": ""})
            out.append(self._chunk({}, finish_reason(reason or "SAFETY", self._tools > 0)))
        return out

    def _open(self, delta: dict[str, Any]) -> list[bytes]:
        """The role chunk (once): alone before text, else merged into the first call's or thought's delta."""
        if self._started:
            return [] if delta.get("content") == "" else [self._chunk(delta)]
        self._started = True
        if delta.get("content") == "":
            return [self._chunk({"role": "assistant", "content": ""})]
        return [self._chunk({"role": "assistant", "content": None, **delta})]

    def _part(self, part: Any) -> list[bytes]:
        if not isinstance(part, dict):
            return []
        if isinstance(part.get("functionCall"), dict) and not self._completions:
            call = {"index": self._tools, **tool_call(part, self._signed_ids)}
            self._tools += 1
            self.usage.tool_calls = self._tools
            return self._open({"tool_calls": [call]})
        text = part.get("text")
        if not isinstance(text, str) or not text:
            return []
        if part.get("thought"):
            return [] if self._completions else self._open({"reasoning_content": text})
        return [*self._open({"content": ""}), self._chunk({"content": text})]

    def finish(self) -> list[bytes]:
        if not self._done:
            return []
        out: list[bytes] = []
        if self._include_usage:
            body = {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model}
            body.update(choices=[], usage=usage_body(self.usage, self._thoughts))
            out.append(b"data: " + orjson.dumps(body) + b"\n\n")
        out.append(b"data: [DONE]\n\n")
        return out


class ChainedStream:
    """Two translators in a row (vendor -> chat chunks -> the client's format): what the first emits, the second
    reads. Usage and the end are the second's, which sees the whole chat stream."""

    def __init__(self, first: StreamTranslator, second: StreamTranslator) -> None:
        self.first = first
        self.second = second
        self.usage = second.usage

    @property
    def done(self) -> bool:
        return self.second.done

    def feed(self, event: bytes) -> list[bytes]:
        out: list[bytes] = []
        for chat_event in self.first.feed(event):
            out += self.second.feed(chat_event)
        return out

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        for chat_event in self.first.finish():
            out += self.second.feed(chat_event)
        return out + self.second.finish()
