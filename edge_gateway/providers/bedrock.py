"""AWS Bedrock Runtime (Converse API) behind the edge's endpoints, SigV4-signed.

Calls: `POST {base}/model/{modelId}/converse`, or `/converse-stream` for streams, where the base is
`https://bedrock-runtime.{region}.amazonaws.com` (the preset, from `metadata.region`) and the model id is
URL-encoded (ids hold `:`, ARNs `/`). Translation lives in `bedrock_format.py` (chat <-> Converse) and
`bedrock_stream.py` (the binary event stream); an Anthropic Messages client goes Messages -> chat -> Converse and
back; `/v1/responses` wraps the chat form like every translated vendor. Embeddings are refused (400): Converse has
none (Titan/Cohere embeddings are InvokeModel, not Converse).

Credentials: the LLM's vendor key is `ACCESS_KEY_ID:SECRET_ACCESS_KEY` (stored and shipped encrypted like every
vendor key); the region is `metadata.region`. Signing is botocore's `SigV4Auth` (AWS's own implementation,
maintained with the SDKs): pure CPU, no I/O, so it runs on the request path; the edge never reads AWS's
credential chain (files, instance metadata), which would be blocking I/O.

Errors: Bedrock answers `{"message"}` with the exception in `x-amzn-ErrorType` (ValidationException 400,
AccessDeniedException 403, ResourceNotFoundException 404, ThrottlingException 429, ModelTimeoutException 408,
ModelErrorException 424, ServiceUnavailableException 503, ...). The pipeline turns the status into the caller's
error format; `error_code` passes the exception name on as the error's `code`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ..errors import GatewayError, UpstreamError
from ..upstream import UpstreamRequest
from .base import MISSHAPEN, OpenAIRequest, UpstreamSpec, Usage, join_url, json_reply_usage
from .bedrock_format import to_converse, to_openai, usage_from_converse
from .bedrock_stream import ConverseStreamTranslator, EventStreamSplitter, decode_frame
from .messages_reply import ChatToMessagesStream, chat_to_message
from .messages_request import messages_to_chat
from .openai import vendor_error_message
from .vendor_ranges import VENDOR_RANGES

__all__ = ["BedrockProvider", "SigningFailed", "sign"]

_SERVICE = "bedrock"
_SIGNED = ("content-type", "accept")


class SigningFailed(RuntimeError):
    """SigV4 signing raised: a fault of the edge or of the LLM's config, never of the client's request."""


def sign(spec: UpstreamSpec, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    """`headers` plus SigV4's `x-amz-date` and `authorization` for this exact request (CPU only)."""
    key_id, _, secret = spec.api_key.partition(":")
    region = spec.metadata.get("region")
    if not key_id or not secret or not isinstance(region, str):
        raise UpstreamError(
            502,
            f"LLM {spec.slug!r} (Bedrock) needs a key ACCESS_KEY_ID:SECRET and metadata.region",
            retryable=False,
            code="upstream_auth_failed",
        )
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(Credentials(key_id, secret), _SERVICE, region).add_auth(request)
    return {name.lower(): str(value) for name, value in request.headers.items()}


class _MessagesOverConverse:
    """Converse frames -> chat chunks -> Anthropic events, for a Messages client on a Bedrock LLM."""

    def __init__(self, call: OpenAIRequest, model: str) -> None:
        self.inner = ConverseStreamTranslator(call, model, include_usage=True)
        self.splitter = self.inner.splitter
        self.outer = ChatToMessagesStream(call, call.model)
        self.usage = self.inner.usage

    @property
    def done(self) -> bool:
        return self.outer.done

    def feed(self, event: bytes) -> list[bytes]:
        return [out for chunk in self.inner.feed(event) for out in self.outer.feed(chunk)]

    def finish(self) -> list[bytes]:
        return [out for chunk in self.inner.finish() for out in self.outer.feed(chunk)]


class BedrockProvider:
    vendor = "bedrock"

    def _request(self, spec: UpstreamSpec, path: str, body: bytes, stream: bool) -> UpstreamRequest:
        url = join_url(spec.api_base, path)
        headers = {"content-type": "application/json", "accept": "application/json"}
        if stream:
            headers["accept"] = "application/vnd.amazon.eventstream"
        signed = sign(spec, "POST", url, headers, body)
        signed.update(spec.extra_headers)
        return UpstreamRequest(
            "POST",
            url,
            signed,
            body,
            stream,
            spec.connect_timeout_s,
            spec.first_byte_timeout_s,
            spec.idle_stream_timeout_s,
            spec.max_response_bytes,
        )

    def build(self, spec: UpstreamSpec, call: OpenAIRequest, model: str) -> UpstreamRequest:
        """The signed Converse call. A request Converse cannot express is the client's 400: `_body` raises the
        `GatewayError`, which the upstream phase answers in the caller's format with its `param`
        (`fallbacks.Untranslatable`)."""
        body = self._body(spec, call, model)
        operation = "converse-stream" if call.stream else "converse"
        try:
            return self._request(spec, f"model/{quote(model, safe='')}/{operation}", body, call.stream)
        except MISSHAPEN as exc:
            # The edge's own fault (botocore, the LLM's config), not the body's: the upstream phase answers these as a
            # misshapen request (a 400), so they leave here as what they are, a 500 that is logged.
            raise SigningFailed(f"signing the request for LLM {spec.slug!r} failed: {exc!r}") from exc

    def _body(self, spec: UpstreamSpec, call: OpenAIRequest, model: str) -> bytes:
        data: dict[str, Any] = call.data
        if call.kind == "embeddings":
            raise GatewayError.bad_request(
                f"LLM {spec.slug!r} (Bedrock Converse) does not offer embeddings",
                param="model",
                code="unsupported_operation",
            )
        if call.kind == "messages":
            data = messages_to_chat(call.data, model, call.stream, VENDOR_RANGES["bedrock"])
        elif call.kind == "completions":
            prompt = data.get("prompt")
            text = "".join(str(p) for p in prompt) if isinstance(prompt, list) else str(prompt or "")
            data = {**data, "messages": [{"role": "user", "content": text}]}
        return orjson.dumps(to_converse(data, model))

    def parse(self, call: OpenAIRequest, model: str, body: bytes) -> tuple[bytes, Usage]:
        try:
            response = orjson.loads(body)
            assert isinstance(response, dict)
        except (orjson.JSONDecodeError, AssertionError):
            raise UpstreamError(
                502, "upstream sent a malformed response", retryable=True, code="upstream_bad_response"
            ) from None
        usage = Usage()
        asked = call.data.get("stop_sequences" if call.kind == "messages" else "stop")
        chat = to_openai(response, model, usage, asked, for_messages=call.kind == "messages")
        if call.kind == "messages":
            return orjson.dumps(chat_to_message(chat, call.model, usage, asked)), usage
        if call.kind == "completions":
            choice = chat["choices"][0]
            text = choice["message"]["content"] or ""
            chat = {
                **chat,
                "object": "text_completion",
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": choice["finish_reason"]}],
            }
        return orjson.dumps(chat), usage

    def stream_translator(self, call: OpenAIRequest, model: str) -> ConverseStreamTranslator | _MessagesOverConverse:
        if call.kind == "messages":
            return _MessagesOverConverse(call, model)
        return ConverseStreamTranslator(call, model)

    def error_message(self, body: bytes) -> str:
        return vendor_error_message(body)

    def error_code(self, body: bytes, headers: dict[str, str]) -> str | None:
        """The exception name of `x-amzn-ErrorType` (`ThrottlingException:http://...` -> `ThrottlingException`)."""
        name = headers.get("x-amzn-errortype", "").partition(":")[0].strip()
        return name if name.isalnum() and len(name) <= 64 else None

    def native_request(
        self, spec: UpstreamSpec, method: str, path: str, query: str, headers: dict[str, str], body: bytes, stream: bool
    ) -> UpstreamRequest:
        """`/llm/call/{slug}/model/{id}/converse[-stream]`: the client's Converse body, signed by the edge."""
        url = join_url(spec.api_base, path)
        if query:
            url = f"{url}?{query}"
        forward = {name: headers[name] for name in _SIGNED if name in headers}
        forward.setdefault("content-type", "application/json")
        signed = sign(spec, method, url, forward, body)
        return UpstreamRequest(
            method,
            url,
            signed,
            body,
            stream,
            spec.connect_timeout_s,
            spec.first_byte_timeout_s,
            spec.idle_stream_timeout_s,
            spec.max_response_bytes,
        )

    def native_splitter(self) -> EventStreamSplitter:
        return EventStreamSplitter()

    def native_usage(self, body: bytes) -> Usage:
        return json_reply_usage(body, "usage", usage_from_converse)

    def native_stream_usage(self, event: bytes, usage: Usage) -> None:
        """Usage from a native stream's `metadata` frame (other frames are relayed untouched)."""
        if b"metadata" not in event:
            return
        try:
            headers, payload = decode_frame(event)
            if headers.get(":event-type") == "metadata":
                usage_from_converse(orjson.loads(payload).get("usage"), usage)
        except (UpstreamError, orjson.JSONDecodeError, AttributeError):
            return
