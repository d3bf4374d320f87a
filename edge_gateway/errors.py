"""Errors the edge answers with, always in OpenAI's JSON error shape.

    GatewayError                      raised by the edge itself; never retried, never falls back
     ├── bad_request (400)            malformed JSON, missing model, bad field
     ├── body_too_large (413)
     ├── unsupported content-encoding (415, `intake.request_decoder`)
     ├── unauthenticated (401)
     ├── forbidden (403)              model not allowed, client IP not allowed, LLM not linked to the app
     ├── not_found (404)              unknown model / LLM / route
     ├── budget_exceeded (402)
     └── rate_limited (429)           carries Retry-After
    UpstreamError                     the vendor failed (network, timeout, 429, 5xx); retryable per `retryable`

Why two families: Bifrost's rule that the gateway never retries or falls back on its own errors is enforced
by type, not by inspecting messages. The body is `{"error": {"message", "type", "param", "code"}}`, which the
stock `openai` client parses into its exception classes.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from .vendor_errors import GOOGLE_STATUS_NAMES

__all__ = [
    "ANTHROPIC_KINDS",
    "GatewayError",
    "UpstreamError",
    "error_body",
    "dialect_of",
    "error_for",
    "GEMINI_KINDS",
    "error_response",
]

ANTHROPIC_KINDS = frozenset({"messages", "count_tokens"})
"""Request kinds whose callers speak Anthropic: their errors are rendered in Anthropic's shape (`error_for`)."""
GEMINI_KINDS = frozenset({"gemini", "gemini_stream", "gemini_count", "gemini_embed", "gemini_batch_embed"})
"""Request kinds of Gemini-format callers (`/v1beta/models/{model}:{method}`): errors in Google's shape."""
BUDGET_EXCEEDED = "budget_exceeded"
"""The code of the edge's own budget refusal (402), which Anthropic callers get as a 400 (`error_for`)."""
_SHARED_KINDS = frozenset({"models", "model"})
"""`GET /v1/models[/{id}]` serves both SDKs: Anthropic's sends `anthropic-version`, OpenAI's does not."""


def dialect_of(kind: str, headers: dict[str, str], path: str = "") -> str:
    """ "anthropic" when the caller speaks Anthropic (its routes, or the shared model routes with an
    `anthropic-version` header), "gemini" on Google's routes (`/v1beta/...`, or the shared model routes with
    Google's `x-goog-api-key`), else "openai": the shape of the caller's answers and errors."""
    if kind in GEMINI_KINDS or path.startswith("/v1beta/") or (kind in _SHARED_KINDS and "x-goog-api-key" in headers):
        return "gemini"
    if kind in ANTHROPIC_KINDS or (kind in _SHARED_KINDS and "anthropic-version" in headers):
        return "anthropic"
    return "openai"


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class GatewayError(Exception):
    """An error the edge raises itself, rendered as-is to the client."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    @classmethod
    def bad_request(cls, message: str, *, param: str | None = None, code: str = "invalid_request") -> GatewayError:
        return cls(400, message, type="invalid_request_error", code=code, param=param)

    @classmethod
    def body_too_large(cls, limit: int) -> GatewayError:
        return cls(413, f"request body exceeds {limit} bytes", type="invalid_request_error", code="body_too_large")

    @classmethod
    def unauthenticated(cls, message: str = "missing or invalid API key") -> GatewayError:
        return cls(401, message, type="authentication_error", code="invalid_api_key")

    @classmethod
    def forbidden(cls, message: str, *, code: str = "forbidden") -> GatewayError:
        return cls(403, message, type="permission_error", code=code)

    @classmethod
    def not_found(cls, message: str, *, code: str = "model_not_found", param: str | None = None) -> GatewayError:
        return cls(404, message, type="invalid_request_error", code=code, param=param)

    @classmethod
    def budget_exceeded(cls, message: str) -> GatewayError:
        return cls(402, message, type="insufficient_quota", code=BUDGET_EXCEEDED)

    @classmethod
    def rate_limited(cls, message: str, retry_after_s: float) -> GatewayError:
        seconds = max(1, int(retry_after_s + 0.999))
        return cls(
            429, message, type="rate_limit_error", code="rate_limit_exceeded", headers={"retry-after": str(seconds)}
        )


class UpstreamError(Exception):
    """The upstream call failed. `status_code` is what the client sees (502/504 or the vendor's 4xx/429)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        retryable: bool,
        type: str = "upstream_error",
        code: str | None = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        param: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.retryable = retryable
        self.type = type
        self.code = code
        self.param = param
        """The request field a vendor's 4xx is about, as the vendor named it (only when the request reached it
        untranslated: `vendor_errors`)."""
        self.details = details
        """Google's `error.details` of a Gemini LLM's 4xx to a Gemini client, bounded (`vendor_errors`)."""
        self.body = body
        self.headers = headers or {}
        self.upstream_status = 0
        """The vendor's own HTTP status when it answered with an error (0: no answer, e.g. a timeout)."""
        self.relayed = False
        """A vendor's in-band stream error the client already received as is (`providers.stream_errors`): the
        stream ends without an error event of the edge's, the request is still accounted as failed."""


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


def error_response(
    status_code: int,
    message: str,
    type: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        error_body(message, type, code, param), status_code=status_code, headers=headers, media_type="application/json"
    )


def error_for(
    dialect: str,
    status: int,
    message: str,
    type: str,
    code: str | None = None,
    param: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> tuple[int, bytes]:
    """(status, body) of an error as the caller's SDK expects it (`dialect_of`): OpenAI's shape, or Anthropic's
    (`{"type": "error", "error": {"type", "message"}}`, the type from the status).

    Anthropic's 402 is `billing_error` (its error list: a problem with the account's billing or payment), so a
    vendor's or plugin's 402 keeps its status with that type (the SDK raises `APIStatusError`, not retried). The
    edge's own budget refusal is a spend limit, which Anthropic answers with 400: it is 400 `billing_error`."""
    if dialect == "gemini":
        return gemini_error(status, message, type, details)
    if dialect != "anthropic":
        return status, error_body(message, type, code, param)
    anthropic_type = _ANTHROPIC_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")
    if status == 402 and code == BUDGET_EXCEEDED:
        status = 400
    return status, orjson.dumps({"type": "error", "error": {"type": anthropic_type, "message": message}})


_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def gemini_error(
    status: int, message: str, type: str = "", details: list[dict[str, Any]] | None = None
) -> tuple[int, bytes]:
    """Google's error document `{"error": {"code", "message", "status"}}`; `status` is `type` when that is one of
    Google's names (a Google LLM's own, passed on untranslated: `vendor_errors`), else the HTTP status's;
    `details`, a Google LLM's own (bounded there), when there are any.

    Google has no 402: a budget refusal is 400 FAILED_PRECONDITION there (what Google answers when billing does
    not allow a call; a 429 RESOURCE_EXHAUSTED would make clients retry a request that cannot succeed)."""
    name = type if type in GOOGLE_STATUS_NAMES else None
    name = name or _GOOGLE_STATUS.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    if status == 402:
        status = 400
    error: dict[str, Any] = {"code": status, "message": message, "status": name}
    if details:
        error["details"] = details
    return status, orjson.dumps({"error": error})
