"""One keep-alive HTTP/1.1 connection of `H1Transport` and the response being read on it.

An `asyncio.Protocol` fed to httptools (llhttp): its `on_*` callbacks bound the response head (bytes and header
count, informational responses included), note the body's framing (content-length, chunked, or to the
connection's close), buffer body bytes within the request's `max_response_bytes`, and pause reading a stream
while more than `PAUSE_ABOVE` bytes wait for the client. The transport waits on it with `wait` and drains it with
`take`; `finish` hands it back to its pool or closes it. Why a protocol and not streams: one object per
connection, no reader task, no timer per read (`upstream_h1.py` says what that saves).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Protocol

import httptools

from .errors import UpstreamError
from .upstream import headers_too_large
from .upstream_decoding import response_too_large

__all__ = ["PAUSE_ABOVE", "DeadlineExceeded", "H1Connection", "Home", "Stale"]

PAUSE_ABOVE = 1 << 20
"""Bytes of a stream waiting for the client above which reading from the vendor pauses."""


class Stale(Exception):
    """A reused connection was closed by the vendor before any response byte: safe to send again."""


class DeadlineExceeded(TimeoutError):
    """The attempt's overall deadline passed (a `TimeoutError`, told apart from the per-read timeouts)."""


class HeadLimits(Protocol):
    """The bounds on a response head (the transport's settings)."""

    @property
    def max_header_bytes(self) -> int: ...

    @property
    def max_headers(self) -> int: ...


class Home(Protocol):
    """What a connection needs of its pool: the loop, the head's bounds, and where it goes when done."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def owner(self) -> HeadLimits: ...

    def put_back(self, conn: H1Connection) -> None: ...

    def release(self) -> None: ...

    def lost(self, conn: H1Connection) -> None: ...


def _invalid_response(detail: str) -> UpstreamError:
    return UpstreamError(
        502, f"upstream sent an invalid HTTP response ({detail})", retryable=True, code="upstream_invalid_response"
    )


class H1Connection(asyncio.Protocol):
    """One keep-alive connection and the response being read on it (httptools calls the `on_*` methods)."""

    # Slots: its attributes are read and written on every event of a stream. Past 30 attributes CPython 3.11 stops
    # sharing instance-dict keys and its attribute caches no longer apply (+4,600 instructions per `wait`, callgrind).
    __slots__ = (
        "_expire_type",
        "_expires_at",
        "_timer",
        "_timer_at",
        "active",
        "buffered",
        "chunks",
        "closed",
        "complete",
        "declared",
        "error",
        "framed",
        "head_raw",
        "head_size",
        "headers",
        "headers_done",
        "idle_since",
        "informational",
        "keep_alive",
        "limit",
        "loop",
        "parser",
        "paused",
        "pool",
        "received",
        "reused",
        "started",
        "status",
        "streaming",
        "transport",
        "waiter",
    )

    def __init__(self, pool: Home) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self.started = False  # a byte of the current response arrived
        self.waiter: asyncio.Future[None] | None = None
        self._expires_at = 0.0  # when the current `wait` times out (loop time)
        self._expire_type: type[TimeoutError] = TimeoutError
        self._timer: asyncio.TimerHandle | None = None  # at most one per connection, see `wait`
        self._timer_at = 0.0
        self.error: BaseException | None = None
        self.active = False  # a request was sent and its response is not finished
        self.limit = 0  # the current request's max_response_bytes
        self.streaming = False  # the current response is relayed as it comes (pause above PAUSE_ABOVE)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.framed = False  # content-length or chunked: the body does not end with the connection
        self.paused = False
        self.started = False
        self.informational = False
        self.head_raw = 0  # bytes fed before the final response's head completed (informational ones included)
        self.head_size = 0  # bytes of the header fields parsed so far
        self.declared = -1  # content-length
        self.received = 0  # body bytes of this response

    # -- asyncio.Protocol ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.active:  # bytes on an idle connection answer nothing we sent: never read them as an answer
            self._fail(_invalid_response("data on an idle connection"))
            self.close()
            return
        self.started = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, UpstreamError) else _invalid_response(str(exc)))
            self.close()
            return
        if self.chunks:  # one wake-up per read, not per body piece (a chunked stream has one per event)
            self._wake()
        if not self.headers_done:
            self.head_raw += len(data)
            if self.head_raw > self.pool.owner.max_header_bytes:
                self._fail(headers_too_large(f"more than {self.pool.owner.max_header_bytes} bytes"))
                self.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport: a half-closed upstream connection is no use

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()  # what waits is woken below, one way or the other
        if self.headers_done and not self.complete and not self.framed:
            self.complete = True  # the body ended with the connection (no content-length, not chunked)
            self._wake()
        elif not self.complete:
            if not self.started and self.reused:
                self._fail(Stale())
            else:
                self._fail(ConnectionResetError("the upstream closed the connection") if exc is None else exc)
        self.pool.lost(self)

    # -- httptools callbacks -------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:  # a second response to one request: the connection is out of step, drop it
            raise _invalid_response("data after the end of the response")

    def on_header(self, name: bytes, value: bytes) -> None:
        owner = self.pool.owner
        self.head_size += len(name) + len(value) + 4
        if self.head_size > owner.max_header_bytes:
            raise headers_too_large(f"more than {owner.max_header_bytes} bytes")
        if len(self.headers) >= owner.max_headers:
            raise headers_too_large(f"more than {owner.max_headers} headers")
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            self.framed = True
            self.declared = int(value)  # llhttp accepted it: digits only, no overflow
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            self.framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # informational (103 Early Hints, 100 Continue): the real response follows
            self.headers = []
            self.informational = True
            return
        if self.declared > self.limit:
            raise response_too_large(self.limit)
        self.status = status
        if status >= 400:
            self.streaming = False  # an error body is read whole
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.received += len(body)
        if self.received > self.limit:
            raise response_too_large(self.limit)
        self.chunks.append(body)
        self.buffered += len(body)
        if self.streaming and self.buffered > PAUSE_ABOVE and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.complete = True
        self._wake()

    # -- used by the transport -----------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def wait(self, timeout_s: float, deadline: float) -> None:
        """Until the parser made progress (headers, body, end) or the connection failed; TimeoutError after
        `timeout_s`, `DeadlineExceeded` when the loop's clock reaches `deadline` first.

        One timer per connection rather than one per wait: a stream waits once per event, and arming and
        cancelling a loop timer each time cost ~1.6 us (uvloop), about 7 % of a 20-event stream's CPU. The timer
        stays armed at the earliest expiry asked for; when it fires early (the stream made progress since), it
        re-arms itself at the current wait's expiry."""
        if self.error is not None:
            raise self.error
        exc_type: type[TimeoutError] = TimeoutError
        now = self.loop.time()
        left = deadline - now
        if left < timeout_s:
            if left <= 0:
                raise DeadlineExceeded()
            timeout_s, exc_type = left, DeadlineExceeded
        waiter = self.waiter = self.loop.create_future()
        expires_at = self._expires_at = now + timeout_s
        self._expire_type = exc_type
        if self._timer is None or self._timer_at > expires_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = expires_at
            self._timer = self.loop.call_later(timeout_s, self._on_timer)
        try:
            await waiter
        finally:
            self.waiter = None

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # nobody waits: the next `wait` arms a new timer
        now = self.loop.time()
        if now < self._expires_at:  # progress since this timer was armed moved the expiry on
            self._timer_at = self._expires_at
            self._timer = self.loop.call_later(self._expires_at - now, self._on_timer)
            return
        waiter.set_exception(self._expire_type())

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def take(self) -> bytes:
        """Everything buffered of the body so far."""
        chunks = self.chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def response_headers(self) -> dict[str, str]:
        return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.headers}

    def close(self) -> None:
        self._stop_timer()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def finish(self) -> None:
        """Back to the pool when the response was read to its end and the vendor keeps the connection; else close."""
        self.active = False
        self._stop_timer()
        if self.complete and self.keep_alive and not self.closed and not self.chunks and self.error is None:
            self._reset()
            self.reused = True
            self.idle_since = time.monotonic()
            self.pool.put_back(self)
        else:
            self.close()
            self.pool.release()
