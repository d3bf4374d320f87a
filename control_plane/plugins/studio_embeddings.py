"""The wire of the studio's own embedding calls: OpenAI's `/embeddings` (and every OpenAI-compatible vendor) and
Gemini's `batchEmbedContents`.

Datasources embed their documents, and the chat embeds a user's question, through `StudioServicesImpl.embed`,
which accounts the call like any studio LLM call (budgets, analytics); this module only speaks the vendors.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from .studio_upstream import Upstream

__all__ = ["Embedded", "vendor_embed"]

_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


@dataclasses.dataclass(frozen=True, slots=True)
class Embedded:
    """What an embedding call returned: one vector per input, in input order, and the tokens it was billed."""

    status: int
    vectors: list[list[float]]
    prompt_tokens: int
    error_type: str = ""


def _openai(upstream: Upstream, model: str, texts: list[str]) -> tuple[str, dict[str, str], dict[str, Any]]:
    headers = {"content-type": "application/json"}
    if upstream.key:
        headers["authorization"] = f"Bearer {upstream.key}"
    return f"{upstream.base}/embeddings", headers, {"model": model, "input": texts, "encoding_format": "float"}


def _gemini(upstream: Upstream, model: str, texts: list[str]) -> tuple[str, dict[str, str], dict[str, Any]]:
    base = upstream.base.rstrip("/")
    base = base if base.endswith(("/v1beta", "/v1")) else f"{base}/v1beta"
    name = model if model.startswith("models/") else f"models/{model}"
    headers = {"content-type": "application/json", "x-goog-api-key": upstream.key}
    body = {"requests": [{"model": name, "content": {"parts": [{"text": text}]}} for text in texts]}
    return f"{base}/{name}:batchEmbedContents", headers, body


def _openai_vectors(data: dict[str, Any]) -> tuple[list[list[float]], int]:
    items = sorted(data.get("data") or [], key=lambda item: item.get("index", 0))
    usage = data.get("usage") or {}
    return [list(map(float, item["embedding"])) for item in items], int(usage.get("prompt_tokens", 0))


def _gemini_vectors(data: dict[str, Any]) -> tuple[list[list[float]], int]:
    return [list(map(float, item["values"])) for item in data.get("embeddings") or []], 0  # Gemini reports no usage


async def vendor_embed(upstream: Upstream, model: str, texts: list[str]) -> Embedded:
    """Embed `texts` with `model`; a status >= 400 (502 when unreachable or malformed) carries no vectors."""
    gemini = upstream.vendor == "google"
    url, headers, body = (_gemini if gemini else _openai)(upstream, model, texts)
    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
            response = await client.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        return Embedded(502, [], 0, type(exc).__name__)
    if response.status_code >= 400:
        return Embedded(response.status_code, [], 0, "upstream_error")
    try:
        vectors, tokens = (_gemini_vectors if gemini else _openai_vectors)(response.json())
    except (ValueError, KeyError, TypeError):
        return Embedded(502, [], 0, "malformed_response")
    if len(vectors) != len(texts):
        return Embedded(502, [], 0, "malformed_response")
    return Embedded(response.status_code, vectors, tokens)
