"""Anthropic Messages API behind the OpenAI endpoints: translation both ways, streams and tool calls included.

Request (OpenAI chat -> Anthropic messages): system messages become `system`; `tool` messages become
`tool_result` blocks in a user turn; assistant `tool_calls` become `tool_use` blocks; `tools`/`tool_choice`,
`stop`, `temperature`, `top_p`, `max_tokens` map one to one (`max_tokens` is required by Anthropic, so it
defaults to `DEFAULT_MAX_TOKENS`); consecutive turns of the same role are merged, as Anthropic requires.

Response and stream (Anthropic -> OpenAI): text blocks become `content`, `tool_use` blocks become
`tool_calls` with JSON-string arguments, `stop_reason` maps to `finish_reason`, and usage is normalised to
OpenAI's meaning (`prompt_tokens` counts cache reads and writes too).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from ..errors import GatewayError, UpstreamError
from ..upstream import UpstreamRequest
from .base import OpenAIRequest, UpstreamSpec, Usage, join_url, native_request
from .openai import _UsageBody, native_stream_usage, usage_from, vendor_error_message
from .sse import event_data

__all__ = ["AnthropicProvider", "DEFAULT_MAX_TOKENS", "to_anthropic_request", "to_openai_response"]

DEFAULT_MAX_TOKENS = 4096
ANTHROPIC_VERSION = "2023-06-01"
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
        else:
            raise GatewayError.bad_request(
                f"content part type {kind!r} is not supported for Anthropic models", param="messages"
            )
    return blocks


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise GatewayError.bad_request("tool call arguments must be a JSON object", param="messages") from None
    return raw or {}


def to_anthropic_request(data: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise GatewayError.bad_request("'messages' must be a non-empty list", param="messages")
    for message in messages:
        if not isinstance(message, dict):
            raise GatewayError.bad_request("each message must be an object", param="messages")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.append(_text_of(content))
        elif role == "user":
            add("user", _content_blocks(content))
        elif role == "assistant":
            blocks = _content_blocks(content)
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:20]}",
                        "name": function.get("name", ""),
                        "input": _arguments(function.get("arguments")),
                    }
                )
            add("assistant", blocks)
        elif role == "tool":
            add(
                "user",
                [{"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""), "content": _text_of(content)}],
            )
        else:
            raise GatewayError.bad_request(f"unsupported message role {role!r}", param="messages")
    out: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": data.get("max_completion_tokens") or data.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    for key in ("temperature", "top_p", "top_k"):
        if data.get(key) is not None:
            out[key] = data[key]
    stop = data.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if stream:
        out["stream"] = True
    tools = data.get("tools")
    if tools:
        out["tools"] = [
            {
                "name": (t.get("function") or {}).get("name", ""),
                "description": (t.get("function") or {}).get("description", ""),
                "input_schema": (t.get("function") or {}).get("parameters") or {"type": "object", "properties": {}},
            }
            for t in tools
            if t.get("type", "function") == "function"
        ]
    choice = data.get("tool_choice")
    if choice == "required":
        out["tool_choice"] = {"type": "any"}
    elif choice == "auto":
        out["tool_choice"] = {"type": "auto"}
    elif choice == "none":
        out.pop("tools", None)
    elif isinstance(choice, dict) and choice.get("type") == "function":
        out["tool_choice"] = {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    user = data.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    return out


def _usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }


def to_openai_response(message: dict[str, Any], model: str, usage: Usage) -> dict[str, Any]:
    text = "".join(b.get("text", "") for b in message.get("content") or () if b.get("type") == "text")
    tool_calls = [
        {
            "id": b.get("id", ""),
            "type": "function",
            "function": {"name": b.get("name", ""), "arguments": orjson.dumps(b.get("input") or {}).decode()},
        }
        for b in message.get("content") or ()
        if b.get("type") == "tool_use"
    ]
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
            message = payload.get("message") or {}
            self._model = message.get("model") or self._model
            usage_from(_usage_struct(message.get("usage")), self.usage)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use" and not self._completions:
                index = len(self._tool_index)
                self._tool_index[payload.get("index", 0)] = index
                self.usage.tool_calls += 1
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": block.get("id", ""),
                                    "type": "function",
                                    "function": {"name": block.get("name", ""), "arguments": ""},
                                }
                            ]
                        }
                    )
                ]
            return []
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta" and not self._completions:
                index = self._tool_index.get(payload.get("index", 0), 0)
                return [
                    self._chunk(
                        {"tool_calls": [{"index": index, "function": {"arguments": delta.get("partial_json", "")}}]}
                    )
                ]
            return []
        if kind == "message_delta":
            native_stream_usage(event, self.usage)
            reason = (payload.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, _FINISH.get(reason or "end_turn", "stop"))]
        if kind == "message_stop":
            self._done = True
            out = []
            if self._include_usage:
                out.append(
                    b"data: "
                    + orjson.dumps(
                        {
                            "id": self._id,
                            "object": "chat.completion.chunk",
                            "created": self._created,
                            "model": self._model,
                            "choices": [],
                            "usage": _usage_dict(self.usage),
                        }
                    )
                    + b"\n\n"
                )
            out.append(b"data: [DONE]\n\n")
            return out
        if kind == "error":
            error = payload.get("error") or {}
            raise UpstreamError(
                502,
                f"upstream stream error: {error.get('message', 'unknown')}",
                retryable=error.get("type") in ("overloaded_error", "api_error"),
                code="upstream_stream_error",
            )
        return []  # ping and future event types

    def finish(self) -> list[bytes]:
        return []


def _usage_struct(raw: dict[str, Any] | None) -> _UsageBody | None:
    if not raw:
        return None
    return _UsageBody(
        input_tokens=raw.get("input_tokens"),
        output_tokens=raw.get("output_tokens"),
        cache_read_input_tokens=raw.get("cache_read_input_tokens"),
        cache_creation_input_tokens=raw.get("cache_creation_input_tokens"),
    )


class AnthropicProvider:
    vendor = "anthropic"

    def _headers(self, spec: UpstreamSpec) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if spec.api_key:
            headers["x-api-key"] = spec.api_key
        if spec.extra_headers:
            headers.update(spec.extra_headers)
        return headers

    def build(self, spec: UpstreamSpec, call: OpenAIRequest, model: str) -> UpstreamRequest:
        if call.kind == "embeddings":
            raise GatewayError.bad_request(
                f"LLM {spec.slug!r} (Anthropic) does not offer embeddings", param="model", code="unsupported_operation"
            )
        data = call.data
        if call.kind == "completions":
            prompt = data.get("prompt")
            if isinstance(prompt, list):
                prompt = "".join(str(p) for p in prompt)
            data = {**data, "messages": [{"role": "user", "content": str(prompt or "")}]}
        body = orjson.dumps(to_anthropic_request(data, model, call.stream))
        return UpstreamRequest(
            "POST",
            join_url(spec.api_base, "v1/messages"),
            self._headers(spec),
            body,
            call.stream,
            spec.connect_timeout_s,
            spec.first_byte_timeout_s,
            spec.idle_stream_timeout_s,
            spec.max_response_bytes,
        )

    def parse(self, call: OpenAIRequest, model: str, body: bytes) -> tuple[bytes, Usage]:
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                502, "upstream sent a malformed response", retryable=True, code="upstream_bad_response"
            ) from None
        usage = Usage()
        usage_from(_usage_struct(message.get("usage")), usage)
        response = to_openai_response(message, model, usage)
        if call.kind == "completions":
            choice = response["choices"][0]
            response = {
                **response,
                "object": "text_completion",
                "choices": [
                    {
                        "index": 0,
                        "text": choice["message"]["content"] or "",
                        "logprobs": None,
                        "finish_reason": choice["finish_reason"],
                    }
                ],
            }
        return orjson.dumps(response), usage

    def stream_translator(self, call: OpenAIRequest, model: str) -> AnthropicStreamTranslator:
        return AnthropicStreamTranslator(call, model)

    def error_message(self, body: bytes) -> str:
        return vendor_error_message(body)

    def native_request(
        self, spec: UpstreamSpec, method: str, path: str, query: str, headers: dict[str, str], body: bytes, stream: bool
    ) -> UpstreamRequest:
        return native_request(
            spec, (method, path, query, body, stream), headers, self._headers(spec), ("anthropic-version",)
        )

    def native_usage(self, body: bytes) -> Usage:
        usage = Usage()
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            return usage
        if isinstance(message, dict):
            usage_from(_usage_struct(message.get("usage")), usage)
        return usage

    def native_stream_usage(self, event: bytes, usage: Usage) -> None:
        native_stream_usage(event, usage)
