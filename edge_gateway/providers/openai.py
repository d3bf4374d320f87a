"""OpenAI-compatible vendors: OpenAI, the presets of `shared_sdk.vendors` (Mistral, Groq, ...), and the mock.

The request body is forwarded byte for byte unless the edge has to change it (a model override from routing or
a fallback, a plugin rewrite, or asking a streaming vendor for usage with `stream_options.include_usage`). When
the edge asked for usage and the client did not, the usage-only final chunk is consumed here, so a client that
indexes `chunk.choices[0]` never sees an empty `choices` list it did not ask for.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import orjson

from ..errors import UpstreamError
from ..upstream import UpstreamRequest
from .base import (
    MAX_TOKEN_COUNT,
    OpenAIRequest,
    UpstreamSpec,
    Usage,
    estimate_tokens,
    join_url,
    native_request,
    token_count,
)
from .messages_reply import ChatToMessagesStream, chat_to_message
from .messages_request import messages_to_chat
from .sse import event_data
from .stream_errors import openai_stream_error
from .vendor_ranges import VENDOR_RANGES

__all__ = ["OpenAIProvider"]

_PATHS = {"chat": "chat/completions", "completions": "completions", "embeddings": "embeddings"}


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = 0


class _UsageBody(msgspec.Struct):
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    prompt_tokens_details: _PromptDetails | None = None
    # Anthropic-native shapes (pass-through)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class _Choice(msgspec.Struct):
    message: dict[str, Any] | None = None


class _ResponseBody(msgspec.Struct):
    usage: _UsageBody | None = None
    choices: list[_Choice] = []


class _StreamChunk(msgspec.Struct):
    usage: _UsageBody | None = None
    choices: list[dict[str, Any]] = []


class _NativeReply(msgspec.Struct):
    """A pass-through reply as far as the edge reads it: only its `usage` (the path may be any of the vendor's)."""

    usage: _UsageBody | None = None


_CHOICE_INDEX = re.compile(rb'"index":\s*(\d+)')
# Lax (`strict=False`): a count written `3.0` (as some OpenAI-compatible servers do) or `"3"` is a count; what
# cannot be read as one (`"a lot"`, `1.5`, `1e300`, `true`) fails the decode and makes the reply misshapen.
_response_decoder = msgspec.json.Decoder(_ResponseBody, strict=False)
_chunk_decoder = msgspec.json.Decoder(_StreamChunk, strict=False)
_native_reply_decoder = msgspec.json.Decoder(_NativeReply, strict=False)


def _bad_reply(what: str = "response") -> UpstreamError:
    """An OpenAI-shaped reply the edge could not read: the vendor's 502 in the caller's dialect (an error event
    once a stream is under way), accounted as failed; relaying it would have cost nothing against budgets."""
    return UpstreamError(502, f"upstream sent a malformed {what}", retryable=True, code="upstream_bad_response")


def _anthropic_usage(body: _UsageBody, usage: Usage) -> None:
    """Anthropic's counts in OpenAI's meaning: the prompt includes cache reads and writes. A message_delta
    carries only output tokens, so each side is written only when present."""
    cache_read = token_count(body.cache_read_input_tokens)
    cache_write = token_count(body.cache_creation_input_tokens)
    if body.input_tokens is not None:
        usage.prompt_tokens = token_count(body.input_tokens) + cache_read + cache_write
        usage.cache_read_tokens = cache_read
        usage.cache_write_tokens = cache_write
    if body.output_tokens is not None:
        usage.completion_tokens = token_count(body.output_tokens)


def usage_from(body: _UsageBody | None, usage: Usage) -> None:
    if body is None:
        return
    if body.input_tokens is not None or body.output_tokens is not None:  # Anthropic-native
        _anthropic_usage(body, usage)
    else:
        prompt, completion = body.prompt_tokens, body.completion_tokens  # ints or None (the decoder's types)
        usage.prompt_tokens = prompt if prompt is not None and 0 <= prompt <= MAX_TOKEN_COUNT else token_count(prompt)
        usage.completion_tokens = (
            completion if completion is not None and 0 <= completion <= MAX_TOKEN_COUNT else token_count(completion)
        )
        if body.prompt_tokens_details is not None:
            usage.cache_read_tokens = token_count(body.prompt_tokens_details.cached_tokens)
    usage.reported = True


class OpenAIStreamTranslator:
    """Passes OpenAI events through; reads usage and counts tool calls and choices on the way."""

    __slots__ = ("usage", "_drop_usage_chunk", "_events", "_done", "_call")

    def __init__(self, call: OpenAIRequest) -> None:
        self.usage = Usage()
        self._drop_usage_chunk = not call.client_wants_usage
        self._events: list[bytes] = []
        self._done = False
        self._call = call  # the prompt is estimated at the end, only when the vendor reported no usage

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: bytes) -> list[bytes]:
        data = event_data(event)
        if data is None:
            return [event]
        if data == b"[DONE]":
            self._done = True
            return [event]
        if data.find(b'"usage"') >= 0 and data.find(b'"usage":null') < 0:  # find: see `sse.SSESplitter.feed`
            try:
                chunk = _chunk_decoder.decode(data)
            except msgspec.DecodeError:  # the usage chunk the stream is accounted by: unreadable, not ignored
                raise _bad_reply("stream event") from None
            if chunk.usage is not None:
                usage_from(chunk.usage, self.usage)
                if not chunk.choices and self._drop_usage_chunk:
                    return []
        self._events.append(data)
        return [event]

    def finish(self) -> list[bytes]:
        self._count()
        if self._events and (not self._done or self._events[-1].find(b'"error"') >= 0):
            # Once per stream, never per event: the last data event, when [DONE] never came or when it holds an
            # `"error"` key (a vendor that sends [DONE] after its error chunk; a quote inside a JSON string is
            # escaped, so text that merely says "error" does not match)
            self._relayed_error(self._events[-1])
        return []

    @staticmethod
    def _relayed_error(data: bytes) -> None:
        """A stream that ended on the vendor's own error chunk (with or without [DONE] after it): the client has
        it (relayed as is), so the edge adds no error event of its own, but the request is a failure
        (`stream_errors`)."""
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(payload, dict) and payload.get("error"):
            raise openai_stream_error(payload, relayed=True)

    def _count(self) -> None:
        completion_chars = 0
        choices: set[int] = set()
        tool_calls = 0
        reported = self.usage.reported
        if reported:
            joined = b"\n".join(self._events)
            if joined.find(b'"tool_calls"') < 0:
                # Usage reported and no tool calls: only the choices are left to count, read from their indexes
                # in one search over the stream (a JSON string cannot hold `"index":` unescaped).
                self.usage.choices = len({int(n) for n in set(_CHOICE_INDEX.findall(joined))})
                self.usage.tool_calls = 0
                return
        for data in self._events:
            if reported and data.find(b'"tool_calls"') < 0:
                # The vendor reported usage, so only choices are left to count: read their indexes without
                # decoding the event (a JSON string cannot hold `"index":` unescaped).
                choices.update(int(n) for n in _CHOICE_INDEX.findall(data))
                continue
            chars, calls = _event_counts(data, choices)
            completion_chars += chars
            tool_calls += calls
        self.usage.choices = len(choices)
        self.usage.tool_calls = tool_calls
        if not self.usage.reported:
            request = self._call.data
            self.usage.prompt_tokens = estimate_tokens(request.get("messages") or request.get("prompt") or "")
            self.usage.completion_tokens = (completion_chars + 3) // 4


def _event_counts(data: bytes, choices: set[int]) -> tuple[int, int]:
    """One event's completion characters and new tool calls (a call's first delta has its id); its choice
    indexes are added to `choices`. An event that is not JSON counts nothing."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return 0, 0
    chars = calls = 0
    for choice in chunk.get("choices") or ():
        choices.add(choice.get("index", 0))
        delta = choice.get("delta") or {}
        text = delta.get("content") or choice.get("text") or ""
        chars += len(text) if isinstance(text, str) else 0
        for call in delta.get("tool_calls") or ():
            if call.get("id"):
                calls += 1
            chars += len((call.get("function") or {}).get("arguments") or "")
    return chars, calls


class OpenAIProvider:
    def __init__(self, vendor: str = "openai") -> None:
        self.vendor = vendor
        self.range = VENDOR_RANGES.get(vendor)

    def _auth_headers(self, spec: UpstreamSpec) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if spec.api_key:
            headers["authorization"] = f"Bearer {spec.api_key}"
        if spec.extra_headers:
            headers.update(spec.extra_headers)
        return headers

    def _url(self, spec: UpstreamSpec, path: str, model: str) -> str:
        """The URL of one operation (`path` under the base); Azure's provider puts the deployment in it."""
        return join_url(spec.api_base, path)

    def untranslated(self, call: OpenAIRequest) -> str:
        """ "openai": every call but an Anthropic client's reaches the vendor in OpenAI's own shape (its error's
        `param` names the client's field); "" for Messages, sent as Chat Completions."""
        return "" if call.kind in ("messages", "count_tokens") else "openai"

    def build(self, spec: UpstreamSpec, call: OpenAIRequest, model: str) -> UpstreamRequest:
        if call.kind == "messages":  # an Anthropic Messages client: sent as Chat Completions
            return UpstreamRequest(
                "POST",
                self._url(spec, _PATHS["chat"], model),
                self._auth_headers(spec),
                orjson.dumps(messages_to_chat(call.data, model, call.stream, self.range)),
                call.stream,
                spec.connect_timeout_s,
                spec.first_byte_timeout_s,
                spec.idle_stream_timeout_s,
                spec.max_response_bytes,
            )
        body = call.raw
        inject_usage = call.stream and call.kind != "embeddings" and not call.client_wants_usage
        if inject_usage or model != call.model:
            data = dict(call.data)
            data["model"] = model
            if inject_usage:
                options = data.get("stream_options")
                data["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            body = orjson.dumps(data)
        return UpstreamRequest(
            "POST",
            self._url(spec, _PATHS[call.kind], model),
            self._auth_headers(spec),
            body,
            call.stream,
            spec.connect_timeout_s,
            spec.first_byte_timeout_s,
            spec.idle_stream_timeout_s,
            spec.max_response_bytes,
        )

    def parse(self, call: OpenAIRequest, model: str, body: bytes) -> tuple[bytes, Usage]:
        """The reply of a `build` call: every kind it builds (chat, completions, embeddings, messages) answers a
        JSON object, so a reply that does not decode as one (not JSON, a list, `null`, `"choices": "x"`, a count
        that is no count, invalid UTF-8 in what is read) is the vendor's 502, not a 200 relayed at no cost. The
        decoder runs on every reply anyway: its failure is the check."""
        usage = Usage()
        try:
            parsed = _response_decoder.decode(body)
        except msgspec.DecodeError:
            raise _bad_reply() from None
        usage_from(parsed.usage, usage)
        usage.choices = len(parsed.choices)
        usage.tool_calls = sum(len((c.message or {}).get("tool_calls") or ()) for c in parsed.choices)
        if not usage.reported:
            usage.prompt_tokens = estimate_tokens(call.data.get("messages") or call.data.get("input") or "")
        if call.kind == "messages":
            asked = call.data.get("stop_sequences")
            return orjson.dumps(chat_to_message(orjson.loads(body), call.model, usage, asked)), usage
        return body, usage

    def stream_translator(self, call: OpenAIRequest, model: str) -> OpenAIStreamTranslator | ChatToMessagesStream:
        if call.kind == "messages":
            return ChatToMessagesStream(call, call.model)
        return OpenAIStreamTranslator(call)

    def error_message(self, body: bytes) -> str:
        return vendor_error_message(body)

    def native_request(
        self, spec: UpstreamSpec, method: str, path: str, query: str, headers: dict[str, str], body: bytes, stream: bool
    ) -> UpstreamRequest:
        return native_request(spec, (method, path, query, body, stream), headers, self._auth_headers(spec), ())

    def native_usage(self, body: bytes) -> Usage:
        """A pass-through reply's usage. The path may be any of the vendor's (speech, files, a models list): a
        reply that is not a JSON object is relayed as it is, with no usage; a JSON object whose `usage` cannot be
        read (the only part the edge reads, as the other providers' `json_reply_usage`) is the vendor's 502."""
        usage = Usage()
        try:
            usage_from(_native_reply_decoder.decode(body).usage, usage)
        except msgspec.ValidationError:  # JSON of another shape: only `usage` is typed, so on an object it is that
            if body.lstrip()[:1] == b"{":
                raise _bad_reply() from None
        except msgspec.DecodeError:  # not JSON: audio, a file's bytes
            pass
        return usage

    def native_stream_usage(self, event: bytes, usage: Usage) -> None:
        native_stream_usage(event, usage)


class _NativeEvent(msgspec.Struct):
    usage: _UsageBody | None = None
    message: _ResponseBody | None = None


_native_event_decoder = msgspec.json.Decoder(_NativeEvent)


def native_stream_usage(event: bytes, usage: Usage) -> None:
    """Usage from one event of a vendor-native stream (OpenAI final chunk, Anthropic message_start/delta)."""
    if event.find(b'"usage"') < 0:  # find, not `in`: see `sse.SSESplitter.feed`
        return
    data = event_data(event)
    if not data:
        return
    try:
        parsed = _native_event_decoder.decode(data)
    except msgspec.DecodeError:
        return
    if parsed.message is not None and parsed.message.usage is not None:
        usage_from(parsed.message.usage, usage)
    if parsed.usage is not None:
        output_only = parsed.usage.input_tokens is None and parsed.usage.output_tokens is not None
        if output_only:
            usage.completion_tokens = parsed.usage.output_tokens or 0
            usage.reported = True
        else:
            usage_from(parsed.usage, usage)


def vendor_error_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace")
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or "")
        if isinstance(error, str):
            return error
        message = data.get("message")
        if isinstance(message, str):
            return message
    return ""
