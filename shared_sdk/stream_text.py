"""A stream event's text, read and replaced on the event's raw bytes, for chunk hooks.

Why: a chunk hook (`on_before_write` with `is_stream_chunk`) runs on every event of every stream, and decoding
the whole event to reach one string, then encoding it all again, was most of what a text-rewriting hook cost
per event. Vendors send nearly every event in one shape (OpenAI's `chat.completion.chunk`: one choice whose
delta holds only text, not finishing); `text_event` finds that shape in the bytes and decodes only the text's
JSON string, `TextEvent.replace` puts a new string in its place and leaves every other byte as the vendor sent
it. Any other event (a finish, tool calls, several choices, another key order) gives None: decode it whole.

Sound on any input: the match starts at the first `"choices":` key and requires that no second one follows;
a key cannot hide inside a JSON string (its quotes would be escaped), so the matched array is the event's only
choices array. The text's escapes are decoded (`\\u0040` is an '@'); an invalid string gives None.
"""

from __future__ import annotations

import re

import msgspec

__all__ = ["TextEvent", "has_no_choices", "text_between", "text_event", "text_run"]

_TEXT_DELTA = re.compile(
    rb'"choices": ?\[\{"index": ?(\d+), ?"delta": ?\{(?:"role": ?"assistant", ?)?"content": ?"([^"\\]*(?:\\.[^"\\]*)*)"'
    rb'(?:, ?"refusal": ?null)?\}'
    rb'(?:, ?"logprobs": ?null)?, ?"finish_reason": ?null\}\](?s:(?!.*"choices"))'
)
_NO_CHOICES = re.compile(rb'"choices": ?\[\](?s:(?!.*"choices"))')
_decode_str = msgspec.json.Decoder(str).decode
_encode = msgspec.json.encode


class TextEvent:
    """The common text event: `text` of choice `index`, whose JSON string's inside is `event[start:end]`
    (OpenAI's key order, no whitespace or json.dumps's; the first event's role and a null refusal allowed)."""

    __slots__ = ("index", "text", "start", "end")

    def __init__(self, index: int, text: str, start: int, end: int) -> None:
        self.index = index
        self.text = text
        self.start = start
        self.end = end

    def replace(self, event: bytes, text: str) -> bytes:
        """`event` with `text` in place of this event's text (the rest of its bytes unchanged)."""
        return event[: self.start - 1] + _encode(text) + event[self.end + 1 :]


def text_event(event: bytes) -> TextEvent | None:
    """The event's text without decoding the event, or None when the event has another shape (decode it)."""
    match = _TEXT_DELTA.match(event, event.find(b'"choices":'))
    if match is None:
        return None
    start, end = match.span(2)
    try:
        text = event[start:end].decode()
        if "\\" in text:  # an escape: JSON decodes the string (`in` on the bytes would be slower)
            text = _decode_str(event[start - 1 : end + 1])
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    return TextEvent(int(match.group(1)), text, start, end)


def has_no_choices(event: bytes) -> bool:
    """True for an event whose only choices array is empty (OpenAI's usage event): no text in it."""
    return _NO_CHOICES.match(event, event.find(b'"choices":')) is not None


def text_between(event: bytes, head: bytes, tail: bytes) -> str | None:
    """The text of an event that is `head`, a JSON string's inside, then `tail` (the bytes around the text of an
    earlier event of the stream: a vendor repeats id, model, ... in every event), or None. Only an inside without
    a quote or backslash is taken: then it is one JSON string whose characters are the text, and anything else
    can be read the long way (`text_event`)."""
    if not event.startswith(head) or not event.endswith(tail):
        return None
    end = len(event) - len(tail)
    if end < len(head):
        return None
    try:
        text = event[len(head) : end].decode()
    except UnicodeDecodeError:
        return None
    if '"' in text or "\\" in text:
        return None
    return text


def text_run(events: list[bytes], start: int, head: bytes, tail: bytes) -> tuple[list[str], int]:
    """The texts of `events[start:]` shaped `head` + text + `tail` (`text_between`), up to the first that is not,
    and the index it stopped at: a run of a vendor's text deltas that a hook can send on as one event."""
    # `text_between` inlined: a run is most of a fast vendor's events, and a call per event cost a third of this.
    texts: list[str] = []
    end = start
    low, cut = len(head), -len(tail) if tail else None
    for event in events[start:]:
        if not event.startswith(head) or not event.endswith(tail) or len(event) < low + len(tail):
            break
        try:
            text = event[low:cut].decode()
        except UnicodeDecodeError:
            break
        if '"' in text or "\\" in text:
            break
        texts.append(text)
        end += 1
    return texts, end
