"""A vendor's own error event in the middle of a stream, read in each vendor's wire format.

    Anthropic   event: error / data: {"type": "error", "error": {"type": "overloaded_error", "message": ...}}
    OpenAI      data: {"error": {"message", "type": "server_error", "param", "code"}}
    Responses   event: error / data: {"type": "error", "code", "message", "param", "sequence_number"}, and/or
                event: response.failed / data: {"type": "response.failed", "response": {"error": {"code", "message"}}}
    Gemini      data: {"error": {"code": 503, "message", "status": "UNAVAILABLE"}}

Why one reader: whatever the client's dialect, such an event must reach it exactly once, in its own dialect,
with the vendor's type and message, and the request must be accounted as failed. Translators raise the
`UpstreamError` built here, and `respond_stream` writes the one error event in the client's dialect (before the
stream's first chunk it is retried or falls back, like any failed call). A stream relayed as is (the client
speaks the vendor's dialect) has already passed the vendor's event on: its error is `relayed`, so the edge
writes nothing more and only records the failure. The error carries the edge's 502 (what accounting records
for a vendor failure), the vendor's status as `upstream_status` (Anthropic's and Google's error shapes are
chosen by it), the vendor's type as `type` and its message as `message`.
"""

from __future__ import annotations

from typing import Any

from ..errors import UpstreamError

__all__ = ["anthropic_stream_error", "gemini_stream_error", "openai_stream_error", "responses_stream_error"]

_ANTHROPIC_STATUS = {
    "invalid_request_error": 400,
    "billing_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_OPENAI_STATUS = {"invalid_request_error": 400, "requests": 429, "tokens": 429, "rate_limit_exceeded": 429}
_RESPONSES_STATUS = {"rate_limit_exceeded": 429, "invalid_prompt": 400, "server_error": 500}
_GOOGLE_STATUS = {"INVALID_ARGUMENT": 400, "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}


def _error(vendor_status: int, kind: str, message: str, relayed: bool) -> UpstreamError:
    err = UpstreamError(
        502,
        message or "upstream stream error",
        retryable=vendor_status >= 500 or vendor_status == 429,
        type=kind or "upstream_error",
        code="upstream_stream_error",
    )
    err.upstream_status = vendor_status
    err.relayed = relayed
    return err


def _object(payload: Any) -> dict[str, Any]:
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else {}


def anthropic_stream_error(payload: Any, relayed: bool = False) -> UpstreamError:
    """Anthropic's `error` event (`{"type": "error", "error": {"type", "message"}}`)."""
    error = _object(payload)
    kind = str(error.get("type") or "api_error")
    return _error(_ANTHROPIC_STATUS.get(kind, 500), kind, str(error.get("message") or ""), relayed)


def openai_stream_error(payload: Any, relayed: bool = False) -> UpstreamError:
    """OpenAI's in-band `{"error": {"message", "type", "code"}}` chunk (a string `error` is its message)."""
    raw = payload.get("error") if isinstance(payload, dict) else None
    error = raw if isinstance(raw, dict) else {"message": raw if isinstance(raw, str) else ""}
    kind = str(error.get("type") or "server_error")
    status = _OPENAI_STATUS.get(kind) or _OPENAI_STATUS.get(str(error.get("code") or ""), 500)
    return _error(status, kind, str(error.get("message") or ""), relayed)


def gemini_stream_error(payload: Any, relayed: bool = False) -> UpstreamError:
    """Google's in-band error document (`{"error": {"code", "message", "status"}}`)."""
    error = _object(payload)
    name = str(error.get("status") or "INTERNAL")
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code <= 599 else _GOOGLE_STATUS.get(name, 500)
    return _error(status, name, str(error.get("message") or ""), relayed)


def responses_stream_error(payload: Any, relayed: bool = False) -> UpstreamError:
    """The Responses API's `error` event (its `code` and `message` at the top, or in an `error` object as some
    deployments send them) or `response.failed` (the failed response's `error`); the code is the type."""
    error: Any = payload if isinstance(payload, dict) else {}
    if isinstance(error.get("response"), dict):  # response.failed
        error = error["response"].get("error")
    elif isinstance(error.get("error"), dict):
        error = error["error"]
    error = error if isinstance(error, dict) else {}
    kind = str(error.get("code") or error.get("type") or "server_error")
    return _error(_RESPONSES_STATUS.get(kind, 500), kind, str(error.get("message") or ""), relayed)
