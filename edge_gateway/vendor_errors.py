"""A vendor's own error fields, kept for a client that speaks the vendor's dialect.

Why: when a request reaches the vendor as the client sent it (the same dialect both sides, untranslated), the
vendor's `param` and `code` name the client's own fields and describe the client's own mistake; client code
branches on them (the `openai` SDK's `APIStatusError.code` / `.param`, Google's `status`). A translated request's
fields would name the other API's fields, so they are not read there. The values come from a vendor and are
bounded and typed here: a field that is not a short string is dropped, and the edge's own takes its place.
Read on the error path only; a successful call never comes here.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

__all__ = ["GOOGLE_STATUS_NAMES", "VendorFields", "vendor_fields"]

GOOGLE_STATUS_NAMES = frozenset(
    {
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
    }
)
"""Google's canonical status names (google.rpc.Code): the only values of `error.status` passed on."""

_MAX_NAME = 64
"""The longest `type` / `code` kept (OpenAI's longest are some 30 characters)."""
_MAX_PARAM = 256
"""The longest `param` kept: a path into the request (`messages[3].content[0].image_url.url`), never a value."""


class VendorFields(NamedTuple):
    """The vendor's own error fields, each None where the vendor gave none usable. For a Gemini client `type`
    holds Google's `status` name (its error document has no other type)."""

    type: str | None = None
    param: str | None = None
    code: str | None = None


def vendor_fields(dialect: str, body: bytes) -> VendorFields:
    """The error fields of a vendor's error `body` in `dialect` ("openai" or "gemini"; others have none the
    edge does not already give)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return VendorFields()
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return VendorFields()
    if dialect == "gemini":
        status = error.get("status")
        return VendorFields(type=status if isinstance(status, str) and status in GOOGLE_STATUS_NAMES else None)
    if dialect != "openai":
        return VendorFields()
    return VendorFields(
        _bounded(error.get("type"), _MAX_NAME),
        _bounded(error.get("param"), _MAX_PARAM),
        _bounded(error.get("code"), _MAX_NAME),
    )


def _bounded(value: object, limit: int) -> str | None:
    """`value` when it is a non-empty string of at most `limit` characters, else None (dropped, not cut: a cut
    name would name something else)."""
    return value if isinstance(value, str) and 0 < len(value) <= limit else None
