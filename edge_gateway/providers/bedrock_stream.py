"""Bedrock's `converse-stream` (binary AWS event stream) in, OpenAI `chat.completion.chunk` SSE events out.

Framing: each message is a 12-byte prelude (total length, headers length, CRC32), headers, a JSON payload and a
CRC32 of the whole (`application/vnd.amazon.eventstream`). `EventStreamSplitter` cuts the byte stream into whole
messages without decoding them (the pipeline's SSE splitter would corrupt binary frames); the translator decodes
each (`decode_frame`, both CRCs checked), so a damaged frame ends the stream with a clean 502.

Events: messageStart -> the role chunk; contentBlockStart (toolUse) -> a tool call's id and name;
contentBlockDelta -> text or argument fragments; messageStop -> the finish chunk; metadata -> usage (after
messageStop, as Bedrock sends it), then `[DONE]`. For Amazon Nova asked to stop on sequences, the text's last
characters (as many as the longest sequence) wait until messageStop (or a tool call) and a stop sequence at its
end is cut off, as OpenAI's and Anthropic's answers never hold it (`bedrock_format.cut_stop`). An `exception` message (throttlingException,
modelStreamErrorException, ...) raises `UpstreamError`: before the first chunk it is retried or falls back like
any failure, after it the client's stream ends with an error event.
"""

from __future__ import annotations

import binascii
import struct
import time
import uuid
from typing import Any

import orjson

from ..errors import UpstreamError
from .base import OpenAIRequest, Usage, estimate_tokens
from .bedrock_format import (
    cut_stop,
    finish_reason,
    keeps_stop,
    matched_stop,
    stop_list,
    stop_tail_size,
    usage_from_converse,
)

__all__ = ["ConverseStreamTranslator", "EventStreamSplitter", "decode_frame"]

_MAX_FRAME = 16 * 1024 * 1024 + 1024  # AWS bounds a message's payload at 16 MiB
_RETRYABLE = frozenset({"throttlingException", "serviceUnavailableException", "internalServerException"})


class EventStreamSplitter:
    """Whole event-stream messages out of arbitrary network pieces (the same seam as `sse.SSESplitter`), in time
    linear in the bytes received: an unfinished message's pieces wait in a list, joined once when it is whole (a
    message may be 16 MiB; joining what waits to every 1 KB read cost CPU quadratic in its size)."""

    __slots__ = ("_pending", "_size", "_total")

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._size = 0  # bytes in `_pending`
        self._total = 0  # the unfinished message's length, once its first 4 bytes are in (0 before)

    def feed(self, piece: bytes) -> list[bytes]:
        if self._pending:
            return self._resume(piece)
        data = piece  # the common read: whole messages, nothing waiting
        frames: list[bytes] = []
        start = 0
        while len(data) - start >= 4:
            (total,) = struct.unpack_from("!I", data, start)
            if total < 16 or total > _MAX_FRAME:
                raise _invalid_frame()
            if len(data) - start < total:
                self._total = total
                break
            frames.append(data[start : start + total])
            start += total
        if start < len(data):
            rest = data[start:] if start else data
            self._pending.append(rest)
            self._size = len(rest)
        return frames

    def _resume(self, piece: bytes) -> list[bytes]:
        """`piece` continues an unfinished message: it waits until the message is whole, then is joined once."""
        pending = self._pending
        pending.append(piece)
        self._size += len(piece)
        if not self._total:  # the length prefix itself was cut (fewer than 4 bytes waited)
            if self._size < 4:
                return []
            head = b"".join(pending)
            pending[:] = [head]
            (self._total,) = struct.unpack_from("!I", head)
            if self._total < 16 or self._total > _MAX_FRAME:
                raise _invalid_frame()
        over = self._size - self._total
        if over < 0:
            return []
        rest = b""
        if over:
            last = pending[-1]
            pending[-1], rest = last[: len(last) - over], last[len(last) - over :]
        frame = b"".join(pending)
        pending.clear()
        self._size = self._total = 0
        return [frame, *self.feed(rest)] if rest else [frame]

    def tail(self) -> bytes:
        rest = b"".join(self._pending)
        self._pending.clear()
        self._size = self._total = 0
        return rest


def _invalid_frame() -> UpstreamError:
    return UpstreamError(
        502, "upstream sent an invalid event-stream frame", retryable=True, code="upstream_bad_response"
    )


_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}  # header value sizes by type (6, 7: length-prefixed)


def _damaged() -> UpstreamError:
    return UpstreamError(
        502, "upstream sent a damaged event-stream frame", retryable=True, code="upstream_bad_response"
    )


def decode_frame(frame: bytes) -> tuple[dict[str, Any], bytes]:
    """(headers, payload) of one whole frame, both CRCs checked; string headers decoded, others kept as bytes.

    Why not botocore's parser: it costs ~70% of a streamed chunk's CPU at the edge (a Python call per header
    field); this does the same checks with `binascii.crc32` and slicing (`test_vendor_bedrock` decodes the same
    frames with both)."""
    if len(frame) < 16:
        raise _damaged()
    total, headers_length, prelude_crc = struct.unpack_from("!III", frame)
    if total != len(frame) or binascii.crc32(frame[:8]) != prelude_crc or headers_length > total - 16:
        raise _damaged()
    if binascii.crc32(frame[:-4]) != struct.unpack_from("!I", frame, total - 4)[0]:
        raise _damaged()
    headers: dict[str, Any] = {}
    at, end = 12, 12 + headers_length
    try:
        while at < end:
            size = frame[at]
            name = frame[at + 1 : at + 1 + size].decode()
            kind = frame[at + 1 + size]
            at += 2 + size
            if kind in (6, 7):
                (length,) = struct.unpack_from("!H", frame, at)
                value = frame[at + 2 : at + 2 + length]
                headers[name] = value.decode() if kind == 7 else value
                at += 2 + length
            else:
                headers[name] = frame[at : at + _FIXED[kind]]
                at += _FIXED[kind]
    except (IndexError, KeyError, UnicodeDecodeError, struct.error):
        raise _damaged() from None
    if at != end:
        raise _damaged()
    return headers, frame[end : total - 4]


class ConverseStreamTranslator:
    """A `StreamTranslator` whose `splitter` cuts binary frames; `feed` takes one frame."""

    def __init__(self, call: OpenAIRequest, model: str, *, include_usage: bool = False) -> None:
        self.usage = Usage(choices=1)
        self._include_usage = include_usage or call.client_wants_usage
        self.splitter = EventStreamSplitter()
        self._call = call
        self._model = model
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())
        self._completions = call.kind == "completions"
        self._tools: dict[int, int] = {}
        self._chars = 0
        self._messages = call.kind == "messages"
        self._asked = call.data.get("stop_sequences" if self._messages else "stop")
        self._tail_size = stop_tail_size(self._asked)  # 0: the text's end is not needed (matched_stop)
        self._tail = ""
        # A model that ends its text with the stop sequence (Nova): the text's last characters, as many as the
        # longest sequence asked, wait until the answer ends, to be cut off if they are one (`cut_stop`).
        self._stops = stop_list(self._asked) if keeps_stop(model) else []
        self._hold = max((len(s) for s in self._stops), default=0)
        self._held = ""
        self._stopped = False
        self._opened = False  # the role chunk was sent: with the first text or tool call, as OpenAI's
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, stopped_on: str | None = None) -> bytes:
        if self._completions:
            choice: dict[str, Any] = {"index": 0, "text": delta.get("content") or "", "finish_reason": finish}
            kind = "text_completion"
        else:
            choice, kind = {"index": 0, "delta": delta, "finish_reason": finish}, "chat.completion.chunk"
        if stopped_on is not None:  # vLLM's field, as in full answers (`bedrock_format.matched_stop`)
            choice["stop_reason"] = stopped_on
        body = {"id": self._id, "object": kind, "created": self._created, "model": self._model, "choices": [choice]}
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def feed(self, event: bytes) -> list[bytes]:
        headers, payload = decode_frame(event)
        kind = headers.get(":message-type")
        if kind in ("exception", "error"):
            name = str(headers.get(":exception-type") or headers.get(":error-code") or "error")
            try:
                message = str(orjson.loads(payload).get("message") or name)
            except (orjson.JSONDecodeError, AttributeError):
                message = name
            raise UpstreamError(
                429 if name == "throttlingException" else 502,
                f"upstream stream error ({name}): {message}",
                retryable=name in _RETRYABLE,
                code="upstream_stream_error",
            )
        try:
            data = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            raise UpstreamError(
                502, "upstream sent a malformed stream event", retryable=True, code="upstream_bad_response"
            ) from None
        return self._event(str(headers.get(":event-type") or ""), data if isinstance(data, dict) else {})

    def _open(self) -> list[bytes]:
        """The role chunk before text (or an empty answer), once: `content: ""`, as OpenAI's."""
        if self._opened:
            return []
        self._opened = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _event(self, name: str, data: dict[str, Any]) -> list[bytes]:
        if name == "messageStart":
            return []  # the role chunk waits: `content` is null before a tool call, "" before text (OpenAI's)
        if name == "contentBlockStart":
            use = (data.get("start") or {}).get("toolUse")
            if not isinstance(use, dict) or self._completions:
                return []
            if self._held:  # text before a tool call: it was not the answer's end
                return [*self._release(), *self._event(name, data)]
            index = self._tools.setdefault(int(data.get("contentBlockIndex") or 0), len(self._tools))
            self.usage.tool_calls += 1
            call = {"index": index, "id": use.get("toolUseId", ""), "type": "function"}
            call["function"] = {"name": use.get("name", ""), "arguments": ""}
            if self._opened:
                return [self._chunk({"tool_calls": [call]})]
            self._opened = True
            return [self._chunk({"role": "assistant", "content": None, "tool_calls": [call]})]
        if name == "contentBlockDelta":
            return self._delta(data)
        if name == "messageStop":
            self._stopped = True
            reason = data.get("stopReason")
            kept = None
            if self._held and reason in ("stop_sequence", "end_turn"):
                self._held, kept = cut_stop(self._held, self._stops)
                reason = "stop_sequence" if kept is not None else reason
            text = self._release()
            fields = data.get("additionalModelResponseFields")
            stopped_on = kept or matched_stop(reason, fields, self._asked, self._tail)
            chunk = self._chunk({}, finish_reason(reason, self._messages), stopped_on)
            return [*self._open(), *text, chunk]
        if name == "metadata":
            usage_from_converse(data.get("usage"), self.usage)
            return [*self._release(), *self._end()]
        return []  # contentBlockStop and event types added later

    def _delta(self, data: dict[str, Any]) -> list[bytes]:
        delta = data.get("delta") or {}
        if "text" in delta:
            text = str(delta["text"])
            self._chars += len(text)
            if self._tail_size:  # several stop sequences asked: which one may show at the text's end
                self._tail = (self._tail + text)[-self._tail_size :]
            if self._hold:
                held = self._held + text
                text, self._held = held[: -self._hold], held[-self._hold :]
                if not text:
                    return []
            return [*self._open(), self._chunk({"content": text})]
        use = delta.get("toolUse")
        if isinstance(use, dict) and not self._completions:
            index = self._tools.get(int(data.get("contentBlockIndex") or 0), 0)
            fragment = str(use.get("input") or "")
            self._chars += len(fragment)
            return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})]
        return []  # reasoningContent and other delta kinds are not part of Chat Completions

    def _release(self) -> list[bytes]:
        """The held text's chunk (after the role chunk), once the answer's end is known; nothing when none waits."""
        if not self._held:
            return []
        text, self._held = self._held, ""
        return [*self._open(), self._chunk({"content": text})]

    def _end(self) -> list[bytes]:
        if self._done:
            return []
        self._done = True
        if not self.usage.reported:
            data = self._call.data
            self.usage.prompt_tokens = estimate_tokens(data.get("messages") or data.get("prompt") or "")
            self.usage.completion_tokens = (self._chars + 3) // 4
        out = []
        if self._include_usage:
            usage = {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "total_tokens": self.usage.total_tokens,
            }
            body = {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": usage,
            }
            out.append(b"data: " + orjson.dumps(body) + b"\n\n")
        out.append(b"data: [DONE]\n\n")
        return out

    def finish(self) -> list[bytes]:
        """A stream that ended after messageStop but without its metadata event still ends cleanly."""
        return [*self._release(), *self._end()] if self._stopped else []
