"""Gemini-format embeddings (`POST /v1beta/models/{model}:embedContent` / `:batchEmbedContents`, what the
`google-genai` SDK's `embed_content` calls) in front of any vendor that embeds.

To a Google AI Studio LLM the body goes as is (`taskType` / `title` kept), only the routed model written into it;
to the others it becomes OpenAI's `/v1/embeddings` (the LLM's own provider builds that), and the answer becomes
Gemini's:

    requests[].content.parts[].text / content.parts[].text -> input (one string per request, its parts joined)
    outputDimensionality                                   -> dimensions (one value for the whole batch)
    data[].embedding                                       -> embeddings[].values / embedding.values

`taskType` and `title` have no OpenAI counterpart and are dropped there. Google caps a batch at 100 requests;
the edge refuses more (and a request without text) before any upstream call, in Google's error shape.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import GatewayError, UpstreamError
from .base import OpenAIRequest

__all__ = [
    "EMBED_KINDS",
    "MAX_BATCH",
    "embed_call",
    "embed_passthrough_body",
    "embed_texts",
    "embeddings_to_gemini",
    "gemini_to_embeddings",
]

EMBED_KINDS = frozenset({"gemini_embed", "gemini_batch_embed"})
"""`:embedContent` and `:batchEmbedContents` callers."""
EMBED_METHODS = {"gemini_embed": "embedContent", "gemini_batch_embed": "batchEmbedContents"}
MAX_BATCH = 100
"""Google's limit on the requests of one `batchEmbedContents` call (more is its INVALID_ARGUMENT)."""


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError.bad_request(message, param=param)


def _field(body: dict[str, Any], camel: str, snake: str) -> Any:
    """A field by its JSON name or its proto name: Google accepts both."""
    return body[camel] if camel in body else body.get(snake)


def _requests(kind: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The embed requests of a body (one for `embedContent`); 400 when there are none, too many, or misshapen."""
    if kind == "gemini_embed":
        return [data]
    requests = data.get("requests")
    if not isinstance(requests, list) or not requests:
        raise _bad("* BatchEmbedContentsRequest.requests: requests is not specified", "requests")
    if len(requests) > MAX_BATCH:
        raise _bad(
            f"* BatchEmbedContentsRequest.requests: at most {MAX_BATCH} requests can be in one batch", "requests"
        )
    if not all(isinstance(r, dict) for r in requests):
        raise _bad("* BatchEmbedContentsRequest.requests: each request must be an object", "requests")
    return requests


def _text(request: dict[str, Any], where: str) -> str:
    """The text of one request's `content` (its text parts joined); 400 when it has none or is misshapen."""
    content = request.get("content")
    if content is None:
        raise _bad(f"* {where}.content: content is not specified", "content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise _bad(f"* {where}.content.parts: must be an array of part objects", "content")
    if any("text" in p and not isinstance(p["text"], str) for p in parts):
        raise _bad(f"* {where}.content.parts[].text: must be a string", "content")
    text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str))
    if not text:
        raise _bad(f"* {where}.content: content has no text to embed", "content")
    return text


def _dimensions(request: dict[str, Any], where: str) -> int | None:
    """The request's `outputDimensionality` (None: the model's own size); 400 unless a positive integer."""
    value = _field(request, "outputDimensionality", "output_dimensionality")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _bad(f"* {where}.output_dimensionality: must be a positive integer", "outputDimensionality")
    return value


def _where(kind: str, index: int) -> str:
    """The request's name in Google's error messages."""
    return "EmbedContentRequest" if kind == "gemini_embed" else f"BatchEmbedContentsRequest.requests[{index}]"


def embed_texts(kind: str, data: dict[str, Any]) -> list[str]:
    """Each request's text, in order (validated as `embed_call` does)."""
    return [_text(request, _where(kind, index)) for index, request in enumerate(_requests(kind, data))]


def embed_call(kind: str, body: bytes, data: dict[str, Any], model: str) -> OpenAIRequest:
    """The decoded Gemini embed body; a 400 for what Google refuses, found before any upstream call."""
    if not model:
        raise GatewayError.bad_request("the URL names no model", param="model", code="missing_model")
    requests = _requests(kind, data)
    for index, request in enumerate(requests):
        _text(request, _where(kind, index))
        _dimensions(request, _where(kind, index))
    return OpenAIRequest(kind, body, data, model, False, False, None, len(requests))


def gemini_to_embeddings(call: OpenAIRequest, model: str) -> OpenAIRequest:
    """The Gemini embed call as an OpenAI `embeddings` call for `model` (`taskType` / `title` dropped)."""
    requests = _requests(call.kind, call.data)
    dimensions = {_dimensions(r, _where(call.kind, i)) for i, r in enumerate(requests)}
    if len(dimensions) > 1:
        raise _bad("this model embeds a batch at one output_dimensionality: give the same to every request", "requests")
    data: dict[str, Any] = {"model": model, "input": embed_texts(call.kind, call.data)}
    size = dimensions.pop()
    if size is not None:
        data["dimensions"] = size
    return OpenAIRequest.from_data("embeddings", orjson.dumps(data), data)


def embeddings_to_gemini(call: OpenAIRequest, body: bytes) -> bytes:
    """An OpenAI embeddings answer (float vectors) in Gemini's shape for `call`; a 502 unless it holds one vector
    per request (a vector answering the wrong text would be worse than no answer)."""
    try:
        payload = orjson.loads(body)
        items = sorted(payload["data"], key=lambda item: int(item.get("index", 0)))
        vectors = [{"values": [float(v) for v in item["embedding"]]} for item in items]
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError):
        vectors = []
    if len(vectors) != call.choices:
        raise UpstreamError(502, "upstream sent a malformed response", retryable=True, code="upstream_bad_response")
    if call.kind == "gemini_embed":
        return orjson.dumps({"embedding": vectors[0]})
    return orjson.dumps({"embeddings": vectors})


def embed_passthrough_body(call: OpenAIRequest, model: str) -> bytes:
    """The client's body for a Gemini LLM, with the routed model as each request's `model` (Google refuses a
    batch whose requests name another model than the URL; `embedContent` needs none)."""
    name = model if model.startswith("models/") else f"models/{model}"
    if call.kind == "gemini_embed":
        return orjson.dumps({**call.data, "model": name}) if "model" in call.data else call.raw
    requests = [{**r, "model": name} for r in _requests(call.kind, call.data)]
    return orjson.dumps({**call.data, "requests": requests})
