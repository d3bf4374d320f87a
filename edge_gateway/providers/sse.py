"""Server-sent events: split a byte stream into whole events, and read the `data:` of one event.

Why whole events: response hooks see one event per chunk (they may rewrite or drop it), and a vendor is free
to cut its stream anywhere, even inside a UTF-8 sequence. The splitter keeps the unfinished tail.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["SSESplitter", "event_data", "event_json", "event_name"]


class SSESplitter:
    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, piece: bytes) -> list[bytes]:
        """Return every complete event (ending in a blank line, normalised to `\\n\\n`) found so far."""
        data = self._buffer + piece if self._buffer else piece
        # `bytes.find`, not `in`: `in` on bytes first tries the operand as an int and builds a TypeError (3x slower
        # per test, and these run on every read of every stream).
        if data.find(b"\r") >= 0:  # CRLF streams; a lone trailing CR may be half of a CRLF cut by the network
            data = data.replace(b"\r\n", b"\n")
        if data.find(b"\n\n") < 0:
            self._buffer = data
            return []
        parts = data.split(b"\n\n")
        self._buffer = parts.pop()
        return [part + b"\n\n" for part in parts if part.strip()]

    def tail(self) -> bytes:
        """Whatever arrived after the last complete event (non-empty only for a truncated stream)."""
        rest, self._buffer = self._buffer, b""
        return rest


def event_data(event: bytes) -> bytes | None:
    """The joined `data:` lines of one event, or None when it has none (comments, pings)."""
    if event.startswith(b"data: ") and event.count(b"\n") == 2:
        return event[6:-2]
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(lines)


def event_json(event: bytes) -> Any:
    """An event's data as JSON, or None when it has no data or the data is not JSON: the providers read a vendor's
    end or in-band error events with it (only those events, once each: never per event of a stream)."""
    data = event_data(event)
    if not data:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def event_name(event: bytes) -> bytes:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip()
    return b"message"
