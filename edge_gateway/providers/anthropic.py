"""Anthropic Messages API behind the OpenAI endpoints: the provider (headers, URLs, which translation when).

A chat or completions call is translated both ways (`anthropic_request.py` for the request,
`anthropic_reply.py` for the reply and its stream, tool calls included); a Messages call (or its count_tokens)
goes as is, with only the model routing chose written in, and its stream is relayed as is
(`messages_reply.AnthropicEvents`), usage read on the way.
"""

from __future__ import annotations

import orjson

from ..errors import GatewayError, UpstreamError
from ..upstream import UpstreamRequest
from .anthropic_reply import AnthropicStreamTranslator, to_openai_response, usage_struct
from .anthropic_request import DEFAULT_MAX_TOKENS, to_anthropic_request
from .base import OpenAIRequest, UpstreamSpec, Usage, join_url, json_reply_usage, native_request
from .messages_reply import AnthropicEvents
from .openai import native_stream_usage, usage_from, vendor_error_message

# The translations stay importable from here (other providers speaking Anthropic's format reuse them).
__all__ = ["AnthropicProvider", "DEFAULT_MAX_TOKENS", "to_anthropic_request", "to_openai_response"]

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider:
    vendor = "anthropic"

    def _headers(self, spec: UpstreamSpec) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if spec.api_key:
            headers["x-api-key"] = spec.api_key
        if spec.extra_headers:
            headers.update(spec.extra_headers)
        return headers

    def _native_messages(self, spec: UpstreamSpec, call: OpenAIRequest, model: str) -> UpstreamRequest:
        """A Messages client's request (or its count_tokens) as is: only the model routing chose is written in."""
        body = call.raw if model == call.model else orjson.dumps({**call.data, "model": model})
        path = "v1/messages/count_tokens" if call.kind == "count_tokens" else "v1/messages"
        return UpstreamRequest(
            "POST",
            join_url(spec.api_base, path),
            self._headers(spec),
            body,
            call.stream,
            spec.connect_timeout_s,
            spec.first_byte_timeout_s,
            spec.idle_stream_timeout_s,
            spec.max_response_bytes,
        )

    def build(self, spec: UpstreamSpec, call: OpenAIRequest, model: str) -> UpstreamRequest:
        if call.kind in ("messages", "count_tokens"):
            return self._native_messages(spec, call, model)
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
        if call.kind == "count_tokens":
            return body, usage
        usage_from(usage_struct(message.get("usage")), usage)
        if call.kind == "messages":
            usage.choices = 1
            usage.tool_calls = sum(1 for b in message.get("content") or () if b.get("type") == "tool_use")
            return body, usage
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

    def stream_translator(self, call: OpenAIRequest, model: str) -> AnthropicStreamTranslator | AnthropicEvents:
        if call.kind == "messages":
            return AnthropicEvents(native_stream_usage)
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
        return json_reply_usage(body, "usage", lambda raw, usage: usage_from(usage_struct(raw), usage))

    def native_stream_usage(self, event: bytes, usage: Usage) -> None:
        native_stream_usage(event, usage)
