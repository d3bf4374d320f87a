"""`GET /v1/models` and `GET /v1/models/{id}`: the models the caller's app may use, in its SDK's shape.

Both SDKs call the same paths; Anthropic's always sends `anthropic-version`, so that header selects Anthropic's
shape (`{"data": [{"type": "model", "id", "display_name", "created_at"}], "has_more", "first_id", "last_id"}`)
over OpenAI's (`{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}`). A model not
served to the app is 404 `model_not_found` (Anthropic: `not_found_error`); one an allow-list regex serves is
retrievable by its name although the list cannot enumerate it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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


def _anthropic_body(kind: str, served: list[tuple[str, Any]], created: int) -> bytes:
    """Anthropic's shape: one model, or a page of them (`first_id` / `last_id`, never more pages)."""
    created_at = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = [_anthropic(name, created_at) for name, _ in served]
    if kind == "model":
        return orjson.dumps(data[0])
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return orjson.dumps({"data": data, "has_more": False, "first_id": first, "last_id": last})


def models_body(ex: Exchange, model_id: str = "") -> bytes:
    """The list (no `model_id`) or one model (`model_id`) as the caller's app sees it; 404 for another id."""
    assert ex.app is not None
    created = int(ex.cfg.snapshot.generated_at)
    served = ex.cfg.models_for(ex.app)
    if ex.kind == "model":
        served = [(name, llm) for name, llm in served if name == model_id] or _routable(ex, model_id)
    if ex.dialect == "gemini":
        models = [_gemini(name) for name, _ in served]
        return orjson.dumps(models[0] if ex.kind == "model" else {"models": models})
    if ex.dialect == "anthropic":
        return _anthropic_body(ex.kind, served, created)
    items = [_openai(name, llm, created) for name, llm in served]
    if ex.kind == "model":
        return orjson.dumps(items[0])
    return orjson.dumps({"object": "list", "data": items})
