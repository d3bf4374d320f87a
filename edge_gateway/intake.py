"""Intake: the client's request read, decoded and shown to hooks; what hooks hand back, taken in.

read body (413; a `content-encoding` decoded, the limit on the decoded size: 415, 400, 413) -> decode (400)
-> the `EnrichedRequest` hooks see (auth headers redacted)
-> a rewritten body decoded again (must stay valid) -> headers hooks added, forwarded upstream
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson

from shared_sdk import EnrichedRequest
from shared_sdk.json_depth import MAX_JSON_DEPTH, json_depth_exceeds
from shared_sdk.snapshot import CredentialConfig

from .errors import GEMINI_KINDS, GatewayError
from .exchange import Exchange
from .providers import OpenAIRequest
from .providers.field_errors import openai_invalid_type
from .providers.gemini_embed import EMBED_KINDS, embed_call
from .upstream_decoding import DECODABLE, ContentDecoder

__all__ = [
    "Caller",
    "adopt",
    "decode_call",
    "enriched_request",
    "gemini_call",
    "gemini_key",
    "injected_headers",
    "read_body",
    "request_decoder",
]

Receive = Callable[[], Awaitable[dict[str, Any]]]

_REDACTED_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key"})
_NOT_FORWARDED = frozenset(
    {
        "authorization",
        "x-api-key",
        "x-goog-api-key",
        "api-key",
        "host",
        "content-length",
        "content-type",
        "connection",
        "transfer-encoding",
        "accept-encoding",
        "keep-alive",
        "te",
        "upgrade",
        "cookie",
    }
)
_REQUIRED_FIELD = {"completions": "prompt", "embeddings": "input", "responses": "input"}


@dataclass(slots=True)
class Caller:
    """The request as it arrived (headers, credential), kept so that every attempt starts from it."""

    scope: dict[str, Any]
    headers: dict[str, str]
    credential: str
    auth_type: str
    found: CredentialConfig | None
    call: OpenAIRequest
    """The body as the client sent it: a fallback's chain sees this, not the primary's rewrite."""
    native_path: str = ""


async def read_body(receive: Receive, limit: int, declared: str | None, encoding: str | None = None) -> bytes:
    """The whole request body; 413 past `limit` (declared or counted), 400 if the client left while sending.

    With a `content-encoding` (`encoding`), the body decoded, `limit` bounding both the bytes received and the
    decoded bytes (a gzip bomb is a 413 after at most `limit` decoded bytes plus one piece of 1 MiB); corrupt
    data is a 400 and an encoding the edge cannot decode a 415 (`request_decoder`)."""
    decoder = request_decoder(encoding, limit) if encoding is not None else None
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise GatewayError.body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError.bad_request("client disconnected while sending the body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise GatewayError.body_too_large(limit)
            if decoder is None:
                chunks.append(chunk)
            else:
                chunks.extend(decoder.feed(chunk))
        if not message.get("more_body", False):
            break
    if decoder is not None:
        decoder.finish()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def request_decoder(encoding: str, limit: int) -> ContentDecoder | None:
    """The decoder of a request's `content-encoding` (None for identity): gzip and deflate, with the vendor
    replies' decoder (`upstream_decoding`), raising the edge's 413 and 400; any other coding is a 415 (what the
    edge cannot read must not be read as JSON)."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name not in DECODABLE:
        raise GatewayError(
            415,
            f"unsupported content-encoding {name[:40]!r}: send the body as gzip, deflate or identity",
            type="invalid_request_error",
            code="unsupported_content_encoding",
        )
    return ContentDecoder(name, limit, GatewayError.body_too_large, _corrupt_body)


def _corrupt_body(what: str) -> GatewayError:
    return GatewayError.bad_request(f"request body is not valid {what[:200]}", code="invalid_encoding")


def decode_call(kind: str, body: bytes, model: str = "") -> OpenAIRequest:
    """The client's JSON body as an `OpenAIRequest`; 400 with a message that says what is wrong. `model` is the
    one the URL names: a Gemini-format request's (its body has none), or an Azure deployment's, which is written
    into the body's `model` (`_as_deployment`)."""
    if kind == "native":
        try:
            loose = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            loose = {}
        _check_depth(body, loose)
        return OpenAIRequest.from_data(kind, body, loose if isinstance(loose, dict) else {})
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError.bad_request(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise GatewayError.bad_request("request body must be a JSON object", code="invalid_json")
    _check_depth(body, data)
    if kind in EMBED_KINDS:
        return embed_call(kind, body, data, model)
    if kind in GEMINI_KINDS:
        return gemini_call(kind, body, data, model)
    if model:
        body = _as_deployment(body, data, model)
    _check_fields(kind, data)
    call = OpenAIRequest.from_data(kind, body, data)
    if call.max_tokens is None:  # none given, or one that is not a positive integer
        for field in _OUTPUT_LIMITS:
            _check_output_limit(field, data.get(field))
    return call


def _as_deployment(body: bytes, data: dict[str, Any], deployment: str) -> bytes:
    """The body of a call to an Azure deployment (`azure_routes`): its `model` is the deployment, as at Azure,
    where the deployment in the URL is the model whatever the body says (the `AzureOpenAI` client sends the same
    name in both, or none in the body). Hooks, routing, the vendor and accounting then all see that one name;
    a hook may still rewrite it (`adopt` decodes a rewritten body without the URL's name)."""
    if data.get("model") == deployment:
        return body
    data["model"] = deployment
    return orjson.dumps(data)


def _check_depth(body: bytes, data: Any) -> None:
    """400 when `data` nests deeper than MAX_JSON_DEPTH (`shared_sdk.json_depth` says why). A body with no more
    opening brackets than that cannot: they are counted with `find` (memchr) and the count stops past the limit,
    ~0.5 us for the usual body with a handful, whatever its length (`bytes.count` reads every byte: 11 us for
    18 KB). Past it (long conversations, hostile bodies) the parsed containers are walked. Each level takes two
    bytes: a shorter body is not searched."""
    if len(body) <= 2 * MAX_JSON_DEPTH:
        return
    found = 0
    for mark in b"{[":
        at = body.find(mark)
        while at >= 0:
            found += 1
            if found > MAX_JSON_DEPTH:
                if json_depth_exceeds(data, MAX_JSON_DEPTH):
                    raise GatewayError.bad_request(
                        f"request body nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects",
                        code="invalid_json",
                    )
                return
            at = body.find(mark, at + 1)


def _check_fields(kind: str, data: dict[str, Any]) -> None:
    """400 naming the field when a required one is missing or of the wrong type."""
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError.bad_request("'model' is required and must be a string", param="model", code="missing_model")
    if kind in ("chat", "messages", "count_tokens"):
        _check_messages(kind, data)
    elif kind in _REQUIRED_FIELD and _REQUIRED_FIELD[kind] not in data:
        field = _REQUIRED_FIELD[kind]
        raise GatewayError.bad_request(f"'{field}' is required", param=field)
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise GatewayError.bad_request("'stream' must be a boolean", param="stream")


_OUTPUT_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
"""The fields that bound a reply's tokens (Chat Completions, legacy Completions, Responses). Budgets and tpm leases
reserve by them before the call: a negative one would reserve less than nothing, room that other requests of the
same app could spend until this one settled. Checked here, as OpenAI does, whatever the vendor behind."""


def _check_output_limit(field: str, value: object) -> None:
    """400 in OpenAI's words (and `code`) unless `value` is null or an integer >= 1."""
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise openai_invalid_type(field, "an integer", value)
    if value < 1:
        raise GatewayError.bad_request(
            f"Invalid '{field}': integer below minimum value. Expected a value >= 1, but got {value} instead.",
            param=field,
            code="integer_below_min_value",
        )


def gemini_call(kind: str, body: bytes, data: dict[str, Any], model: str) -> OpenAIRequest:
    """A Gemini-format body (model from the URL, streaming from the method); 400 without `contents`."""
    if not model:
        raise GatewayError.bad_request("the URL names no model", param="model", code="missing_model")
    inner = data.get("generateContentRequest") if kind == "gemini_count" else None
    contents = (inner if isinstance(inner, dict) else data).get("contents")
    if not isinstance(contents, list) or not contents:
        raise GatewayError.bad_request("* GenerateContentRequest.contents: contents is not specified", param="contents")
    config = data.get("generationConfig") or data.get("generation_config")
    limit = config.get("maxOutputTokens", config.get("max_output_tokens")) if isinstance(config, dict) else None
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        # Google answers INVALID_ARGUMENT; a negative bound would reserve less than nothing (`_OUTPUT_LIMITS`)
        raise GatewayError.bad_request(
            "* GenerateContentRequest.generation_config.max_output_tokens: must be a positive integer",
            param="generationConfig.maxOutputTokens",
        )
    count = config.get("candidateCount", config.get("candidate_count")) if isinstance(config, dict) else None
    choices = count if isinstance(count, int) and not isinstance(count, bool) and count > 1 else 1
    return OpenAIRequest(kind, body, data, model, kind == "gemini_stream", False, limit, choices)


def gemini_key(scope: dict[str, Any], headers: dict[str, str]) -> str | None:
    """The key of a Gemini-format caller: `x-goog-api-key`, else the `?key=` query parameter."""
    if "x-goog-api-key" in headers:
        return headers["x-goog-api-key"]
    query = scope.get("query_string", b"")
    if b"key=" not in query:
        return None
    for pair in query.decode("latin-1").split("&"):
        name, _, value = pair.partition("=")
        if name == "key":
            return unquote(value)
    return None


def _redacted_query(scope: dict[str, Any]) -> str:
    """The query string as hooks see it: a `key=` parameter (a Gemini caller's credential) redacted."""
    query: str = scope.get("query_string", b"").decode("latin-1")
    if "key=" not in query:
        return query
    pairs = [("key=[redacted]" if p.startswith("key=") else p) for p in query.split("&")]
    return "&".join(pairs)


def _check_messages(kind: str, data: dict[str, Any]) -> None:
    """A non-empty `messages`; for Anthropic Messages also a positive integer `max_tokens` (Anthropic requires it),
    in Anthropic's words (`max_tokens: Field required`) for its callers."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise GatewayError.bad_request(_messages_misfit(kind, messages), param="messages")
    if kind == "messages":
        max_tokens = data.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= MAX_OUTPUT_BOUND:
            raise GatewayError.bad_request(f"max_tokens: {_max_tokens_misfit(max_tokens)}", param="max_tokens")


MAX_OUTPUT_BOUND = 2**31 - 1
"""The largest `max_tokens` a Messages call may ask for: no model's output comes near, and vendors read the field
as a 32-bit integer (Gemini's `maxOutputTokens` is an int32); past it, a client of a non-Anthropic LLM got a 200
and budgets reserved for a reply of a trillion tokens. Per-model limits are the vendor's (Anthropic's own 400)."""


def _messages_misfit(kind: str, value: object) -> str:
    if kind == "chat":
        return "'messages' must be a non-empty array"
    if value is None:
        return "messages: Field required"
    return "messages: " + (
        "Input should be a valid list" if not isinstance(value, list) else "at least one message is required"
    )


def _max_tokens_misfit(value: object) -> str:
    if value is None:
        return "Field required"
    if not isinstance(value, int) or isinstance(value, bool):
        return "Input should be a valid integer"
    if value < 1:
        return "Input should be greater than or equal to 1"
    return f"Input should be less than or equal to {MAX_OUTPUT_BOUND}"


def enriched_request(ex: Exchange, caller: Caller, call: OpenAIRequest) -> EnrichedRequest:
    """The request as hooks see it: the client's headers with credentials redacted, the current body."""
    scope = caller.scope
    visible = {k: ("[redacted]" if k in _REDACTED_HEADERS else v) for k, v in caller.headers.items()}
    client = scope.get("client")
    return EnrichedRequest(
        method=ex.method,
        path=ex.path,
        headers=visible,
        body=call.raw,
        remote_addr=client[0] if client else "",
        query_string=_redacted_query(scope),
        context=ex.ctx.info(),
        request_id=ex.request_id,
        stream=call.stream,
        model=call.model,
    )


def adopt(ex: Exchange, call: OpenAIRequest, before: EnrichedRequest, after: EnrichedRequest) -> OpenAIRequest:
    """The call after a hook phase: a rewritten body is decoded again (400 if it is no longer valid)."""
    if after.body is before.body or after.body == call.raw:
        return call
    named = ex.call.model if ex.call is not None and ex.kind in GEMINI_KINDS else ""  # a body without `model`
    call = decode_call(ex.kind, after.body, named)
    if ex.kind != "native" and ex.call is not None and call.model != ex.call.model:
        ex.model = call.model
    ex.call = call
    return call


def injected_headers(original: dict[str, str], req: EnrichedRequest) -> dict[str, str]:
    """Headers a request hook added or changed: forwarded upstream (never auth or hop-by-hop headers)."""
    out = {}
    for key, value in req.headers.items():
        lowered = key.lower()
        if lowered in _NOT_FORWARDED or original.get(lowered) == value:
            continue
        out[lowered] = value
    return out
