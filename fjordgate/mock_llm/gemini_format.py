"""Google Gemini API's wire format: credentials, error documents, usage metadata and the two stream framings.

Errors are `{"error": {"code", "message", "status"}}` with Google's canonical status names (400
INVALID_ARGUMENT, 403 PERMISSION_DENIED, 404 NOT_FOUND, 429 RESOURCE_EXHAUSTED, 500 INTERNAL, 503 UNAVAILABLE,
...). The key travels in `x-goog-api-key` or `?key=`: none is 403 PERMISSION_DENIED ("unregistered callers"),
a wrong one 400 INVALID_ARGUMENT with reason API_KEY_INVALID, as Google answers; a JSON payload that cannot be
read (an unknown field name, a value of the wrong type) has a BadRequest `fieldViolations` entry in `details`. Streams are either SSE
(`alt=sse`: `data: {chunk}` + CRLF CRLF, no end marker) or one JSON array sent piece by piece (no `alt`).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import Headers

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota). (mock upstream fault)",
    500: "An internal error has occurred. (mock upstream fault)",
    503: "The model is overloaded. Please try again later. (mock upstream fault)",
}
_BAD_KEY_DETAILS = [
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
]


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")


def error_document(status: int, message: str, details: list[dict[str, Any]] | None = None) -> bytes:
    error: dict[str, Any] = {"code": status, "message": message, "status": status_name(status)}
    if details:
        error["details"] = details
    return orjson.dumps({"error": error})


class GeminiFormat:
    """The `VendorFormat` of generativelanguage.googleapis.com; `query_key` is the request's `?key=`."""

    request_id_header = b"x-goog-request-id"

    def __init__(self, query_key: str | None = None) -> None:
        self.query_key = query_key
        self._details: list[dict[str, Any]] | None = None

    def reject(self, headers: Headers, require_key: str | None) -> tuple[int, str, str | None] | None:
        if require_key is None:
            return None
        key = headers.get("x-goog-api-key") or self.query_key
        if not key:
            return (
                403,
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
                None,
            )
        if key != require_key:
            self._details = _BAD_KEY_DETAILS
            return 400, "API key not valid. Please pass a valid API key.", None
        return None

    def error_body(self, status: int, message: str, *, request_id: str, param: str | None, code: str | None) -> bytes:
        """`param`, set for a field the JSON payload could not be read into (an unknown name, a value of the wrong
        type), is Google's BadRequest `fieldViolations` entry for it, as Google answers those."""
        details, self._details = self._details, None
        if param is not None and status == 400 and details is None:
            violation = {"field": param, "description": message}
            details = [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}]
        if code == "invalid_mock_fault":
            message = f"{message} (invalid_mock_fault)"
        return error_document(status, message, details)

    def stream_error(self, request_id: str) -> bytes:
        return b"data: " + error_document(503, "The model is overloaded. Please try again later.") + b"\r\n\r\n"

    def invalid_json_message(self) -> str:
        return "Invalid JSON payload received. Unexpected token."

    def fault_message(self, status: int) -> str:
        return _FAULT_MESSAGES.get(status) or f"HTTP {status} (mock upstream fault)."


def usage_metadata(prompt: int, candidates: int, thoughts: int = 0, cached: int = 0) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if cached:
        usage["cachedContentTokenCount"] = cached
    return usage


def response(
    parts: list[dict[str, Any]], finish: str | None, usage: dict[str, Any] | None, model: str, response_id: str
) -> dict[str, Any]:
    """One `GenerateContentResponse` (a whole answer, or one stream chunk)."""
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    body: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        body["usageMetadata"] = usage
    body["modelVersion"] = model
    body["responseId"] = response_id
    return body


def sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\r\n\r\n"


def json_array(chunks: list[dict[str, Any]]) -> list[bytes]:
    """The stream without `alt=sse`: one JSON array, sent element by element (as Google does)."""
    pieces = [(b"[" if i == 0 else b",\r\n") + orjson.dumps(c) for i, c in enumerate(chunks)]
    pieces.append(b"]")
    return pieces
