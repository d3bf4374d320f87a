"""Gemini-format clients (`POST /v1beta/models/{model}:generateContent` / `:streamGenerateContent`) in front of
any vendor: to a Gemini LLM the body goes as is; to the others it becomes Chat Completions, which the LLM's own
provider builds (Anthropic's then makes Messages of it), and the chat answer or chunk stream becomes Gemini's.

    systemInstruction                      -> a system message
    contents (role user / model / function) -> user / assistant messages; text, inlineData and fileData image
                                              parts -> text / image_url parts (inlineData as a data: URL);
                                              inlineData PDFs -> file parts
    functionCall parts                     -> assistant tool_calls (the part's id, else a made-up one)
    functionResponse parts                 -> tool messages answering the call of that id (else of that name),
                                              before the rest of that user turn
    tools.functionDeclarations, toolConfig -> tools (schema types lower-cased), tool_choice (AUTO auto, ANY
                                              required or the one allowed function, NONE none)
    generationConfig                       -> max_tokens, temperature, top_p, stop, n, seed, penalties,
                                              response_format (responseMimeType application/json + schema)
    chat finish stop / length / tool_calls / content_filter -> finishReason STOP / MAX_TOKENS / STOP / SAFETY
    usage                                  -> usageMetadata (reasoning tokens as thoughtsTokenCount)

`thought` parts the client sends back and `topK` / `thinkingConfig` have no chat counterpart and are dropped;
`reasoning_content` in a chat answer comes back as a `thought: true` part.

`:embedContent` / `:batchEmbedContents` go the same way, to OpenAI's embeddings instead of chat (`gemini_embed`).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from ..errors import GatewayError, UpstreamError
from ..upstream import UpstreamRequest
from .base import OpenAIRequest, Provider, StreamTranslator, UpstreamSpec, Usage
from .documents import file_part
from .gemini_answers import ChatToGeminiStream, chat_to_gemini_response
from .gemini_embed import EMBED_KINDS, embeddings_to_gemini, gemini_to_embeddings
from .gemini_stream import ChainedStream

__all__ = ["GeminiInbound", "gemini_to_chat_request"]

_GENERATION = (
    ("maxOutputTokens", "max_tokens"),
    ("temperature", "temperature"),
    ("topP", "top_p"),
    ("candidateCount", "n"),
    ("seed", "seed"),
    ("presencePenalty", "presence_penalty"),
    ("frequencyPenalty", "frequency_penalty"),
)


def _bad(message: str, param: str = "contents") -> GatewayError:
    return GatewayError.bad_request(message, param=param)


def _get(body: Any, camel: str) -> Any:
    """A field by its JSON name or its proto (snake_case) name: Google accepts both, so the edge does too."""
    if not isinstance(body, dict):
        return None
    if camel in body:
        return body[camel]
    return body.get("".join(f"_{c.lower()}" if c.isupper() else c for c in camel))


def _schema(value: Any) -> Any:
    """Gemini's schema (OpenAPI subset, upper-case types) as JSON schema."""
    if isinstance(value, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _schema(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_schema(v) for v in value]
    return value


def _media_part(data: dict[str, Any], inline: bool) -> dict[str, Any]:
    """An image (inline or by URI) as an `image_url` part, an inline PDF as a `file` part; other media are 400."""
    mime = str(_get(data, "mimeType") or "")
    if inline and mime == "application/pdf":
        return file_part(mime, str(data.get("data", "")))
    if not mime.startswith("image/"):
        raise _bad(f"{'inlineData' if inline else 'fileData'} of type {mime!r} cannot be sent to this model")
    url = f"data:{mime};base64,{data.get('data', '')}" if inline else str(_get(data, "fileUri") or "")
    return {"type": "image_url", "image_url": {"url": url}}


def _result_text(response: Any) -> str:
    if isinstance(response, dict) and len(response) == 1:
        only = next(iter(response.values()))
        if isinstance(only, str):
            return only
    return orjson.dumps(response if response is not None else {}).decode()


class _Turns:
    """Builds the chat messages, remembering tool-call ids so that function responses answer the right call."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.pending: dict[str, list[str]] = {}

    def user(self, parts: list[Any]) -> None:
        tools: list[dict[str, Any]] = []
        content: list[dict[str, Any]] = []
        for part in parts:
            if not isinstance(part, dict):
                raise _bad("each part must be an object")
            result = _get(part, "functionResponse")
            if isinstance(result, dict):
                name = str(result.get("name", ""))
                ids = self.pending.get(name) or []
                call_id = str(result.get("id") or (ids.pop(0) if ids else f"call_{name}"))
                tools.append({"role": "tool", "tool_call_id": call_id, "content": _result_text(result.get("response"))})
            else:
                content += self._content(part)
        self.messages += tools
        if content:
            self.messages.append({"role": "user", "content": content})

    def model(self, parts: list[Any]) -> None:
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in parts:
            if not isinstance(part, dict) or part.get("thought"):
                continue
            call = _get(part, "functionCall")
            if isinstance(call, dict):
                name = str(call.get("name", ""))
                call_id = str(call.get("id") or f"call_{uuid.uuid4().hex[:24]}")
                self.pending.setdefault(name, []).append(call_id)
                arguments = orjson.dumps(call.get("args") or {}).decode()
                calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
            elif isinstance(part.get("text"), str):
                text.append(part["text"])
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
        if calls:
            message["tool_calls"] = calls
        self.messages.append(message)

    @staticmethod
    def _content(part: dict[str, Any]) -> list[dict[str, Any]]:
        if isinstance(part.get("text"), str):
            return [] if part.get("thought") else [{"type": "text", "text": part["text"]}]
        for field, inline in (("inlineData", True), ("fileData", False)):
            data = _get(part, field)
            if isinstance(data, dict):
                return [_media_part(data, inline)]
        raise _bad(f"part with fields {sorted(part)} is not supported for this model")


def _tools(data: dict[str, Any], out: dict[str, Any]) -> None:
    tools = []
    for tool in data.get("tools") or ():
        for declaration in _get(tool, "functionDeclarations") or ():
            schema = declaration.get("parameters") or _get(declaration, "parametersJsonSchema")
            function: dict[str, Any] = {
                "name": str(declaration.get("name", "")),
                "description": str(declaration.get("description", "")),
            }
            function["parameters"] = (
                _schema(schema) if isinstance(schema, dict) else {"type": "object", "properties": {}}
            )
            tools.append({"type": "function", "function": function})
    if not tools:
        return
    out["tools"] = tools
    config = _get(_get(data, "toolConfig"), "functionCallingConfig") or {}
    mode = str(config.get("mode", "AUTO")).upper()
    allowed = _get(config, "allowedFunctionNames") or []
    if mode == "NONE":
        out["tool_choice"] = "none"
    elif mode == "ANY" and isinstance(allowed, list) and len(allowed) == 1:
        out["tool_choice"] = {"type": "function", "function": {"name": str(allowed[0])}}
    elif mode == "ANY":
        out["tool_choice"] = "required"


def _generation(config: Any, out: dict[str, Any]) -> None:
    if not isinstance(config, dict):
        return
    for source, target in _GENERATION:
        value = _get(config, source)
        if value is not None:
            out[target] = value
    stop = _get(config, "stopSequences")
    if stop:
        out["stop"] = list(stop)
    if _get(config, "responseMimeType") == "application/json":
        schema = _get(config, "responseJsonSchema") or _get(config, "responseSchema")
        if isinstance(schema, dict):
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": _schema(schema)},
            }
        else:
            out["response_format"] = {"type": "json_object"}


def gemini_to_chat_request(data: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """A Gemini `generateContent` body as a Chat Completions body."""
    turns = _Turns()
    system = _get(data, "systemInstruction")
    if isinstance(system, str):
        system = {"parts": [{"text": system}]}
    text = "".join(str(p.get("text", "")) for p in _get(system, "parts") or () if isinstance(p, dict))
    if text:
        turns.messages.append({"role": "system", "content": text})
    for content in data.get("contents") or ():
        parts = _get(content, "parts")
        if not isinstance(parts, list):
            raise _bad("each content needs a 'parts' array")
        if content.get("role", "user") == "model":
            turns.model(parts)
        else:
            turns.user(parts)
    out: dict[str, Any] = {"model": model, "messages": turns.messages}
    _tools(data, out)
    _generation(_get(data, "generationConfig"), out)
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


class GeminiInbound:
    """The `Provider` seam for one Gemini-format request on one LLM: pass-through to a Gemini LLM, else via chat."""

    def __init__(self, inner: Provider) -> None:
        self.vendor = inner.vendor
        self.inner = inner
        self.passthrough = inner.vendor in ("google", "vertex")  # both take a Gemini body as is
        self.embed_passthrough = inner.vendor == "google"  # Vertex AI embeds through `:predict`: translated
        self._chat: OpenAIRequest | None = None

    def _passes(self, call: OpenAIRequest) -> bool:
        return self.embed_passthrough if call.kind in EMBED_KINDS else self.passthrough

    def _chat_call(self, call: OpenAIRequest, model: str) -> OpenAIRequest:
        try:
            if call.kind in EMBED_KINDS:
                return gemini_to_embeddings(call, model)
            chat = gemini_to_chat_request(call.data, model, call.stream)
        except GatewayError as err:  # raised while the upstream call is built: the client's 4xx, never retried
            raise UpstreamError(err.status_code, err.message, retryable=False, type=err.type, code=err.code) from None
        return OpenAIRequest.from_data("chat", orjson.dumps(chat), chat)

    def build(self, spec: UpstreamSpec, call: OpenAIRequest, model: str) -> UpstreamRequest:
        if self._passes(call):
            return self.inner.build(spec, call, model)
        self._chat = self._chat_call(call, model)
        return self.inner.build(spec, self._chat, model)

    def parse(self, call: OpenAIRequest, model: str, body: bytes) -> tuple[bytes, Usage]:
        if self._passes(call):
            return self.inner.parse(call, model, body)
        assert self._chat is not None
        chat_body, usage = self.inner.parse(self._chat, model, body)
        if call.kind in EMBED_KINDS:
            return embeddings_to_gemini(call, chat_body), usage
        try:
            chat = orjson.loads(chat_body)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                502, "upstream sent a malformed response", retryable=True, code="upstream_bad_response"
            ) from None
        response_id = str(chat.get("id") or uuid.uuid4().hex)
        return orjson.dumps(chat_to_gemini_response(chat, call.model, usage, response_id)), usage

    def stream_translator(self, call: OpenAIRequest, model: str) -> StreamTranslator:
        if self._passes(call):
            return self.inner.stream_translator(call, model)
        assert self._chat is not None
        return ChainedStream(self.inner.stream_translator(self._chat, model), ChatToGeminiStream(call.model))

    def error_message(self, body: bytes) -> str:
        return self.inner.error_message(body)

    def native_request(
        self, spec: UpstreamSpec, method: str, path: str, query: str, headers: dict[str, str], body: bytes, stream: bool
    ) -> UpstreamRequest:
        return self.inner.native_request(spec, method, path, query, headers, body, stream)

    def native_usage(self, body: bytes) -> Usage:
        return self.inner.native_usage(body)

    def native_stream_usage(self, event: bytes, usage: Usage) -> None:
        self.inner.native_stream_usage(event, usage)
