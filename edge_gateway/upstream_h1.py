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

The parts, one concept a module: `upstream_h1_request.py` (URL and request head), `upstream_h1_connection.py`
(one connection: response head bounds, body framing, backpressure), `upstream_h1_pool.py` (the connections to
one origin); this module is the transport (send, retry on a stale connection, full reply or stream, errors).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

from .errors import UpstreamError
from .upstream import (
    DEFAULT_DEADLINE_S,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    UpstreamReply,
    UpstreamRequest,
    deadline_exceeded,
    read_failed,
    timed_out,
)
from .upstream_decoding import ContentDecoder, content_decoder, decode_body
from .upstream_h1_connection import DeadlineExceeded, H1Connection, Stale
from .upstream_h1_pool import H1Pool
from .upstream_h1_request import Target, parse_url, request_head

__all__ = ["H1Transport"]


class _ConnectTimeout(Exception):
    """No connection within the connect timeout (told apart from the first-byte timeout when mapped)."""


class H1Transport:
    """`UpstreamTransport` over `H1Pool`s, one per origin, created on first use."""

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
        self._pools: dict[tuple[str, str, int], H1Pool] = {}
        self._tls = tls

    def tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _pool_for(self, target: Target) -> H1Pool:
        pool = self._pools.get(target.origin)
        if pool is None:
            pool = self._pools[target.origin] = H1Pool(self, target, asyncio.get_running_loop())
        return pool

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        try:
            target = parse_url(request.url)
        except ValueError as exc:
            raise UpstreamError(502, str(exc), retryable=False, code="upstream_unreachable") from None
        head = request_head(request, target)
        pool = self._pool_for(target)
        deadline = pool.loop.time() + self.deadline_s
        try:
            try:
                return await self._exchange(pool, head, request, deadline, fresh=False)
            except Stale:
                return await self._exchange(pool, head, request, deadline, fresh=True)
        except UpstreamError:
            raise
        except DeadlineExceeded:
            raise deadline_exceeded(self.deadline_s) from None
        except _ConnectTimeout:
            raise timed_out("connecting to the upstream") from None
        except TimeoutError:
            raise timed_out("waiting for the upstream's first byte") from None
        except (OSError, Stale) as exc:
            raise UpstreamError(
                502, f"upstream unreachable: {type(exc).__name__}", retryable=True, code="upstream_unreachable"
            ) from None

    async def _exchange(
        self, pool: H1Pool, head: bytes, request: UpstreamRequest, deadline: float, *, fresh: bool
    ) -> UpstreamReply:
        """One request on one connection: a full reply read to its end, or a stream's reply once its first body
        bytes (or its end) arrived; the connection is closed on any failure before that."""
        try:
            conn = await pool.acquire(request.connect_timeout_s, fresh=fresh)
        except TimeoutError:
            raise _ConnectTimeout() from None
        try:
            _send(conn, head, request)
            first_byte = request.first_byte_timeout_s
            while not conn.headers_done:
                await conn.wait(first_byte, deadline)
            headers = conn.response_headers()
            decoder = content_decoder(headers, request.max_response_bytes) if "content-encoding" in headers else None
            if not request.stream or conn.status >= 400:
                return await _read_whole(conn, headers, decoder, first_byte, deadline)
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

        chunks = _stream(conn, request.idle_stream_timeout_s, closer, deadline, self.deadline_s, decoder)
        return UpstreamReply(conn.status, headers, b"", chunks, closer)

    def prune_idle(self) -> int:
        """Close every pool's expired idle connections (the edge's housekeeping calls this once a minute)."""
        return sum(pool.prune() for pool in self._pools.values())

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


def _send(conn: H1Connection, head: bytes, request: UpstreamRequest) -> None:
    """Mark `conn` busy with `request` (its bounds and mode) and write the head and body in one go."""
    assert conn.transport is not None
    conn.active = True
    conn.limit = request.max_response_bytes
    conn.streaming = request.stream
    if request.body:
        conn.transport.writelines((head, request.body))
    else:
        conn.transport.write(head)


async def _read_whole(
    conn: H1Connection, headers: dict[str, str], decoder: ContentDecoder | None, timeout_s: float, deadline: float
) -> UpstreamReply:
    """A full reply: the body read (and decoded) to its end, every read within `timeout_s`; `conn` goes back."""
    while not conn.complete:
        await conn.wait(timeout_s, deadline)
    status, body = conn.status, conn.take() if conn.chunks else b""
    if decoder is not None:
        body = decode_body(decoder, body)
    conn.finish()  # resets the connection for its next request
    return UpstreamReply(status, headers, body)


class _StreamCloser:
    __slots__ = ("conn", "done")

    def __init__(self, conn: H1Connection) -> None:
        self.conn = conn
        self.done = False

    def close(self) -> None:
        if not self.done:
            self.done = True
            self.conn.finish()


async def _stream(
    conn: H1Connection,
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
                    raise DeadlineExceeded()
                if decoder is None:
                    yield conn.take()
                    continue
                for piece in decoder.feed(conn.take()):
                    yield piece
                    if loop.time() >= deadline:
                        raise DeadlineExceeded()
                continue
            if conn.complete:
                if decoder is not None:
                    decoder.finish()
                return
            await conn.wait(idle_timeout_s, deadline)
    except (ConnectionError, OSError, Stale) as exc:  # TimeoutError (and DeadlineExceeded) are OSErrors
        raise _stream_error(exc, deadline_s) from None
    finally:
        closer.close()


def _stream_error(exc: BaseException, deadline_s: float) -> UpstreamError:
    """What the client is told when a stream's reading failed (the most specific cause first)."""
    if isinstance(exc, DeadlineExceeded):
        return deadline_exceeded(deadline_s)
    if isinstance(exc, TimeoutError):
        return timed_out("waiting for the next stream chunk (idle timeout)")
    return UpstreamError(
        502, f"upstream stream broken: {type(exc).__name__}", retryable=True, code="upstream_stream_broken"
    )
