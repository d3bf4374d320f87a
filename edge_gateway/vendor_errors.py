"""A vendor's own error fields, kept for a client that speaks the vendor's dialect.

Why: when a request reaches the vendor as the client sent it (the same dialect both sides, untranslated), the
vendor's `param` and `code` name the client's own fields and describe the client's own mistake; client code
branches on them (the `openai` SDK's `APIStatusError.code` / `.param`, Google's `status` and `details`: a
BadRequest's `fieldViolations`, an ErrorInfo's `reason`, a RetryInfo's `retryDelay`). A translated request's
fields would name the other API's fields, so they are not read there. The values come from a vendor and are
bounded and typed here: a field that is not a short string is dropped, and the edge's own takes its place;
Google's `details` are kept as a list of objects each with an `@type` string, whole entries dropped past
`MAX_DETAILS_BYTES` (a vendor's 1 MB list is cut to what fits, never passed on whole nor a 500).
Read on the error path only; a successful call never comes here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

__all__ = ["GOOGLE_STATUS_NAMES", "MAX_DETAILS_BYTES", "VendorFields", "google_details", "vendor_fields"]

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
MAX_DETAILS_BYTES = 16 * 1024
"""The most of Google's `error.details` kept, encoded (Google's own run to a few hundred bytes: an ErrorInfo, a
RetryInfo, a BadRequest naming a few fields)."""
_MAX_DETAILS = 16
"""The most `details` entries kept."""


class VendorFields(NamedTuple):
    """The vendor's own error fields, each None where the vendor gave none usable. For a Gemini client `type`
    holds Google's `status` name (its error document has no other type)."""

    type: str | None = None
    param: str | None = None
    code: str | None = None
    details: list[dict[str, Any]] | None = None
    """Google's `error.details` (`google_details`), for a Gemini client."""


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
        return VendorFields(
            type=status if isinstance(status, str) and status in GOOGLE_STATUS_NAMES else None,
            details=google_details(error.get("details")),
        )
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


def google_details(value: object) -> list[dict[str, Any]] | None:
    """Google's `error.details` as passed on: the entries that are objects with a short `@type` string (Google's
    `google.rpc` messages are `Any`s, named by it), in order, while they fit in `MAX_DETAILS_BYTES` encoded and
    `_MAX_DETAILS` entries; an entry that does not fit is dropped whole (a cut one would be another message),
    one that cannot be encoded (nested too deeply) too. None when nothing is left."""
    if not isinstance(value, list):
        return None
    kept: list[dict[str, Any]] = []
    room = MAX_DETAILS_BYTES
    for entry in value:
        if len(kept) == _MAX_DETAILS or room <= 0:
            break
        if not isinstance(entry, dict) or _bounded(entry.get("@type"), _MAX_PARAM) is None:
            continue
        try:
            size = len(orjson.dumps(entry))
        except orjson.JSONEncodeError:
            continue
        if size <= room:
            kept.append(entry)
            room -= size
    return kept or None
