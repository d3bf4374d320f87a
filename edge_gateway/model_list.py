"""`GET /v1/models` and `GET /v1/models/{id}`: the models the caller's app may use, in its SDK's shape.

Both SDKs call the same paths; Anthropic's always sends `anthropic-version`, so that header selects Anthropic's
shape (`{"data": [{"type": "model", "id", "display_name", "created_at"}], "has_more", "first_id", "last_id"}`)
over OpenAI's (`{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}`). A model not
served to the app is 404 `model_not_found` (Anthropic: `not_found_error`); one an allow-list regex serves is
retrievable by its name although the list cannot enumerate it.

The list pages as each vendor's does, so an SDK's pager (or a hand-written `after_id` loop) ends: Anthropic's
`limit` (1..1000, default 20) with `after_id` / `before_id` cursors and `has_more`; Gemini's `pageSize` (default
50, at most 1000) with an opaque `pageToken` / `nextPageToken`. OpenAI's list has no pages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import orjson

from .config_store import CompiledLLM
from .errors import GatewayError
from .exchange import Exchange

__all__ = ["models_body"]


def _openai(name: str, llm: CompiledLLM, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": llm.slug}


def _anthropic(name: str, created_at: str) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": name, "created_at": created_at}


def _gemini(name: str) -> dict[str, Any]:
    methods = ["generateContent", "streamGenerateContent", "countTokens"]
    return {"name": f"models/{name}", "version": "001", "displayName": name, "supportedGenerationMethods": methods}


def _routable(ex: Exchange, model_id: str) -> list[tuple[str, CompiledLLM]]:
    """A model the list cannot name (an allow-list regex serves it) but a request could use; else 404."""
    assert ex.app is not None
    try:
        llm, _ = ex.cfg.route(model_id, ex.app)
    except GatewayError:
        llm = None
    if llm is None or "/" in model_id or model_id in ex.cfg.llms_by_slug:
        raise GatewayError.not_found(f"the model {model_id!r} does not exist or is not served here", param="model")
    return [(model_id, llm)]


def _query(raw: bytes) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(raw.decode("latin-1")).items()}


def _bounded(value: str | None, default: int, name: str) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise GatewayError.bad_request(f"{name}: Input should be a valid integer", param=name) from None


def _anthropic_page(served: list[tuple[str, Any]], query: dict[str, str]) -> tuple[list[tuple[str, Any]], bool]:
    """The page Anthropic answers: `limit` models after `after_id`, or just before `before_id` (an id not on the
    list is an empty last page), and whether more lie beyond it in that direction."""
    limit = _bounded(query.get("limit"), 20, "limit")
    if not 1 <= limit <= 1000:
        raise GatewayError.bad_request("limit: Input should be between 1 and 1000", param="limit")
    names = [name for name, _ in served]
    if "after_id" in query:
        start = names.index(query["after_id"]) + 1 if query["after_id"] in names else len(names)
        return served[start : start + limit], start + limit < len(served)
    if "before_id" in query:
        end = names.index(query["before_id"]) if query["before_id"] in names else 0
        return served[max(0, end - limit) : end], end - limit > 0
    return served[:limit], limit < len(served)


def _anthropic_body(kind: str, served: list[tuple[str, Any]], created: int, query: dict[str, str]) -> bytes:
    """Anthropic's shape: one model, or a page of them (`first_id` / `last_id`, `has_more`)."""
    created_at = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "model":
        return orjson.dumps(_anthropic(served[0][0], created_at))
    page, more = _anthropic_page(served, query)
    data = [_anthropic(name, created_at) for name, _ in page]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return orjson.dumps({"data": data, "has_more": more, "first_id": first, "last_id": last})


def _gemini_body(served: list[tuple[str, Any]], query: dict[str, str]) -> bytes:
    """Gemini's page: `pageSize` models (default 50, at most 1000) from the offset `pageToken` names, with a
    `nextPageToken` while more remain."""
    size = _bounded(query.get("pageSize"), 50, "pageSize")
    if size < 0:
        raise GatewayError.bad_request("pageSize: must not be negative", param="pageSize")
    size = min(size, 1000) or 50
    token = query.get("pageToken") or "0"
    # An offset this list wrote: ASCII digits only ('²' is a digit to str.isdigit, not to int) and short (int()
    # refuses 4,300 digits and more with a ValueError).
    if not (token.isascii() and token.isdigit() and len(token) <= 9):
        raise GatewayError.bad_request("pageToken: invalid page token", param="pageToken")
    start = int(token)
    body: dict[str, Any] = {"models": [_gemini(name) for name, _ in served[start : start + size]]}
    if start + size < len(served):
        body["nextPageToken"] = str(start + size)
    return orjson.dumps(body)


def models_body(ex: Exchange, model_id: str = "", query_string: bytes = b"") -> bytes:
    """The list (no `model_id`) or one model (`model_id`) as the caller's app sees it; 404 for another id."""
    assert ex.app is not None
    created = int(ex.cfg.snapshot.generated_at)
    served = ex.cfg.models_for(ex.app)
    if ex.kind == "model":
        served = [(name, llm) for name, llm in served if name == model_id] or _routable(ex, model_id)
    if ex.dialect == "gemini":
        if ex.kind == "model":
            return orjson.dumps(_gemini(served[0][0]))
        return _gemini_body(served, _query(query_string))
    if ex.dialect == "anthropic":
        return _anthropic_body(ex.kind, served, created, _query(query_string))
    items = [_openai(name, llm, created) for name, llm in served]
    if ex.kind == "model":
        return orjson.dumps(items[0])
    return orjson.dumps({"object": "list", "data": items})
