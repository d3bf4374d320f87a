"""Anthropic's wire format: error documents, usage blocks and the Messages stream's named events.

Errors are `{"type": "error", "error": {"type", "message"}, "request_id"}`; streams are `event: NAME` plus
`data: {json}` pairs: message_start, then per content block content_block_start / content_block_delta* /
content_block_stop (a ping after the first block start), then message_delta (stop reason, cumulative usage) and
message_stop.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import Headers

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_FAULT_MESSAGES = {
    429: "Number of requests has exceeded your rate limit (mock upstream fault).",
    500: "Internal server error (mock upstream fault).",
    503: "Service unavailable (mock upstream fault).",
    529: "Overloaded (mock upstream fault).",
}


class AnthropicFormat:
    """The `VendorFormat` of api.anthropic.com."""

    request_id_header = b"request-id"

    def reject(self, headers: Headers, require_key: str | None) -> tuple[int, str, str | None] | None:
        if require_key is not None:
            key = headers.get("x-api-key")
            if not key:
                return 401, "x-api-key header is required", None
            if key != require_key:
                return 401, "invalid x-api-key", None
        if not headers.get("anthropic-version"):
            return 400, "anthropic-version: header is required", None
        return None

    def error_body(self, status: int, message: str, *, request_id: str, param: str | None, code: str | None) -> bytes:
        kind = _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id})

    def stream_error(self, request_id: str) -> bytes:
        return event(
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": request_id},
        )

    def invalid_json_message(self) -> str:
        return "There was an issue with the formatting or content of your request: the body is not valid JSON."

    def fault_message(self, status: int) -> str:
        return _FAULT_MESSAGES.get(status) or f"HTTP {status} (mock upstream fault)."


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def usage(input_tokens: int, output_tokens: int, cache_read: int, cache_write: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def message(
    message_id: str,
    model: str,
    content: list[dict[str, Any]],
    stop_reason: str | None,
    stop_sequence: str | None,
    usage_block: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_block,
    }


def text_delta(index: int, piece: str) -> bytes:
    """The stream's hot path: one text fragment."""
    return (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":'
        % index
        + orjson.dumps(piece)
        + b"}}\n\n"
    )


def json_delta(index: int, piece: str) -> bytes:
    return (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":'
        % index
        + orjson.dumps(piece)
        + b"}}\n\n"
    )


PING = event("ping", {"type": "ping"})
MESSAGE_STOP = event("message_stop", {"type": "message_stop"})
