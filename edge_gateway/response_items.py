"""`GET /v1/responses/{response_id}/input_items`: the items a stored response was generated from, a page at a time.

What OpenAI's endpoint answers (`client.responses.input_items.list`): every item that went into the response,
the turns its `previous_response_id` chain carried as well as its own `input`, as a cursor page
(`{"object": "list", "data", "first_id", "last_id", "has_more"}`), newest first unless `order=asc`, at most
`limit` (1-100, default 20) items after or before an item's id.

The edge keeps a response's whole conversation in one entry (`response_store`: earlier turns, this input, this
output), so its input items are that entry less the response's own output. A client's input message as stored is
what it sent (a string, or parts without ids): here it gets the shape the API returns for an input message
(`type: message`, content parts, `status: completed`) and an id derived from the response's id and its place, so
the same listing pages the same way every time. Items that carry an id keep it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import GatewayError

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "ItemsQuery", "input_items_page", "parse_items_query"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_INCLUDABLE = frozenset(
    {
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
    }
)
"""OpenAI's `include` values; the edge's stored items hold nothing more to add for them, but a value outside the
list is the caller's mistake (OpenAI's 400), not something to ignore."""
_MAX_CURSOR = 256


class ItemsQuery:
    """The listing's query: `limit`, `order`, and at most one cursor (`after` or `before`, an item id)."""

    __slots__ = ("after", "before", "limit", "order")

    def __init__(self, limit: int, order: str, after: str | None, before: str | None) -> None:
        self.limit = limit
        self.order = order
        self.after = after
        self.before = before


def parse_items_query(query: Mapping[str, str], include: Sequence[str]) -> ItemsQuery:
    """The query string's values, or OpenAI's 400 naming the parameter (`include` given as `include` or
    `include[]`, repeated)."""
    raw_limit = query.get("limit")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        if not (raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 4):
            raise GatewayError.bad_request(
                f"Invalid 'limit': expected an integer, got {raw_limit[:40]!r}.", param="limit", code="invalid_type"
            )
        limit = int(raw_limit)
        if not 1 <= limit <= MAX_LIMIT:
            raise GatewayError.bad_request(
                f"Invalid 'limit': integer below minimum value. Expected a value between 1 and {MAX_LIMIT}, "
                f"got {limit}.",
                param="limit",
                code="integer_out_of_range",
            )
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise GatewayError.bad_request(
            f"Invalid value: {order[:40]!r}. Supported values are: 'asc' and 'desc'.",
            param="order",
            code="invalid_value",
        )
    for value in include:
        if value not in _INCLUDABLE:
            raise GatewayError.bad_request(
                f"Invalid value: {value[:80]!r}. Supported values are: {', '.join(sorted(_INCLUDABLE))}.",
                param="include",
                code="invalid_value",
            )
    after, before = query.get("after"), query.get("before")
    for name, cursor in (("after", after), ("before", before)):
        if cursor is not None and not 0 < len(cursor) <= _MAX_CURSOR:
            raise GatewayError.bad_request(f"Invalid '{name}': not an item id.", param=name)
    if after is not None and before is not None:
        raise GatewayError.bad_request("Give at most one of 'after' and 'before'.", param="before")
    return ItemsQuery(limit, order, after, before)


def input_items_page(response_id: str, entry: Mapping[str, Any], query: ItemsQuery) -> dict[str, Any]:
    """One page of the input items of a stored entry (`{"response": ..., "items": [...]}`)."""
    stored: list[Any] = entry.get("items") or []
    output = (entry.get("response") or {}).get("output") or []
    kept = stored[: max(0, len(stored) - len(output))]
    items = [_listed(item, response_id, place) for place, item in enumerate(kept)]
    if query.order == "desc":
        items.reverse()
    start, stop = 0, len(items)
    cursor = query.after if query.after is not None else query.before
    if cursor is not None:
        at = next((place for place, item in enumerate(items) if item.get("id") == cursor), None)
        if at is None:
            raise GatewayError.bad_request(
                f"No item with id '{cursor[:80]}' in response '{response_id}'.",
                param="after" if query.after is not None else "before",
            )
        if query.after is not None:
            start = at + 1
        else:
            stop = at
            start = max(0, stop - query.limit)
    page = items[start : min(stop, start + query.limit)]
    has_more = (start + len(page) < stop) if query.before is None else start > 0
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": has_more,
    }


def _listed(item: Any, response_id: str, place: int) -> dict[str, Any]:
    """An item as the API lists it: a message with content parts, and an id."""
    if not isinstance(item, dict):  # stored entries hold objects; anything else is listed as it is, with an id
        return {"id": _derived_id("item", response_id, place), "type": "unknown", "value": item}
    listed = dict(item)
    kind = listed.get("type")
    if kind is None and "role" in listed:
        kind = listed["type"] = "message"
    if kind == "message":
        content = listed.get("content")
        if isinstance(content, str):
            part = "output_text" if listed.get("role") == "assistant" else "input_text"
            listed["content"] = [{"type": part, "text": content}]
        listed.setdefault("status", "completed")
    if not isinstance(listed.get("id"), str) or not listed["id"]:
        listed["id"] = _derived_id("msg" if kind == "message" else "item", response_id, place)
    return listed


def _derived_id(prefix: str, response_id: str, place: int) -> str:
    digest = hashlib.blake2b(f"{response_id}:{place}".encode(), digest_size=16).hexdigest()
    return f"{prefix}_{digest}"
