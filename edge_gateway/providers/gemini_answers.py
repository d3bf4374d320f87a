"""Chat Completions answers in Gemini's shape, for Gemini-format clients of non-Gemini LLMs
(`gemini_inbound`): a `chat.completion` as a `GenerateContentResponse`, chat chunks as Gemini SSE chunks.

    finish stop / length / tool_calls / content_filter -> finishReason STOP / MAX_TOKENS / STOP / SAFETY
    reasoning_content -> a `thought: true` part; tool_calls -> functionCall parts (id, name, args)
    usage -> usageMetadata (reasoning tokens as thoughtsTokenCount, cached prompt as cachedContentTokenCount)
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from ..errors import UpstreamError
from .base import Usage, token_count
from .sse import event_data
from .stream_errors import openai_stream_error

__all__ = ["ChatToGeminiStream", "chat_to_gemini_response", "usage_metadata"]

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "function_call": "STOP"}
_FINISH.update(content_filter="SAFETY")


def usage_metadata(usage: Usage, reasoning: int = 0) -> dict[str, Any]:
    body = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": max(0, usage.completion_tokens - reasoning),
        "totalTokenCount": usage.total_tokens,
    }
    if reasoning:
        body["thoughtsTokenCount"] = reasoning
    if usage.cache_read_tokens:
        body["cachedContentTokenCount"] = usage.cache_read_tokens
    return body


def _reasoning(raw: Any) -> int:
    details = raw.get("completion_tokens_details") if isinstance(raw, dict) else None
    return int((details or {}).get("reasoning_tokens") or 0) if isinstance(details, dict) else 0


def _function_part(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    try:
        args = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        args = {"_raw": function.get("arguments")}  # a vendor's broken JSON: kept rather than failing the reply
    name = str(function.get("name", ""))
    return {
        "functionCall": {
            "id": str(call.get("id") or ""),
            "name": name,
            "args": args if isinstance(args, dict) else {"value": args},
        }
    }


def chat_to_gemini_response(chat: dict[str, Any], model: str, usage: Usage, response_id: str) -> dict[str, Any]:
    """A `chat.completion` as a `GenerateContentResponse`."""
    candidates = []
    for position, choice in enumerate(chat.get("choices") or ()):
        message = choice.get("message") or {}
        parts: list[dict[str, Any]] = []
        if isinstance(message.get("reasoning_content"), str) and message["reasoning_content"]:
            parts.append({"text": message["reasoning_content"], "thought": True})
        if isinstance(message.get("content"), str) and message["content"]:
            parts.append({"text": message["content"]})
        parts += [_function_part(call) for call in message.get("tool_calls") or ()]
        finish = _FINISH.get(choice.get("finish_reason") or "stop", "OTHER")
        candidate = {"content": {"parts": parts, "role": "model"}, "finishReason": finish}
        candidates.append({**candidate, "index": int(choice.get("index", position) or 0)})
    return {
        "candidates": candidates,
        "usageMetadata": usage_metadata(usage, _reasoning(chat.get("usage"))),
        "modelVersion": model,
        "responseId": response_id,
    }


class _HeldCall:
    """One streamed tool call's fragments, joined once when the stream ends. Why not `+=` per fragment: each
    copied all that came before, CPU quadratic in a call's arguments (a vendor may send MBs of them in tiny deltas)."""

    __slots__ = ("id", "name", "arguments")

    def __init__(self) -> None:
        self.id = ""
        self.name: list[str] = []
        self.arguments: list[str] = []

    def whole(self) -> dict[str, Any]:
        """The call as a chat message's `tool_calls` item (what `_function_part` reads)."""
        return {"id": self.id, "function": {"name": "".join(self.name), "arguments": "".join(self.arguments)}}


class ChatToGeminiStream:
    """Chat chunks in, Gemini SSE chunks out; function calls are sent whole (as Gemini does) with the last chunk,
    which also carries finishReason and usageMetadata (known only at the chat stream's end)."""

    def __init__(self, model: str) -> None:
        self.usage = Usage(choices=1)
        self._model = model
        self._id = uuid.uuid4().hex
        self._calls: dict[int, _HeldCall] = {}
        self._finish = "STOP"
        self._reasoning = 0
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def _event(self, parts: list[dict[str, Any]], final: bool = False) -> bytes:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        body: dict[str, Any] = {"candidates": [candidate]}
        if final:
            candidate["finishReason"] = self._finish
            body["usageMetadata"] = usage_metadata(self.usage, self._reasoning)
        body.update(modelVersion=self._model, responseId=self._id)
        return b"data: " + orjson.dumps(body) + b"\r\n\r\n"

    def feed(self, event: bytes) -> list[bytes]:
        data = event_data(event)
        if not data:
            return []
        if data == b"[DONE]":
            return self._end()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                502, "upstream sent a malformed stream event", retryable=True, code="upstream_bad_response"
            ) from None
        if "error" in chunk:  # the vendor's in-band error chunk (`stream_errors`)
            raise openai_stream_error(chunk)
        if isinstance(chunk.get("usage"), dict):
            self._read_usage(chunk["usage"])
        out: list[bytes] = []
        for choice in (chunk.get("choices") or ())[:1]:
            delta = choice.get("delta") or {}
            if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
                out.append(self._event([{"text": delta["reasoning_content"], "thought": True}]))
            if isinstance(delta.get("content"), str) and delta["content"]:
                out.append(self._event([{"text": delta["content"]}]))
            for call in delta.get("tool_calls") or ():
                self._collect(call)
            if choice.get("finish_reason"):
                self._finish = _FINISH.get(choice["finish_reason"], "OTHER")
        return out

    def _collect(self, call: dict[str, Any]) -> None:
        index = int(call.get("index", 0))
        held = self._calls.get(index)
        if held is None:
            held = self._calls[index] = _HeldCall()
        function = call.get("function") or {}
        held.id = held.id or str(call.get("id") or "")
        held.name.append(str(function.get("name") or ""))
        held.arguments.append(str(function.get("arguments") or ""))

    def _read_usage(self, raw: dict[str, Any]) -> None:
        self.usage.prompt_tokens = token_count(raw.get("prompt_tokens"))
        self.usage.completion_tokens = token_count(raw.get("completion_tokens"))
        details = raw.get("prompt_tokens_details")
        self.usage.cache_read_tokens = token_count(details.get("cached_tokens")) if isinstance(details, dict) else 0
        self._reasoning = _reasoning(raw)
        self.usage.reported = True

    def _end(self) -> list[bytes]:
        if self._done:
            return []
        self._done = True
        parts = [_function_part(self._calls[i].whole()) for i in sorted(self._calls)]
        self.usage.tool_calls = len(parts)
        return [self._event(parts, final=True)]

    def finish(self) -> list[bytes]:
        return []
