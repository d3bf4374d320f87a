"""Gemini-format clients (`POST /v1beta/models/{model}:generateContent` / `:streamGenerateContent`) in front of
any vendor: to a Gemini LLM the body goes as is; to the others it becomes Chat Completions (`gemini_request`,
which checks every field it reads or drops as Google would), which the LLM's own provider builds (Anthropic's
then makes Messages of it), and the chat answer or chunk stream becomes Gemini's:

    chat finish stop / length / tool_calls / content_filter -> finishReason STOP / MAX_TOKENS / STOP / SAFETY
    usage                                  -> usageMetadata (reasoning tokens as thoughtsTokenCount)

`reasoning_content` in a chat answer comes back as a `thought: true` part.

`:embedContent` / `:batchEmbedContents` go the same way, to OpenAI's embeddings instead of chat (`gemini_embed`).
"""

from __future__ import annotations

import uuid

import orjson

from ..errors import GatewayError, UpstreamError
from ..upstream import UpstreamRequest
from .base import OpenAIRequest, Provider, StreamTranslator, UpstreamSpec, Usage
from .gemini_answers import ChatToGeminiStream, chat_to_gemini_response
from .gemini_embed import EMBED_KINDS, embeddings_to_gemini, gemini_to_embeddings
from .gemini_request import gemini_to_chat_request
from .gemini_stream import ChainedStream
from .vendor_ranges import VENDOR_RANGES

__all__ = ["GeminiInbound", "gemini_to_chat_request"]


class GeminiInbound:
    """The `Provider` seam for one Gemini-format request on one LLM: pass-through to a Gemini LLM, else via chat."""

    def __init__(self, inner: Provider) -> None:
        self.vendor = inner.vendor
        self.inner = inner
        self.passthrough = inner.vendor in ("google", "vertex")  # both take a Gemini body as is
        self.embed_passthrough = inner.vendor == "google"  # Vertex AI embeds through `:predict`: translated
        self._chat: OpenAIRequest | None = None

    def untranslated(self, call: OpenAIRequest) -> str:
        """ "gemini" when the body went to a Gemini LLM as is (Google's error `status` is the client's), else ""."""
        return "gemini" if self._passes(call) else ""

    def _passes(self, call: OpenAIRequest) -> bool:
        return self.embed_passthrough if call.kind in EMBED_KINDS else self.passthrough

    def _chat_call(self, call: OpenAIRequest, model: str) -> OpenAIRequest:
        try:
            if call.kind in EMBED_KINDS:
                return gemini_to_embeddings(call, model)
            chat = gemini_to_chat_request(call.data, model, call.stream, VENDOR_RANGES.get(self.vendor))
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
