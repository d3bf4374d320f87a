"""Google Gemini API (AI Studio key) behind the edge: `POST {base}/v1beta/models/{model}:generateContent` and
`:streamGenerateContent?alt=sse`, `:batchEmbedContents` for embeddings, the key in `x-goog-api-key`.

Chat and legacy completions are translated both ways by `gemini_format` (pure functions, shared with Vertex
AI); a Gemini-format client (`gemini_inbound`, kinds `gemini` / `gemini_stream` / `gemini_count`, and `gemini_embed`) is passed
through as is, only the routed model written into the URL. Embeddings: `input` as a string or a list of strings
(token arrays are a 400: Gemini embeds text), `dimensions` -> `outputDimensionality`.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from ..errors import GatewayError, UpstreamError
from ..upstream import UpstreamRequest
from .base import OpenAIRequest, UpstreamSpec, Usage, estimate_tokens, json_reply_usage, native_request
from .gemini_embed import EMBED_KINDS, EMBED_METHODS, embed_passthrough_body, embed_texts
from .gemini_format import chat_to_gemini, gemini_to_chat, read_usage
from .gemini_stream import ChainedStream, GeminiToChatStream
from .messages_reply import ChatToMessagesStream, chat_to_message
from .messages_request import messages_to_chat
from .openai import vendor_error_message
from .sse import event_json
from .stream_errors import gemini_stream_error
from .vendor_ranges import VENDOR_RANGES

__all__ = ["GEMINI_KINDS", "GeminiEvents", "GeminiProvider", "gemini_url"]

GEMINI_KINDS = frozenset({"gemini", "gemini_stream", "gemini_count", *EMBED_KINDS})
"""Request kinds of Gemini-format callers (`POST /v1beta/models/{model}:{method}` at the edge)."""
DEFAULT_BASE = "https://generativelanguage.googleapis.com"
_METHOD = {"gemini": "generateContent", "gemini_stream": "streamGenerateContent", "gemini_count": "countTokens"}


def _refused(message: str, code: str = "invalid_request") -> UpstreamError:
    """A request this vendor cannot take: the client's 400 (not retried, no fallback). An `UpstreamError`, not a
    `GatewayError`, because it is raised while the upstream call is built, where only those are answered."""
    return UpstreamError(400, message, retryable=False, type="invalid_request_error", code=code)


def _malformed() -> UpstreamError:
    return UpstreamError(502, "upstream sent a malformed response", retryable=True, code="upstream_bad_response")


def gemini_url(api_base: str, model: str, method: str, stream: bool = False) -> str:
    """`{base}/v1beta/models/{model}:{method}` (a base already ending in a version keeps it); `?alt=sse` to stream."""
    base, _, query = (api_base or DEFAULT_BASE).partition("?")
    base = base.rstrip("/")
    if not base.endswith(("/v1beta", "/v1", "/v1alpha")):
        base = f"{base}/v1beta"
    name = model[len("models/") :] if model.startswith("models/") else model
    url = f"{base}/models/{name}:{method}"
    params = [p for p in (query, "alt=sse" if stream else "") if p]
    return f"{url}?{'&'.join(params)}" if params else url


class GeminiEvents:
    """A Gemini stream relayed as is to a Gemini-format client, usage read on the way; a chunk with a
    finishReason ends it (Gemini has no end marker). Google's in-band error document goes to the client as is;
    the stream then ends as failed without an error chunk of the edge's (`stream_errors`)."""

    def __init__(self) -> None:
        self.usage = Usage(choices=1)
        self._done = False
        self._failure: UpstreamError | None = None

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: bytes) -> list[bytes]:
        GeminiProvider.read_stream_usage(event, self.usage)
        if b'"error"' in event:
            self._read_error(event)
        if b"finishReason" in event or b"blockReason" in event:
            self._done = True
        if b'"functionCall"' in event:
            self.usage.tool_calls += event.count(b'"functionCall"')
        return [event]

    def _read_error(self, event: bytes) -> None:
        payload = event_json(event)
        if isinstance(payload, dict) and "error" in payload:
            self._failure = gemini_stream_error(payload, relayed=True)

    def finish(self) -> list[bytes]:
        if self._failure is not None and not self._done:
            raise self._failure
        return []


class GeminiProvider:
    vendor = "google"

    def _headers(self, spec: UpstreamSpec) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if spec.api_key:
            headers["x-goog-api-key"] = spec.api_key
        if spec.extra_headers:
            headers.update(spec.extra_headers)
        return headers

    def _post(self, spec: UpstreamSpec, url: str, body: bytes, stream: bool) -> UpstreamRequest:
        return UpstreamRequest(
            "POST",
            url,
            self._headers(spec),
            body,
            stream,
            spec.connect_timeout_s,
            spec.first_byte_timeout_s,
            spec.idle_stream_timeout_s,
            spec.max_response_bytes,
        )

    def _url(self, spec: UpstreamSpec, model: str, method: str, stream: bool = False) -> str:
        """Where a model's method lives (Vertex AI's provider puts it under its project and region)."""
        return gemini_url(spec.api_base, model, method, stream)

    def build(self, spec: UpstreamSpec, call: OpenAIRequest, model: str) -> UpstreamRequest:
        try:
            return self._build(spec, call, model)
        except GatewayError as err:  # a body the translation refuses: the client's 400, as `_refused`
            raise _refused(err.message, err.code or "invalid_request") from None

    def _build(self, spec: UpstreamSpec, call: OpenAIRequest, model: str) -> UpstreamRequest:
        if call.kind in EMBED_KINDS:  # a Gemini-format embed call, the routed model written into its requests
            url = self._url(spec, model, EMBED_METHODS[call.kind])
            return self._post(spec, url, embed_passthrough_body(call, model), False)
        if call.kind in GEMINI_KINDS:
            return self._post(spec, self._url(spec, model, _METHOD[call.kind], call.stream), call.raw, call.stream)
        if call.kind == "embeddings":
            return self._post(spec, self._url(spec, model, "batchEmbedContents"), _embed_body(call, model), False)
        if call.kind == "messages":  # an Anthropic Messages client: Messages -> chat -> Gemini
            return self._build(spec, _chat_of_messages(call, model), model)
        if call.kind not in ("chat", "completions"):
            raise _refused(f"LLM {spec.slug!r} (Gemini) does not offer {call.kind!r}", "unsupported_operation")
        data = call.data
        if call.kind == "completions":
            prompt = data.get("prompt")
            if isinstance(prompt, list):
                prompt = "".join(str(p) for p in prompt)
            data = {**data, "messages": [{"role": "user", "content": str(prompt or "")}]}
        body = orjson.dumps(chat_to_gemini(data))
        method = "streamGenerateContent" if call.stream else "generateContent"
        return self._post(spec, self._url(spec, model, method, call.stream), body, call.stream)

    def parse(self, call: OpenAIRequest, model: str, body: bytes) -> tuple[bytes, Usage]:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _malformed() from None
        if not isinstance(payload, dict):
            raise _malformed()
        usage = Usage()
        if call.kind in EMBED_KINDS:  # Gemini reports no usage for embeddings: estimated, as for `embeddings`
            usage.prompt_tokens = estimate_tokens(embed_texts(call.kind, call.data))
            usage.choices = call.choices
            return body, usage
        if call.kind in GEMINI_KINDS:
            read_usage(payload.get("usageMetadata"), usage)
            usage.choices = len(payload.get("candidates") or ())
            usage.tool_calls = body.count(b'"functionCall"')
            return body, usage
        if call.kind == "embeddings":
            return _embeddings_response(call, model, payload, usage), usage
        if call.kind == "messages":
            chat_body, usage = self.parse(_chat_of_messages(call, model), model, body)
            return orjson.dumps(chat_to_message(orjson.loads(chat_body), call.model, usage)), usage
        response = gemini_to_chat(payload, model, usage)
        if not usage.reported:
            usage.prompt_tokens = estimate_tokens(call.data.get("messages") or call.data.get("prompt") or "")
        if call.kind == "completions":
            choices = [
                {
                    "index": c["index"],
                    "text": c["message"]["content"] or "",
                    "logprobs": None,
                    "finish_reason": c["finish_reason"],
                }
                for c in response["choices"]
            ]
            response = {**response, "object": "text_completion", "choices": choices}
        return orjson.dumps(response), usage

    def stream_translator(self, call: OpenAIRequest, model: str) -> GeminiToChatStream | GeminiEvents | ChainedStream:
        if call.kind in GEMINI_KINDS:
            return GeminiEvents()
        if call.kind == "messages":
            chat = GeminiToChatStream(_chat_of_messages(call, model), model)
            return ChainedStream(chat, ChatToMessagesStream(call, call.model))
        return GeminiToChatStream(call, model)

    def error_message(self, body: bytes) -> str:
        return vendor_error_message(body)

    def native_request(
        self, spec: UpstreamSpec, method: str, path: str, query: str, headers: dict[str, str], body: bytes, stream: bool
    ) -> UpstreamRequest:
        # The client's `?key=` never goes upstream: the LLM's key travels in x-goog-api-key.
        query = "&".join(p for p in query.split("&") if p and not p.startswith("key="))
        return native_request(spec, (method, path, query, body, stream), headers, self._headers(spec), ())

    def native_usage(self, body: bytes) -> Usage:
        return json_reply_usage(body, "usageMetadata", read_usage)

    def native_stream_usage(self, event: bytes, usage: Usage) -> None:
        self.read_stream_usage(event, usage)

    @staticmethod
    def read_stream_usage(event: bytes, usage: Usage) -> None:
        """Usage from one Gemini SSE chunk (each chunk's usageMetadata is cumulative; the last one wins)."""
        if b"usageMetadata" not in event:
            return
        payload = event_json(event)
        if isinstance(payload, dict):
            read_usage(payload.get("usageMetadata"), usage)


def _chat_of_messages(call: OpenAIRequest, model: str) -> OpenAIRequest:
    chat = messages_to_chat(call.data, model, call.stream, VENDOR_RANGES["google"])
    return OpenAIRequest.from_data("chat", b"", chat)


def _embed_texts(call: OpenAIRequest) -> list[str]:
    value = call.data.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise _refused("Gemini embeds text: 'input' must be a string or a non-empty array of strings")


def _embed_body(call: OpenAIRequest, model: str) -> bytes:
    name = model if model.startswith("models/") else f"models/{model}"
    dimensions = call.data.get("dimensions")
    requests: list[dict[str, Any]] = []
    for text in _embed_texts(call):
        request: dict[str, Any] = {"model": name, "content": {"parts": [{"text": text}]}}
        if isinstance(dimensions, int):
            request["outputDimensionality"] = dimensions
        requests.append(request)
    return orjson.dumps({"requests": requests})


def _embeddings_response(call: OpenAIRequest, model: str, payload: dict[str, Any], usage: Usage) -> bytes:
    """OpenAI's embeddings list from `batchEmbedContents`' answer: one vector per input, or the vendor's 502.

    Why the count check: an answer without `embeddings` (or with fewer) used to be a 200 with `data: []`, so the
    client's inputs silently had no vectors; a `values` that is not a list is refused too (a string was read
    character by character)."""
    as_base64 = call.data.get("encoding_format") == "base64"
    texts = _embed_texts(call)
    embeddings = payload.get("embeddings")
    if type(embeddings) is not list or len(embeddings) != len(texts):
        raise UpstreamError(
            502,
            f"upstream answered {len(embeddings) if type(embeddings) is list else 'no'} embeddings for {len(texts)} inputs",
            retryable=True,
            code="upstream_bad_response",
        )
    data = []
    for index, item in enumerate(embeddings):
        raw = item.get("values")
        if type(raw) is not list:
            raise _malformed()
        values = [float(v) for v in raw]
        vector: Any = values
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    usage.prompt_tokens = estimate_tokens(texts)
    usage.choices = len(data)
    usage.reported = False
    tokens = usage.prompt_tokens
    body: dict[str, Any] = {"object": "list", "data": data, "model": model}
    body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps(body)
