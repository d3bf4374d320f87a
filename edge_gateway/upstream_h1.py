"""The edge's default upstream transport: keep-alive HTTP/1.1 on asyncio protocols, parsed by httptools.

Why not aiohttp for the hot path (it stays available: `EDGE_UPSTREAM_CLIENT=aiohttp`): the upstream call was
the largest single cost of an edge request. aiohttp's client (request objects, tracing, cookie and redirect
machinery, a body-writer task and a timer per read) cost 170-250 us of CPU per call on this 2-core box; this
transport, which only does what a gateway needs, costs 30-45 us for the same call (side by side against the same
mock, `bench/README.md`). The HTTP parsing is not ours: httptools (llhttp, the parser uvicorn uses) parses every
response; what is here is the connection pool and request framing, kept small and explicit.

What it does:
- one pool per origin (scheme, host, port), LIFO reuse of idle keep-alive connections, at most
  `max_connections` open per origin (callers wait for a free one within the connect timeout), idle connections
  dropped after `keepalive_expiry_s`; TLS with the system's CA store (`ssl.create_default_context`, so
  `SSL_CERT_FILE` works) and SNI;
- requests: the caller's headers (no `host`, `content-length`, `connection`, `transfer-encoding` or
  `accept-encoding` from them; no default `accept` or `user-agent`), `accept-encoding: identity`, body with
  `content-length`; a header name or value holding CR, LF or NUL is refused (no header injection through a
  plugin's headers);
- responses: content-length, chunked, or delimited by the connection's close; a stream is read with
  backpressure (reading pauses while more than 1 MiB waits for the client); a full response is read to its end
  without pausing, up to the request's `max_response_bytes` (a larger content-length is refused up front);
  a gzip or deflate body is decoded within that same bound (`upstream_decoding.py`);
- bounds against a hostile vendor: the response head (status line and headers, informational responses
  included) at most `max_header_bytes` and `max_headers` headers, however the bytes are split; an attempt at
  most `deadline_s` from sending to the last byte, so a vendor dripping a byte per idle timeout ends too;
  bytes the vendor sends outside a response (after it ended, or on an idle connection) close the connection
  rather than being read as the next request's answer. llhttp itself refuses invalid status lines, CR/LF/NUL
  in header values, content-length next to transfer-encoding (RFC 9112 section 6.3), negative, non-numeric or
  overflowing lengths and invalid chunk sizes;
- timeouts as `edge_gateway.upstream` documents them: `connect_timeout_s` for a connection (pool wait included),
  `first_byte_timeout_s` for the response headers and, for streams, the first body bytes (for a full response,
  every read), `idle_stream_timeout_s` between a stream's later reads;
- a request sent on a reused connection that the vendor had closed meanwhile (no response byte came back) is
  sent once more on a new connection, as browsers and urllib3 do; any other failure is the caller's to retry;
- a reply not read to its end (the client left and the request was cancelled, a hook stopped a stream, an
  error) closes its connection instead of returning it to the pool, so the vendor stops generating.
Errors map to `UpstreamError` exactly as the aiohttp transport maps them.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from functools import lru_cache
from urllib.parse import urlsplit

import httptools

from .errors import UpstreamError
from .upstream import (
    DEFAULT_DEADLINE_S,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    UpstreamReply,
    UpstreamRequest,
    deadline_exceeded,
    headers_too_large,
    read_failed,
    timed_out,
)
from .upstream_decoding import ContentDecoder, content_decoder, decode_body, response_too_large

__all__ = ["H1Transport"]

_PAUSE_ABOVE = 1 << 20
"""Bytes of a stream waiting for the client above which reading from the vendor pauses."""
_NOT_FROM_CALLER = frozenset(
    {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade", "accept-encoding"}
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _Stale(Exception):
    """A reused connection was closed by the vendor before any response byte: safe to send again."""


class _DeadlineExceeded(TimeoutError):
    """The attempt's overall deadline passed (a `TimeoutError`, told apart from the per-read timeouts)."""


class _Target:
    __slots__ = ("origin", "host", "port", "tls", "host_header", "target")

    def __init__(self, origin: tuple[str, str, int], tls: bool, host_header: str, target: str) -> None:
        self.origin = origin
        _, self.host, self.port = origin
        self.tls = tls
        self.host_header = host_header
        self.target = target


@lru_cache(maxsize=1024)
def _parse_url(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target((scheme, host, port), scheme == "https", host_header, target)


def _expire(waiter: asyncio.Future[None], exc_type: type[TimeoutError]) -> None:
    if not waiter.done():
        waiter.set_exception(exc_type())


def _invalid_response(detail: str) -> UpstreamError:
    return UpstreamError(
        502, f"upstream sent an invalid HTTP response ({detail})", retryable=True, code="upstream_invalid_response"
    )


class _Connection(asyncio.Protocol):
    """One keep-alive connection and the response being read on it (httptools calls the `on_*` methods)."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self.started = False  # a byte of the current response arrived
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.active = False  # a request was sent and its response is not finished
        self.limit = 0  # the current request's max_response_bytes
        self.streaming = False  # the current response is relayed as it comes (pause above _PAUSE_ABOVE)
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
        if not self.headers_done:
            self.head_raw += len(data)
            if self.head_raw > self.pool.owner.max_header_bytes:
                self._fail(headers_too_large(f"more than {self.pool.owner.max_header_bytes} bytes"))
                self.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport: a half-closed upstream connection is no use

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.complete and not self.framed:
            self.complete = True  # the body ended with the connection (no content-length, not chunked)
            self._wake()
        elif not self.complete:
            if not self.started and self.reused:
                self._fail(_Stale())
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
        if self.streaming and self.buffered > _PAUSE_ABOVE and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

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
        `timeout_s`, `_DeadlineExceeded` when the loop's clock reaches `deadline` first."""
        if self.error is not None:
            raise self.error
        exc_type: type[TimeoutError] = TimeoutError
        left = deadline - self.loop.time()
        if left < timeout_s:
            if left <= 0:
                raise _DeadlineExceeded()
            timeout_s, exc_type = left, _DeadlineExceeded
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout_s, _expire, waiter, exc_type)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

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
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def finish(self) -> None:
        """Back to the pool when the response was read to its end and the vendor keeps the connection; else close."""
        self.active = False
        if self.complete and self.keep_alive and not self.closed and not self.chunks and self.error is None:
            self._reset()
            self.reused = True
            self.idle_since = time.monotonic()
            self.pool.put_back(self)
        else:
            self.close()
            self.pool.release()


class _Pool:
    """The connections to one origin: idle ones (LIFO), a bound on open ones, and callers waiting for either."""

    def __init__(self, transport: H1Transport, target: _Target, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = transport
        self.target = target
        self.loop = loop
        self.idle: deque[_Connection] = deque()
        self.open = 0
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()

    async def acquire(self, connect_timeout_s: float, *, fresh: bool = False) -> _Connection:
        """An idle connection (unless `fresh`), else a new one if the bound allows, else the next one handed
        back; `TimeoutError` after `connect_timeout_s` of waiting and connecting."""
        conn = None if fresh else self._idle_connection()
        if conn is not None:
            return conn  # the usual case, with no timer to arm
        async with asyncio.timeout(connect_timeout_s):
            while True:
                conn = None if fresh else self._idle_connection()
                if conn is not None:
                    return conn
                if self.open < self.owner.max_connections:
                    return await self._connect()
                waiter = self.loop.create_future()
                self.waiters.append(waiter)
                try:
                    handed = await waiter
                except BaseException:
                    self._abandon(waiter)
                    raise
                if handed is not None:
                    return handed
                # A connection closed: there is room for a new one (loop).

    def _idle_connection(self) -> _Connection | None:
        idle = self.idle
        expiry = self.owner.keepalive_expiry_s
        while idle:
            conn = idle.pop()
            if conn.closed or time.monotonic() - conn.idle_since > expiry:
                conn.close()
                self.release()
                continue
            return conn
        return None

    async def _connect(self) -> _Connection:
        self.open += 1
        target = self.target
        try:
            _, conn = await self.loop.create_connection(
                lambda: _Connection(self),
                target.host,
                target.port,
                ssl=self.owner.tls_context() if target.tls else None,
                server_hostname=target.host if target.tls else None,
            )
        except BaseException:
            self.release()
            raise
        return conn

    def _abandon(self, waiter: asyncio.Future[_Connection | None]) -> None:
        """A waiter gave up (timeout, cancelled): what it was handed in the meantime goes to the next one."""
        if not waiter.done():
            waiter.cancel()
            try:
                self.waiters.remove(waiter)
            except ValueError:
                pass
            return
        if waiter.cancelled():
            return
        handed = waiter.result()
        if handed is not None:
            self.put_back(handed)
        else:
            self._hand(None)

    def _hand(self, conn: _Connection | None) -> bool:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def put_back(self, conn: _Connection) -> None:
        """A connection whose response was read to its end: to a waiting caller, else idle."""
        if not self._hand(conn):
            self.idle.append(conn)

    def release(self) -> None:
        """A connection of this pool closed for good: a waiting caller may open a new one."""
        if self.open > 0:
            self.open -= 1
            self._hand(None)

    def lost(self, conn: _Connection) -> None:
        """The vendor (or we) closed `conn`; an idle one leaves the pool now."""
        if conn in self.idle:
            self.idle.remove(conn)
            self.release()

    def prune(self) -> int:
        """Close idle connections past the keep-alive expiry (LIFO reuse leaves the oldest at the bottom)."""
        cutoff = time.monotonic() - self.owner.keepalive_expiry_s
        stale = [conn for conn in self.idle if conn.idle_since < cutoff]
        for conn in stale:
            self.idle.remove(conn)
            conn.close()
            self.release()
        return len(stale)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


class H1Transport:
    """`UpstreamTransport` over `_Pool`s, one per origin, created on first use."""

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        keepalive_expiry_s: float = 30.0,
        tls: ssl.SSLContext | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        """`tls`: the context for https origins (default: the system's CA store, verified, with SNI);
        `deadline_s`: an attempt's overall bound; `max_header_bytes` / `max_headers`: a response head's bounds."""
        self.max_connections = max_connections
        self.keepalive_expiry_s = keepalive_expiry_s
        self.deadline_s = deadline_s
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._tls = tls

    def tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _pool_for(self, target: _Target) -> _Pool:
        pool = self._pools.get(target.origin)
        if pool is None:
            pool = self._pools[target.origin] = _Pool(self, target, asyncio.get_running_loop())
        return pool

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        try:
            target = _parse_url(request.url)
        except ValueError as exc:
            raise UpstreamError(502, str(exc), retryable=False, code="upstream_unreachable") from None
        head = _request_head(request, target)
        pool = self._pool_for(target)
        deadline = pool.loop.time() + self.deadline_s
        try:
            try:
                return await self._exchange(pool, head, request, deadline, fresh=False)
            except _Stale:
                return await self._exchange(pool, head, request, deadline, fresh=True)
        except UpstreamError:
            raise
        except _DeadlineExceeded:
            raise deadline_exceeded(self.deadline_s) from None
        except _ConnectTimeout:
            raise timed_out("connecting to the upstream") from None
        except TimeoutError:
            raise timed_out("waiting for the upstream's first byte") from None
        except (OSError, _Stale) as exc:
            raise UpstreamError(
                502, f"upstream unreachable: {type(exc).__name__}", retryable=True, code="upstream_unreachable"
            ) from None

    async def _exchange(
        self, pool: _Pool, head: bytes, request: UpstreamRequest, deadline: float, *, fresh: bool
    ) -> UpstreamReply:
        try:
            conn = await pool.acquire(request.connect_timeout_s, fresh=fresh)
        except TimeoutError:
            raise _ConnectTimeout() from None
        try:
            assert conn.transport is not None
            conn.active = True
            conn.limit = request.max_response_bytes
            conn.streaming = request.stream
            if request.body:
                conn.transport.writelines((head, request.body))
            else:
                conn.transport.write(head)
            first_byte = request.first_byte_timeout_s
            while not conn.headers_done:
                await conn.wait(first_byte, deadline)
            headers = conn.response_headers()
            decoder = content_decoder(headers, request.max_response_bytes) if "content-encoding" in headers else None
            if not request.stream or conn.status >= 400:
                while not conn.complete:
                    await conn.wait(first_byte, deadline)
                status, body = conn.status, conn.take() if conn.chunks else b""
                if decoder is not None:
                    body = decode_body(decoder, body)
                conn.finish()  # resets the connection for its next request
                return UpstreamReply(status, headers, body)
            while not conn.chunks and not conn.complete:
                await conn.wait(first_byte, deadline)
        except BaseException as exc:
            conn.close()
            pool.release()
            if isinstance(exc, (ConnectionError, OSError)) and not isinstance(exc, TimeoutError):
                raise read_failed(exc) from None
            raise
        closer = _StreamCloser(conn)
        chunks = _stream(conn, request.idle_stream_timeout_s, closer, deadline, self.deadline_s, decoder)
        return UpstreamReply(conn.status, headers, b"", chunks, closer)

    def prune_idle(self) -> int:
        """Close every pool's expired idle connections (the edge's housekeeping calls this once a minute)."""
        return sum(pool.prune() for pool in self._pools.values())

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


class _ConnectTimeout(Exception):
    pass


def _request_head(request: UpstreamRequest, target: _Target) -> bytes:
    lines = [
        f"{request.method} {target.target} HTTP/1.1\r\nhost: {target.host_header}\r\naccept-encoding: identity\r\n"
    ]
    for name, value in request.headers.items():
        if name.lower() in _NOT_FROM_CALLER:
            continue
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value or "\x00" in value or ":" in name:
            raise UpstreamError(
                502,
                f"refusing to send the header {name!r}: it holds a line break or NUL",
                retryable=False,
                code="invalid_upstream_header",
            )
        lines.append(f"{name}: {value}\r\n")
    if request.body or request.method in _BODY_METHODS:
        lines.append(f"content-length: {len(request.body)}\r\n")
    lines.append("\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise UpstreamError(
            502, "refusing to send a header that is not Latin-1", retryable=False, code="invalid_upstream_header"
        ) from None


class _StreamCloser:
    __slots__ = ("conn", "done")

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self.done = False

    def close(self) -> None:
        if not self.done:
            self.done = True
            self.conn.finish()


async def _stream(
    conn: _Connection,
    idle_timeout_s: float,
    closer: _StreamCloser,
    deadline: float,
    deadline_s: float,
    decoder: ContentDecoder | None,
) -> AsyncIterator[bytes]:
    loop = conn.loop
    try:
        while True:
            if conn.chunks:
                # Checked here too: a vendor feeding bytes as fast as a slow client reads never lets us wait.
                if loop.time() >= deadline:
                    raise _DeadlineExceeded()
                if decoder is None:
                    yield conn.take()
                    continue
                for piece in decoder.feed(conn.take()):
                    yield piece
                    if loop.time() >= deadline:
                        raise _DeadlineExceeded()
                continue
            if conn.complete:
                if decoder is not None:
                    decoder.finish()
                return
            await conn.wait(idle_timeout_s, deadline)
    except _DeadlineExceeded:
        raise deadline_exceeded(deadline_s) from None
    except TimeoutError:
        raise timed_out("waiting for the next stream chunk (idle timeout)") from None
    except (ConnectionError, OSError, _Stale) as exc:
        raise UpstreamError(
            502, f"upstream stream broken: {type(exc).__name__}", retryable=True, code="upstream_stream_broken"
        ) from None
    finally:
        closer.close()
