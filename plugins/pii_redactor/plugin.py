"""PII redaction on requests (before they leave for the vendor) and on responses, streamed ones included.

Requests: every message text (plain content and text parts) is redacted in post-auth, so the vendor never
sees the values. Responses: the assistant's content is redacted in full bodies and in streams.

Streams need care: a model emits an e-mail address as several tokens ("jane", ".doe", "@", "example.com"),
so redacting each chunk alone would never match. Each choice keeps a hold-back buffer: a chunk's text is
appended, everything except the last `stream_holdback_chars` characters (cut at whitespace, and never inside
a match) is redacted and sent, the rest waits for the next chunk; the finishing chunk (or `[DONE]`) flushes.
Patterns are compiled once, at load.

Streams come through `on_before_write_events`: the events of each read from the vendor in one call (a fast
vendor's whole answer is often one read), so the call's cost is paid per read; the text deltas of a read go out as
one event with the text they release together (one hold-back pass per run, not per event; the client reads the
same text, which the hold-back re-cuts anyway), other events as `on_before_write` handles each alone. Per event
cost matters (every event of every stream goes through `_chunk`): the common event (see `shared_sdk.stream_text`)
is handled on its raw bytes, only its text's JSON string decoded and a new one spliced in; an event with the same
bytes around its text as the stream's previous one skips even that search (`_Held.learn`). Whether held text has
an '@' or a digit is remembered, so clean text is never scanned twice. Anything else is decoded whole.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import orjson

from shared_sdk import (
    BasePlugin,
    Context,
    EnrichedRequest,
    PluginResponse,
    ResponseWriteRequest,
    ResponseWriteResponse,
    StreamCompleteRequest,
    StreamCompleteResponse,
    StreamEventsRequest,
    StreamEventsResponse,
)
from shared_sdk.stream_text import has_no_choices, text_between, text_event, text_run

NAME = "pii-redactor"

PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "card": r"\b(?:\d[ -]?){13,19}\b",
    "ssn": r"\b\d{3}-\d{2}-\d{4}\b",
    "phone": r"(?<!\w)\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}(?!\w)",
}

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "kinds": {"type": "array", "items": {"enum": list(PATTERNS)}, "default": list(PATTERNS)},
        "redact_requests": {"type": "boolean", "default": True},
        "redact_responses": {"type": "boolean", "default": True},
        "replacement": {"type": "string", "default": "[REDACTED:{kind}]"},
        "stream_holdback_chars": {"type": "integer", "minimum": 8, "maximum": 512, "default": 48},
    },
    "additionalProperties": False,
}

_MAX_STREAMS = 10_000
_CANDIDATE_SPAN = 25
"""The longest text `_candidate` can match: nine digits apart by at most two characters each (an '@': one)."""
_DONE = b"data: [DONE]\n\n"


class _Held:
    """One stream's hold-back: the text held per choice index, the indices whose held text has an '@' or a
    digit (only those need the patterns run over them again), and the shape of its last text event."""

    __slots__ = ("text", "armed", "clean", "head", "tail", "index", "before", "after")

    def __init__(self) -> None:
        self.text: dict[int, str] = {}
        self.armed: set[int] = set()
        self.clean: set[int] = set()  # armed, but searched: no `_candidate` in the held text
        # The last text event's bytes before its text's first character and from its closing quote on, and its
        # choice index (see `_chunk`).
        self.head = self.tail = self.before = self.after = b""
        self.index = 0

    def learn(self, event: bytes, start: int, end: int, index: int) -> None:
        """Remember a text event's shape: its text is `event[start:end]`, a JSON string's inside."""
        self.head, self.tail, self.index = event[:start], event[end:], index
        self.before, self.after = event[: start - 1], event[end + 1 :]  # without the string's quotes

    def keep(self, index: int, text: str, armed: bool, clean: bool = False) -> None:
        self.text[index] = text
        if armed:
            self.armed.add(index)
        else:
            self.armed.discard(index)
        if clean:
            self.clean.add(index)
        else:
            self.clean.discard(index)


class PIIRedactor(BasePlugin):
    name = NAME
    version = "1.2.0"
    description = "Redacts e-mail addresses, card numbers, SSNs and phone numbers in requests and responses."

    def get_config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        kinds = config.get("kinds", list(PATTERNS))
        self.pattern = re.compile("|".join(f"(?P<{k}>{PATTERNS[k]})" for k in kinds))
        self.replacement: str = config.get("replacement", "[REDACTED:{kind}]")
        self._replacements: dict[str, str] = {k: self.replacement.format(kind=k) for k in kinds}
        # Every kind needs an '@' (e-mail) or nine digits apart by at most two of " .-()" (card: 13 apart by one,
        # SSN and phone: 9): text without is returned as is, without running the combined pattern at every
        # position (most model output and prompts have no PII, and numbers in text are mostly short).
        # `_trigger` is the per-character part, for a stream's hold-back: text without an '@' or a digit cannot
        # be part of a match at all.
        digits = bool(set(kinds) - {"email"})
        needs = (["@"] if "email" in kinds else []) + ([r"\d(?:[ .()-]{0,2}\d){8}"] if digits else [])
        self._candidate = re.compile("|".join(needs)) if needs else None
        triggers = ("@" if "email" in kinds else "") + (r"\d" if digits else "")
        self._trigger = re.compile(f"[{triggers}]") if triggers else None
        self.redact_requests = config.get("redact_requests", True)
        self.redact_responses = config.get("redact_responses", True)
        self.holdback = int(config.get("stream_holdback_chars", 48))
        self._streams: OrderedDict[str, _Held] = OrderedDict()

    def redact(self, text: str) -> str:
        if self._candidate is None or self._candidate.search(text) is None:
            return text
        return self.pattern.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        return self._replacements[match.lastgroup or ""]

    # -- requests ------------------------------------------------------------------------------------------

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse:
        if not self.redact_requests or not req.body:
            return PluginResponse()
        try:
            data = orjson.loads(req.body)
        except orjson.JSONDecodeError:
            return PluginResponse()
        if not isinstance(data, dict) or not self._redact_payload(data):
            return PluginResponse()
        return PluginResponse(
            modified=True,
            body=orjson.dumps(data),
            headers=req.headers,
            context_updates={"pii_redactor.request_redacted": True},
        )

    def _redact_payload(self, data: dict[str, Any]) -> bool:
        changed = False
        for message in data.get("messages") or ():
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                new = self.redact(content)
                if new != content:
                    message["content"], changed = new, True
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        new = self.redact(part["text"])
                        if new != part["text"]:
                            part["text"], changed = new, True
        for key in ("prompt", "input"):
            value = data.get(key)
            if isinstance(value, str):
                new = self.redact(value)
                if new != value:
                    data[key], changed = new, True
        return changed

    # -- responses -----------------------------------------------------------------------------------------

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        if not self.redact_responses or req.error is not None:
            return ResponseWriteResponse()
        if req.is_stream_chunk:
            event = self._chunk(ctx.request_id, req.body)
            return ResponseWriteResponse() if event is None else ResponseWriteResponse(modified=True, body=event)
        try:
            data = orjson.loads(req.body)
        except orjson.JSONDecodeError:
            return ResponseWriteResponse()
        changed = False
        for choice in data.get("choices") or () if isinstance(data, dict) else ():
            message = choice.get("message") or {}
            for holder, key in ((message, "content"), (choice, "text")):
                value = holder.get(key)
                if isinstance(value, str):
                    new = self.redact(value)
                    if new != value:
                        holder[key], changed = new, True
        return ResponseWriteResponse(modified=True, body=orjson.dumps(data)) if changed else ResponseWriteResponse()

    async def on_before_write_events(self, ctx: Context, req: StreamEventsRequest) -> StreamEventsResponse:
        """A stream's events that arrived together, in one call. Consecutive events shaped like the stream's last
        text event (a vendor's text deltas) go out as one event carrying the text they release together: one pass
        of the hold-back and one JSON string for the run, not one per event. The client reads the same text (the
        hold-back already re-cuts it); the other events are handled as `on_before_write` handles each alone."""
        if not self.redact_responses:
            return StreamEventsResponse()
        request_id = ctx.request_id
        events = req.events
        if len(events) == 1:  # a read of one event (a vendor sending as it generates): nothing to join
            new = self._chunk(request_id, events[0])
            return StreamEventsResponse() if new is None else StreamEventsResponse(modified=True, events=[new])
        sent: list[bytes] = []
        changed = False
        at = 0
        while at < len(events):
            state = self._streams.get(request_id)
            texts, end = text_run(events, at, state.head, state.tail) if state and state.head else ([], at)
            if state is not None and len(texts) > 1:
                text = "".join(texts)
                if text or state.text.get(state.index):
                    sent.append(state.before + orjson.dumps(self._emit(state, state.index, text)) + state.after)
                    changed = True
                else:  # nothing to say and nothing held: the run as the vendor sent it
                    sent += events[at:end]
                at = end
                continue
            new = self._chunk(request_id, events[at])
            sent.append(events[at] if new is None else new)
            changed = changed or new is not None
            at += 1
        return StreamEventsResponse(modified=True, events=sent) if changed else StreamEventsResponse()

    def _chunk(self, request_id: str, event: bytes) -> bytes | None:
        """One stream event redacted (and the hold-back kept), or None when it goes out as it is."""
        if event == _DONE:
            held = self._streams.pop(request_id, None)
            pending = held.text if held is not None else None
            if not pending or not any(pending.values()):
                return None
            flush = {
                "object": "chat.completion.chunk",
                "choices": [
                    {"index": i, "delta": {"content": self.redact(t)}, "finish_reason": None}
                    for i, t in pending.items()
                    if t
                ],
            }
            return b"data: " + orjson.dumps(flush) + b"\n\n" + _DONE
        state = self._streams.get(request_id)
        # an event shaped like the stream's last text event: only its text is new (`stream_text.text_between`)
        text = text_between(event, state.head, state.tail) if state is not None and state.head else None
        if text is None or state is None:
            if not event.startswith(b"data: {"):
                return None
            found = text_event(event)
            if found is None:
                if has_no_choices(event):  # the usage event: nothing to redact or flush
                    return None
                return self._decoded_chunk(request_id, event)
            text = found.text
            state = self._state(request_id)
            state.learn(event, found.start, found.end, found.index)
        return self._release(state, text)

    def _release(self, state: _Held, text: str) -> bytes | None:
        """The common event (one choice, a delta holding only text, not finishing), without decoding the event:
        the new text's JSON string goes in the old one's place, the rest as the vendor sent it."""
        if not text and not state.text.get(state.index):
            return None
        new = self._emit(state, state.index, text)
        if new == text:
            return None
        return state.before + orjson.dumps(new) + state.after

    def _decoded_chunk(self, request_id: str, event: bytes) -> bytes | None:
        """Any other event: decoded whole, every choice's text (delta content or legacy `text`) handled."""
        try:
            data = orjson.loads(event[6:])
        except orjson.JSONDecodeError:
            return None
        choices = data.get("choices") or () if isinstance(data, dict) else ()
        if not choices:
            return None
        state = self._state(request_id)
        changed = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            delta = choice.get("delta")
            holder, key = (delta, "content") if isinstance(delta, dict) else (choice, "text")
            text = holder.get(key)
            if not isinstance(text, str):
                text = ""
            if not text and not state.text.get(index):
                continue
            if choice.get("finish_reason"):
                new = self.redact(state.text.get(index, "") + text)
                state.keep(index, "", False)
            else:
                new = self._emit(state, index, text)
            if new != text:
                holder[key] = new
                changed = True
        return b"data: " + orjson.dumps(data) + b"\n\n" if changed else None

    def _state(self, request_id: str) -> _Held:
        """The hold-back buffers of one stream (the oldest streams are dropped past the cap)."""
        state = self._streams.get(request_id)
        if state is None:
            state = self._streams[request_id] = _Held()
            while len(self._streams) > _MAX_STREAMS:
                self._streams.popitem(last=False)
        return state

    def _emit(self, state: _Held, index: int, text: str) -> str:
        """Append `text` to choice `index`'s held text; redact and return what can go out now, keep the rest
        (see the module docstring). Only the new text is searched for an '@' or a digit: whether the held text
        has one is remembered (`armed`), so clean output costs no scan of the hold-back per event; with one, the
        patterns run only when the text could hold a match at all (`_candidate`)."""
        carry = state.text.get(index, "")
        combined = carry + text
        held_armed = index in state.armed
        armed = held_armed or (self._trigger is not None and self._trigger.search(text) is not None)
        cut = len(combined) - self.holdback
        if cut <= 0:
            state.keep(index, combined, armed)
            return ""
        space = combined.rfind(" ", 0, cut)
        if "\n" in combined:
            space = max(space, combined.rfind("\n", 0, cut))
        cut = space + 1
        if not armed:  # no '@' and no digit: nothing to redact, no match to cut through
            state.text[index] = combined[cut:]
            return combined[:cut]
        # Held text with no '@' or digit, or searched already, holds no candidate: a new one must end in the new
        # text, so it starts in the last _CANDIDATE_SPAN - 1 characters held or later.
        window = combined
        if not held_armed or index in state.clean:
            window = combined[max(0, len(carry) - _CANDIDATE_SPAN + 1) :]
        if self._candidate is None or self._candidate.search(window) is None:  # short numbers only, say
            rest = combined[cut:]
            state.keep(index, rest, self._trigger is not None and self._trigger.search(rest) is not None, True)
            return combined[:cut]
        for match in self.pattern.finditer(combined):
            if match.start() < cut < match.end():
                cut = match.start()
                break
        rest = combined[cut:]
        state.keep(index, rest, self._trigger is not None and self._trigger.search(rest) is not None)
        return self.redact(combined[:cut]) if cut else ""

    async def on_stream_complete(self, ctx: Context, req: StreamCompleteRequest) -> StreamCompleteResponse:
        self._streams.pop(ctx.request_id, None)
        return StreamCompleteResponse(handled=True)


def create_plugin() -> PIIRedactor:
    return PIIRedactor()
