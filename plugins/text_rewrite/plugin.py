"""Replaces words in the assistant's text, in full responses and in every stream event.

A small, real response hook: the benchmarks bind it beside the PII redactor so the measured edge runs a chunk
hook that rewrites text (issue 17's target is stated with one), and it is an example of the `on_before_write`
contract for stream chunks. Replacements are literal and apply within one event's text: a word split across two
events is not replaced (holding text back, as the PII redactor does, is what that would take).

Streams come through `on_before_write_events`, the events of each read from the vendor in one call (a fast
vendor's whole answer is often one read), so the call's cost is paid per read, not per event; `on_before_write`
still rewrites complete bodies (and is what an older host without the events hook would call per event).

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
from shared_sdk.stream_text import text_event

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
    version = "1.1.0"
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
        if not self.replace:
            return StreamEventsResponse()
        events: list[bytes] | None = None
        for i, event in enumerate(req.events):
            new = self._rewrite_event(event)
            if new is not None:
                if events is None:
                    events = list(req.events)
                events[i] = new
        return StreamEventsResponse() if events is None else StreamEventsResponse(modified=True, events=events)

    def _rewrite_event(self, event: bytes) -> bytes | None:
        """One SSE event with its text rewritten, or None when it is unchanged."""
        if not event.startswith(b"data: {"):
            return None
        for needle in self._needles:
            if needle in event:
                break
        else:
            return None
        found = text_event(event)
        if found is not None:  # the common event: its text replaced on the bytes (`shared_sdk.stream_text`)
            new = self.rewrite(found.text)
            return None if new == found.text else found.replace(event, new)
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
