"""PII redaction on requests (before they leave for the vendor) and on responses, streamed ones included.

Requests: every message text (plain content and text parts) is redacted in post-auth, so the vendor never
sees the values. Responses: the assistant's content is redacted in full bodies and in streams.

Streams need care: a model emits an e-mail address as several tokens ("jane", ".doe", "@", "example.com"),
so redacting each chunk alone would never match. Each choice keeps a hold-back buffer: a chunk's text is
appended, everything except the last `stream_holdback_chars` characters (cut at whitespace, and never inside
a match) is redacted and sent, the rest waits for the next chunk; the finishing chunk (or `[DONE]`) flushes.
Patterns are compiled once, at load.
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
)

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
_DONE = b"data: [DONE]\n\n"


class PIIRedactor(BasePlugin):
    name = NAME
    version = "1.0.1"
    description = "Redacts e-mail addresses, card numbers, SSNs and phone numbers in requests and responses."

    def get_config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        kinds = config.get("kinds", list(PATTERNS))
        self.pattern = re.compile("|".join(f"(?P<{k}>{PATTERNS[k]})" for k in kinds))
        self.replacement: str = config.get("replacement", "[REDACTED:{kind}]")
        self._replacements: dict[str, str] = {k: self.replacement.format(kind=k) for k in kinds}
        # Every kind needs an '@' (e-mail) or digits (the others): text with neither is returned as is, without
        # running the combined pattern at every position (most model output and prompts have no PII).
        triggers = ("@" if "email" in kinds else "") + ("0-9" if set(kinds) - {"email"} else "")
        self._trigger = re.compile(f"[{triggers}]") if triggers else None
        self.redact_requests = config.get("redact_requests", True)
        self.redact_responses = config.get("redact_responses", True)
        self.holdback = int(config.get("stream_holdback_chars", 48))
        self._streams: OrderedDict[str, dict[int, str]] = OrderedDict()

    def redact(self, text: str) -> str:
        if self._trigger is None or self._trigger.search(text) is None:
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
            return self._chunk(ctx.request_id, req.body)
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

    def _chunk(self, request_id: str, event: bytes) -> ResponseWriteResponse:
        if event == _DONE:
            pending = self._streams.pop(request_id, None)
            if not pending or not any(pending.values()):
                return ResponseWriteResponse()
            flush = {
                "object": "chat.completion.chunk",
                "choices": [
                    {"index": i, "delta": {"content": self.redact(t)}, "finish_reason": None}
                    for i, t in pending.items()
                    if t
                ],
            }
            return ResponseWriteResponse(modified=True, body=b"data: " + orjson.dumps(flush) + b"\n\n" + _DONE)
        if not event.startswith(b"data: {"):
            return ResponseWriteResponse()
        try:
            data = orjson.loads(event[6:])
        except orjson.JSONDecodeError:
            return ResponseWriteResponse()
        choices = data.get("choices") or ()
        if not choices:
            return ResponseWriteResponse()
        state = self._streams.get(request_id)
        if state is None:
            state = self._streams[request_id] = {}
            while len(self._streams) > _MAX_STREAMS:
                self._streams.popitem(last=False)
        changed = False
        for choice in choices:
            index = choice.get("index", 0)
            delta = choice.get("delta")
            holder, key = (delta, "content") if isinstance(delta, dict) else (choice, "text")
            text = holder.get(key) if isinstance(holder, dict) else None
            carry = state.get(index, "")
            if not isinstance(text, str):
                text = ""
            if not text and not carry:
                continue
            combined = carry + text
            if choice.get("finish_reason"):
                emit, state[index] = combined, ""
            else:
                cut = self._safe_cut(combined)
                emit, state[index] = combined[:cut], combined[cut:]
            new = self.redact(emit) if emit else ""
            if new != text:
                holder[key] = new
                changed = True
        return (
            ResponseWriteResponse(modified=True, body=b"data: " + orjson.dumps(data) + b"\n\n")
            if changed
            else ResponseWriteResponse()
        )

    def _safe_cut(self, text: str) -> int:
        cut = len(text) - self.holdback
        if cut <= 0:
            return 0
        space = max(text.rfind(" ", 0, cut), text.rfind("\n", 0, cut))
        cut = space + 1 if space >= 0 else 0
        if self._trigger is None or self._trigger.search(text) is None:
            return cut
        for match in self.pattern.finditer(text):
            if match.start() < cut < match.end():
                return match.start()
        return cut

    async def on_stream_complete(self, ctx: Context, req: StreamCompleteRequest) -> StreamCompleteResponse:
        self._streams.pop(ctx.request_id, None)
        return StreamCompleteResponse(handled=True)


def create_plugin() -> PIIRedactor:
    return PIIRedactor()
