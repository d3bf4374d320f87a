"""`POST /v1/responses` over any provider: pass-through to a vendor that has the Responses API, else translated.

A `ResponsesSession` is one Responses request: the id the edge gives it, the items of the earlier turns it
continues (`previous_response_id`, from `edge_gateway.response_store`), and the finished response, which the
pipeline stores afterwards. `session.adapter(llm)` wraps the LLM's provider for this request:

- pass-through (`has_responses_api`: vendor `openai`, or any OpenAI-compatible LLM whose metadata says
  `responses_api: true`): the body goes to the vendor's `/v1/responses` unchanged (model override aside), its
  answer and stream come back as they are; usage is read from `response.usage` / `response.completed`.
- translated (everything else, Anthropic included): the request becomes a Chat Completions call
  (`responses_shapes.to_chat_request`) that the wrapped provider builds as usual (Anthropic's provider then
  translates that to Messages), and the chat answer or chat chunk stream becomes the Responses shape here.

A stream the edge must end with an error (a vendor's in-band error while translating, a plugin failure, a broken
connection) ends as api.openai.com ends a failing one: `event: error` (`code`, `message`, `sequence_number`),
then `event: response.failed` with the response so far (`status: failed`, `error`), numbered after the events
the client had, and after a `response.created` of the same response when it had none: `ResponsesSession.failure`,
which `respond_stream` writes. The `openai` SDK yields those two as typed events (it raises only for a chat-style
`{"error": ...}` chunk, which a Responses client never gets from OpenAI). A vendor's own `error` /
`response.failed` in a pass-through stream goes to the client as is, and the request is accounted as failed
(`stream_errors`); before the vendor's `response.created` it is a failed call (retried, fallen back, else an
HTTP error), as OpenAI answers one.
"""

from __future__ import annotations

from typing import Any

import orjson

from shared_sdk.vendors import VENDORS

from ..errors import GatewayError, UpstreamError
from ..upstream import UpstreamRequest
from .base import OpenAIRequest, Provider, StreamTranslator, UpstreamSpec, Usage
from .openai import _UsageBody, usage_from
from .responses_shapes import (
    function_item,
    incomplete_reason,
    input_items,
    message_item,
    new_id,
    output_items,
    reasoning_tokens,
    response_object,
    to_chat_request,
)
from .sse import event_data, event_json
from .stream_errors import openai_stream_error, responses_stream_error

__all__ = ["ResponsesSession", "has_responses_api"]

_OPENAI_COMPATIBLE = frozenset(v for v, p in VENDORS.items() if p.wire in ("openai", "azure"))
"""Vendors that may declare `responses_api: true` (OpenAI's wire format: the presets, Azure, the mock)."""
_FINAL_EVENTS = (b"response.completed", b"response.incomplete", b"response.failed")
_ENDED = ("response.completed", "response.incomplete")
_FAILED = ("error", "response.failed")


def has_responses_api(spec: UpstreamSpec) -> bool:
    """Whether the LLM's vendor serves `/v1/responses` itself (then the edge passes requests through)."""
    flag = spec.metadata.get("responses_api")
    if isinstance(flag, bool):
        return flag and spec.vendor in _OPENAI_COMPATIBLE
    return spec.vendor == "openai"


class ResponsesSession:
    """One `/v1/responses` request across its attempts (fallbacks and other deployments build from it again; a
    retry resends its attempt's request)."""

    __slots__ = ("id", "history", "response", "translated", "stream", "_checked")

    def __init__(self, history: list[dict[str, Any]] | None = None) -> None:
        self.id = new_id("resp")
        self.history = history or []
        self.response: dict[str, Any] | None = None
        """The finished response of a translated call (what the edge stores); None for pass-through."""
        self.translated = False
        self.stream: ChatToResponsesStream | PassthroughStream | None = None
        """The Responses stream under way (this attempt's): what numbers and shapes an error event of the edge's."""
        self._checked: tuple[OpenAIRequest, str, dict[str, Any]] | None = None

    def check(self, call: OpenAIRequest, model: str) -> None:
        """Translate `call` for `model` before any upstream call: what Chat Completions cannot express is the
        client's 400 (raised). The translation is kept for the first attempt's build (`take_checked`), so the
        routed LLM's call does not translate the same request a second time."""
        self._checked = (call, model, to_chat_request(call.data, self.history, model, call.stream))

    def take_checked(self, call: OpenAIRequest, model: str) -> dict[str, Any] | None:
        """The kept translation, once: for the build of the very request and model it was made from, else None.
        Given away, never shared: the build that takes it (or the vendor's translation after it) may change it,
        and a retry reuses that build's request, while a fallback or another deployment translates its own."""
        checked, self._checked = self._checked, None
        if checked is None or checked[0] is not call or checked[1] != model:
            return None
        return checked[2]

    def failure(self, message: str, kind: str, code: str | None, vendor_status: int, sent: bool = True) -> bytes:
        """The events that end this request's stream with an error of the edge's (see the module docstring).
        A vendor's in-band error (`upstream_stream_error`) is told with OpenAI's code for its status. `sent`: whether
        the client has any of the stream; when not (a chunk hook failed on the first read), `response.created`
        goes first, as OpenAI starts every stream: the SDK's `responses.stream()` raises a RuntimeError of its own
        for a stream that starts with anything else, and the edge's error would never reach the caller."""
        if code == "upstream_stream_error" and vendor_status:
            code = "rate_limit_exceeded" if vendor_status == 429 else "server_error" if vendor_status >= 500 else kind
        if self.stream is None:  # a plugin's own Responses stream: nothing numbered it
            started = None if sent else response_object(self.id, {}, "", [], status="in_progress")
            return failure_events(0, started, message, code or kind, announce=not sent)
        return self.stream.failure(message, code or kind, sent)

    def finish(
        self,
        data: dict[str, Any],
        model: str,
        message: dict[str, Any],
        finish_reason: str | None,
        usage: Usage | None,
        reasoning: int = 0,
    ) -> dict[str, Any]:
        """The Responses object of a chat `message` (its items, status, usage with the `reasoning` tokens the
        chat answer reported); kept as this session's answer."""
        reason = incomplete_reason(finish_reason)
        status = "incomplete" if reason else "completed"
        output = output_items(message)
        self.response = response_object(
            self.id, data, model, output, status=status, reason=reason, usage=usage, reasoning=reasoning
        )
        return self.response

    def replay(self, data: dict[str, Any], model: str, chat_events: list[bytes]) -> list[bytes]:
        """Chat chunk events already in hand (a plugin's answer) as the Responses event stream."""
        stream = ChatToResponsesStream(_ChatInHand(), self, data, model)
        out: list[bytes] = []
        for event in chat_events:
            out += stream.feed(event)
        return out + stream.finish()

    def adapter(self, provider: Provider, spec: UpstreamSpec) -> ResponsesAdapter:
        return ResponsesAdapter(self, provider, has_responses_api(spec))

    def conversation(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The items a later `previous_response_id` continues: earlier turns, this input, this output."""
        assert self.response is not None
        # `instructions` are not carried over (as OpenAI does): each request states its own.
        return [*self.history, *input_items(data), *self.response["output"]]


class ResponsesAdapter:
    """The `Provider` seam for one Responses request on one LLM (see the module docstring)."""

    def __init__(self, session: ResponsesSession, inner: Provider, passthrough: bool) -> None:
        self.vendor = inner.vendor
        self.session = session
        self.inner = inner
        self.passthrough = passthrough
        self._chat: OpenAIRequest | None = None

    def untranslated(self, call: OpenAIRequest) -> str:
        """ "openai" for a pass-through (the vendor's own Responses API), "" when sent as Chat Completions (its
        error's `param` would name a chat field the client never sent)."""
        return "openai" if self.passthrough else ""

    def build(self, spec: UpstreamSpec, call: OpenAIRequest, model: str) -> UpstreamRequest:
        if self.passthrough:
            body = call.raw
            if model != call.model:
                body = orjson.dumps({**call.data, "model": model})
            return self.inner.native_request(spec, "POST", "v1/responses", "", {}, body, call.stream)
        self.session.translated = True
        chat = self.session.take_checked(call, model)
        try:
            if chat is None:  # a fallback, another deployment: translated for its own model
                chat = to_chat_request(call.data, self.session.history, model, call.stream)
        except GatewayError as err:  # checked before the routed LLM's call; a fallback's: the client's 4xx
            raise UpstreamError(err.status_code, err.message, retryable=False, type=err.type, code=err.code) from None
        self._chat = OpenAIRequest.from_data("chat", orjson.dumps(chat), chat)
        return self.inner.build(spec, self._chat, model)

    def parse(self, call: OpenAIRequest, model: str, body: bytes) -> tuple[bytes, Usage]:
        if self.passthrough:
            return body, passthrough_usage(body)
        assert self._chat is not None
        chat_body, usage = self.inner.parse(self._chat, model, body)
        try:
            chat = orjson.loads(chat_body)
            choice = chat["choices"][0]
            message = choice["message"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            raise UpstreamError(
                502, "upstream sent a malformed response", retryable=True, code="upstream_bad_response"
            ) from None
        response = self.session.finish(
            call.data,
            chat.get("model") or model,
            message,
            choice.get("finish_reason"),
            usage,
            reasoning_tokens(chat.get("usage")),
        )
        return orjson.dumps(response), usage

    def stream_translator(self, call: OpenAIRequest, model: str) -> StreamTranslator:
        if self.passthrough:
            return PassthroughStream(self.session)
        assert self._chat is not None
        return ChatToResponsesStream(self.inner.stream_translator(self._chat, model), self.session, call.data, model)

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


def _read_usage(response: Any, usage: Usage) -> None:
    """A Responses `usage` block into `usage` (input tokens include cached ones, as in OpenAI's meaning)."""
    if not isinstance(response, dict):
        return
    raw = response.get("usage")
    if isinstance(raw, dict):
        usage_from(_UsageBody(input_tokens=raw.get("input_tokens"), output_tokens=raw.get("output_tokens")), usage)
        usage.cache_read_tokens = int((raw.get("input_tokens_details") or {}).get("cached_tokens") or 0)
    elif raw is not None:  # `"usage": "x"`: the vendor's 502 (`upstream_call._MISSHAPEN_REPLY`), not a free call
        raise ValueError("the vendor's usage is not an object")
    output = response.get("output") or ()
    usage.tool_calls = sum(1 for item in output if isinstance(item, dict) and item.get("type") == "function_call")
    usage.choices = 1


def passthrough_usage(body: bytes) -> Usage:
    """A pass-through Responses reply's usage; a reply that is not a JSON object (not JSON, a list, `null`, invalid
    UTF-8) is the vendor's 502 instead of a 200 relayed at no cost (the parse that reads usage is the check)."""
    usage = Usage()
    try:
        response = orjson.loads(body)
    except orjson.JSONDecodeError:
        response = None
    if not isinstance(response, dict):
        raise UpstreamError(502, "upstream sent a malformed response", retryable=True, code="upstream_bad_response")
    _read_usage(response, usage)
    return usage


def failure_events(
    sequence: int, response: dict[str, Any] | None, message: str, code: str, announce: bool = False
) -> bytes:
    """`event: error`, then `event: response.failed` with `response` failed (when the client has its start);
    `announce`: the client has nothing yet, so `response.created` (`response` in progress) comes first."""
    out = b""
    if announce and response is not None:
        started = {"type": "response.created", "response": {**response, "status": "in_progress", "output": []}}
        out = b"event: response.created\ndata: " + orjson.dumps({**started, "sequence_number": sequence}) + b"\n\n"
        sequence += 1
    error = {"type": "error", "code": code, "message": message, "param": None, "sequence_number": sequence}
    out += b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
    if response is not None:
        failed = {**response, "status": "failed", "error": {"code": code, "message": message}}
        event = {"type": "response.failed", "response": failed, "sequence_number": sequence + 1}
        out += b"event: response.failed\ndata: " + orjson.dumps(event) + b"\n\n"
    return out


class PassthroughStream:
    """A vendor's own Responses stream, relayed as is; usage from its final `response.*` event. The vendor's
    `error` / `response.failed` goes to the client as is, and the stream then ends as failed (`finish` raises
    it `relayed`: the edge writes nothing more). Per event: a count (the next `sequence_number`, should the
    edge have to end the stream itself) and the substring tests that were there for usage already."""

    __slots__ = ("usage", "_done", "_seq", "_response", "_failure", "_id")

    def __init__(self, session: ResponsesSession) -> None:
        self.usage = Usage()
        self._done = False
        self._seq = 0
        self._response: dict[str, Any] | None = None
        self._failure: UpstreamError | None = None
        self._id = session.id
        session.stream = self

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: bytes) -> list[bytes]:
        if not self._seq and b"response.created" in event:  # the first event only: the vendor's response id
            created = event_json(event)
            response = created.get("response") if isinstance(created, dict) else None
            self._response = response if isinstance(response, dict) else None
        self._seq += 1
        if any(name in event for name in _FINAL_EVENTS) or b'"type":"error"' in event:
            payload = event_json(event)
            kind = payload.get("type") if isinstance(payload, dict) else None
            if kind in _ENDED:
                self._done = True
                _read_usage(payload.get("response"), self.usage)
            elif kind in _FAILED:
                if self._response is None:  # before `response.created`: a failed call, as OpenAI answers one (an
                    raise responses_stream_error(payload)  # HTTP error, after a retry or fallback), not relayed
                _read_usage(payload.get("response"), self.usage)
                if self._failure is None:  # `error` then `response.failed`: the first says it
                    self._failure = responses_stream_error(payload, relayed=True)
        return [event]

    def finish(self) -> list[bytes]:
        if self._failure is not None and not self._done:
            raise self._failure
        return []

    def failure(self, message: str, code: str, sent: bool = True) -> bytes:
        if not sent:  # the client has nothing yet: the start it never got, then the end (`ResponsesSession.failure`)
            response = self._response or response_object(self._id, {}, "", [], status="in_progress")
            return failure_events(0, response, message, code, announce=True)
        return failure_events(self._seq, self._response, message, code)


class _ChatInHand:
    """The `StreamTranslator` of chat events that need no translation (a plugin's short-circuit)."""

    __slots__ = ("usage", "done")

    def __init__(self) -> None:
        self.usage = Usage()
        self.done = False

    def feed(self, event: bytes) -> list[bytes]:
        self.done = self.done or event_data(event) == b"[DONE]"
        return [event]

    def finish(self) -> list[bytes]:
        return []


class _Item:
    __slots__ = ("kind", "id", "index", "call_id", "name", "parts")

    def __init__(self, kind: str, index: int, call_id: str = "", name: str = "") -> None:
        self.kind = kind
        self.id = new_id("msg" if kind == "message" else "fc")
        self.index = index
        self.call_id = call_id
        self.name = name
        self.parts: list[str] = []

    def done(self) -> dict[str, Any]:
        text = "".join(self.parts)
        if self.kind == "message":
            return message_item(self.id, text)
        return function_item(self.id, self.call_id, self.name, text)


class ChatToResponsesStream:
    """Chat Completions chunks (from the wrapped provider's translator) in, Responses stream events out.

    response.created, response.in_progress, then per output item: output_item.added (+ content_part.added),
    output_text.delta / function_call_arguments.delta ..., and once the vendor's stream ended: the `.done`
    events of every item and response.completed (response.incomplete when cut by max_output_tokens) with usage.
    """

    def __init__(self, inner: StreamTranslator, session: ResponsesSession, data: dict[str, Any], model: str) -> None:
        self.inner = inner
        self.usage = inner.usage  # the same object: accounting reads it
        self.session = session
        self.data = data
        self.model = model
        self._seq = 0
        self._created = False
        self._items: list[_Item] = []
        self._text: _Item | None = None
        self._calls: dict[int, _Item] = {}
        self._finish: str | None = None
        self._reasoning = 0
        session.stream = self

    @property
    def done(self) -> bool:
        return self.inner.done

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        body = orjson.dumps({"type": kind, **payload, "sequence_number": self._seq})
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n"

    def _response(self, status: str, reason: str | None = None, usage: Usage | None = None) -> dict[str, Any]:
        output = [item.done() for item in self._items] if status != "in_progress" else []
        return response_object(
            self.session.id,
            self.data,
            self.model,
            output,
            status=status,
            reason=reason,
            usage=usage,
            reasoning=self._reasoning,
        )

    def feed(self, event: bytes) -> list[bytes]:
        out: list[bytes] = []
        for chat_event in self.inner.feed(event):
            chunk = _chunk_of(chat_event)
            if chunk is None:
                continue
            if not self._created:
                self._created = True
                self.model = chunk.get("model") or self.model
                started = {"response": self._response("in_progress")}
                out += [self._event("response.created", started), self._event("response.in_progress", started)]
            if chunk.get("usage"):
                self._reasoning = reasoning_tokens(chunk["usage"])
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) == 0:
                    self._choice(choice, out)
        return out

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        """The first choice's delta as Responses events: text into the message item, calls into theirs."""
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if isinstance(text, str) and text:
            self._text_delta(text, out)
        for call in delta.get("tool_calls") or ():
            self._call_delta(call, out)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]

    def _text_delta(self, text: str, out: list[bytes]) -> None:
        """Text for the message item (added, with its one output_text part, on the first text)."""
        item = self._text
        if item is None:
            item = self._text = _Item("message", len(self._items))
            self._items.append(item)
            added = {**message_item(item.id, "", "in_progress"), "content": []}
            out.append(self._event("response.output_item.added", {"output_index": item.index, "item": added}))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.append(
                self._event(
                    "response.content_part.added",
                    {"item_id": item.id, "output_index": item.index, "content_index": 0, "part": part},
                )
            )
        item.parts.append(text)
        out.append(
            self._event(
                "response.output_text.delta",
                {"item_id": item.id, "output_index": item.index, "content_index": 0, "delta": text, "logprobs": []},
            )
        )

    def _call_delta(self, call: dict[str, Any], out: list[bytes]) -> None:
        """A tool-call delta for its function_call item (added on the call's first delta)."""
        position = call.get("index", 0)
        function = call.get("function") or {}
        item = self._calls.get(position)
        if item is None:
            item = _Item("function_call", len(self._items), str(call.get("id") or ""), function.get("name") or "")
            self._calls[position] = item
            self._items.append(item)
            added = function_item(item.id, item.call_id, item.name, "", "in_progress")
            out.append(self._event("response.output_item.added", {"output_index": item.index, "item": added}))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.parts.append(arguments)
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    {"item_id": item.id, "output_index": item.index, "delta": arguments},
                )
            )

    def failure(self, message: str, code: str, sent: bool = True) -> bytes:
        """The error events after those sent (`failure_events`); the items so far are `incomplete`. Nothing sent
        (a chunk hook failed on the first read): `response.created` first, and no items (the client has none)."""
        if not sent:
            return failure_events(0, self._response("in_progress"), message, code, announce=True)
        response = None
        if self._created:
            response = self._response("failed")
            response["output"] = [{**item, "status": "incomplete"} for item in response["output"]]
        out = failure_events(self._seq, response, message, code)
        self._seq += 2
        return out

    def finish(self) -> list[bytes]:
        for chat_event in self.inner.finish():  # OpenAI's translator estimates usage here when the vendor reported none
            chunk = _chunk_of(chat_event)
            if chunk is not None and chunk.get("usage"):
                self._reasoning = reasoning_tokens(chunk["usage"])
        if not self.inner.done:
            return []
        out: list[bytes] = []
        for item in self._items:
            done = item.done()
            where = {"item_id": item.id, "output_index": item.index}
            if item.kind == "message":
                text = done["content"][0]
                out.append(
                    self._event("response.output_text.done", {**where, "content_index": 0, "text": text["text"]})
                )
                out.append(self._event("response.content_part.done", {**where, "content_index": 0, "part": text}))
            else:
                out.append(
                    self._event("response.function_call_arguments.done", {**where, "arguments": done["arguments"]})
                )
            out.append(self._event("response.output_item.done", {"output_index": item.index, "item": done}))
        reason = incomplete_reason(self._finish)
        response = self._response("incomplete" if reason else "completed", reason, self.usage)
        self.session.response = response
        kind = "response.incomplete" if reason else "response.completed"
        out.append(self._event(kind, {"response": response}))
        return out


def _chunk_of(chat_event: bytes) -> dict[str, Any] | None:
    """A chat chunk event's JSON (None for `[DONE]` and data-less events); an in-band vendor error raised."""
    data = event_data(chat_event)
    if data is None or data == b"[DONE]":
        return None
    try:
        chunk: dict[str, Any] = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            502, "upstream sent a malformed stream event", retryable=True, code="upstream_bad_response"
        ) from None
    if isinstance(chunk.get("error"), dict):
        raise openai_stream_error(chunk)
    return chunk
