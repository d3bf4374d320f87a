"""Replaces words in the assistant's text, in full responses and in every stream event.

A small, real response hook: the benchmarks bind it beside the PII redactor so the measured edge runs a chunk
hook that rewrites text (issue 17's target is stated with one), and it is an example of the `on_before_write`
contract for stream chunks. Replacements are literal and apply within one event's text, or within the text deltas
of one read from the vendor, which go out as one event from the first of them holding a word on (a word split
between two reads is not replaced: holding text back, as the PII redactor does, is what that would take).

Streams come through `on_before_write_events`, the events of each read from the vendor in one call (a fast
vendor's whole answer is often one read), so the call's cost is paid per read, and the rewrite and the JSON string
per run of text deltas, not per event; `on_before_write` still rewrites complete bodies (and is what an older host
without the events hook would call per event).

An event whose bytes hold none of the words is passed without decoding: a word in the text is in the event's
UTF-8 bytes, unless the vendor escaped it (`\\u0074` for a 't'), which is why an event with an escape is always read.
The common text event is rewritten on its bytes (`shared_sdk.stream_text`); any other event is decoded whole.
"""

from __future__ import annotations

from typing import Any

import orjson

from shared_sdk import (
    BasePlugin,
    Context,
    ResponseWriteRequest,
    ResponseWriteResponse,
    StreamEventsRequest,
    StreamEventsResponse,
)
from shared_sdk.stream_text import text_event, text_run

NAME = "text-rewrite"

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "replace": {
            "type": "object",
            "description": "word -> replacement, applied in this order",
            "additionalProperties": {"type": "string"},
            "default": {},
        },
    },
    "additionalProperties": False,
}


class TextRewrite(BasePlugin):
    name = NAME
    version = "1.2.0"
    description = "Replaces words in the assistant's text (full responses and stream events)."

    def get_config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        self.replace: list[tuple[str, str]] = [(k, v) for k, v in config.get("replace", {}).items() if k]
        self._needles = [k.encode() for k, _ in self.replace] + [b"\\u"]

    def rewrite(self, text: str) -> str:
        for word, replacement in self.replace:
            text = text.replace(word, replacement)
        return text

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        if req.error is not None or not self.replace:
            return ResponseWriteResponse()
        if req.is_stream_chunk:
            new = self._rewrite_event(req.body)
            return ResponseWriteResponse() if new is None else ResponseWriteResponse(modified=True, body=new)
        try:
            data = orjson.loads(req.body)
        except orjson.JSONDecodeError:
            return ResponseWriteResponse()
        if not isinstance(data, dict) or not self._rewrite_choices(data.get("choices")):
            return ResponseWriteResponse()
        return ResponseWriteResponse(modified=True, body=orjson.dumps(data))

    async def on_before_write_events(self, ctx: Context, req: StreamEventsRequest) -> StreamEventsResponse:
        """A read's events in one call. An event holding a word starts a run: it and the text deltas after it
        with the same bytes around their text (a vendor repeats id, model, ... in every event) are rewritten as
        one text and go out as one event; one rewrite and one JSON string per run, not per event, and a word
        split between events of the run is replaced too. Other events are handled as `on_before_write` does."""
        if not self.replace:
            return StreamEventsResponse()
        events = req.events
        if len(events) == 1:  # a read of one event (a vendor sending as it generates): nothing to join
            new = self._rewrite_event(events[0])
            return StreamEventsResponse() if new is None else StreamEventsResponse(modified=True, events=[new])
        out: list[bytes] = []
        at = 0
        while at < len(events):
            event = events[at]
            at += 1
            if not self._may_hold_a_word(event):
                out.append(event)
                continue
            found = text_event(event)
            if found is None:  # not a plain text delta: decoded whole
                new = self._rewrite_decoded(event)
                out.append(event if new is None else new)
                continue
            more, end = text_run(events, at, event[: found.start], event[found.end :])
            text = "".join([found.text, *more]) if more else found.text
            new_text = self.rewrite(text)
            out += events[at - 1 : end] if new_text == text else [found.replace(event, new_text)]
            at = end
        return StreamEventsResponse(modified=True, events=out) if out != events else StreamEventsResponse()

    def _may_hold_a_word(self, event: bytes) -> bool:
        """False for an event that cannot hold a word: not a JSON event, or none of the words (nor an escape,
        which could spell one) in its bytes."""
        if not event.startswith(b"data: {"):
            return False
        for needle in self._needles:
            if needle in event:
                return True
        return False

    def _rewrite_event(self, event: bytes) -> bytes | None:
        """One SSE event with its text rewritten, or None when it is unchanged."""
        if not self._may_hold_a_word(event):
            return None
        found = text_event(event)
        if found is not None:  # the common event: its text replaced on the bytes (`shared_sdk.stream_text`)
            new = self.rewrite(found.text)
            return None if new == found.text else found.replace(event, new)
        return self._rewrite_decoded(event)

    def _rewrite_decoded(self, event: bytes) -> bytes | None:
        """Any other event, decoded whole: every choice's text rewritten."""
        try:
            data = orjson.loads(event[6:])
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or not self._rewrite_choices(data.get("choices")):
            return None
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def _rewrite_choices(self, choices: Any) -> bool:
        changed = False
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            for holder in (choice.get("delta"), choice.get("message")):
                if isinstance(holder, dict) and isinstance(holder.get("content"), str):
                    new = self.rewrite(holder["content"])
                    if new != holder["content"]:
                        holder["content"], changed = new, True
            if isinstance(choice.get("text"), str):
                new = self.rewrite(choice["text"])
                if new != choice["text"]:
                    choice["text"], changed = new, True
        return changed


def create_plugin() -> TextRewrite:
    return TextRewrite()
