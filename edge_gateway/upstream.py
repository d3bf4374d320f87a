"""How the edge reaches vendors: one pooled aiohttp session per upstream origin behind a one-method transport.

The transport contract is `send(UpstreamRequest) -> UpstreamReply`. Everything third-party stops here:
aiohttp exceptions are mapped to `UpstreamError` with the status the client will see (502 for network
failures, 504 for timeouts) and whether a retry may help, so the pipeline never imports aiohttp.

Timeouts: `connect_timeout_s` bounds getting a connection (pool wait plus TCP/TLS connect);
`first_byte_timeout_s` bounds the wait for the response headers and, for streams, for the first chunk; after
the first chunk, `idle_stream_timeout_s` bounds the gap between chunks. aiohttp re-arms its socket read
timeout on every read from the connection's current `read_timeout`, which is what lets the idle timeout take
over once the first chunk is in.

A reply that is not read to its end (a client that left cancels the request's task, a hook stopped a stream,
an error) closes its connection instead of returning it to the pool, so the vendor sees the disconnect and
stops generating.

What a hostile or broken vendor cannot do, on either transport (the table in docs/edge.md compares them with
h11 and aiohttp): hold an attempt past `deadline_s` (the transport's overall deadline, which also ends a
stream that drips a byte per idle timeout), make the edge buffer more than `max_response_bytes` of a reply
(per LLM, default 32 MiB, checked against content-length up front and against the decoded size of a gzip or
deflate body), or send response headers beyond `MAX_HEADER_BYTES` / `MAX_HEADERS` (aiohttp: its own per-line
bound times `MAX_HEADERS`). Both ask for `accept-encoding: identity` and decode a compressed reply anyway
(`upstream_decoding.py`), so the client always gets an identity body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from .errors import UpstreamError
from .upstream_decoding import ContentDecoder, content_decoder, decode_body, response_too_large

__all__ = [
    "DEFAULT_DEADLINE_S",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "AiohttpTransport",
    "ReplyCloser",
    "UpstreamReply",
    "UpstreamRequest",
    "UpstreamTransport",
    "deadline_exceeded",
    "headers_too_large",
    "read_failed",
    "response_too_large",
    "status_is_retryable",
    "timed_out",
]

DEFAULT_MAX_RESPONSE_BYTES = 32 << 20
"""A reply's bound when the LLM sets none (`LLMConfig.max_response_bytes`)."""
DEFAULT_DEADLINE_S = 600.0
"""An attempt's overall bound, connect to last byte (`EDGE_UPSTREAM_DEADLINE_S`)."""
MAX_HEADER_BYTES = 64 << 10
"""Bound on one response head (status line and headers), as h11's `max_incomplete_event_size` bounds it."""
MAX_HEADERS = 100
"""Bound on the number of response headers (aiohttp's default is 128, CPython's http.client's 100)."""

_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_SKIP_AUTO_HEADERS = frozenset({"accept", "accept-encoding", "user-agent"})
_MAX_FIELD_BYTES = 8190
"""aiohttp's per-line bound (status line, one header), its default."""
_CLOCK_SLACK_S = 0.05
"""aiohttp's total timer may fire a hair before our own reading of the deadline (no rounding below 5 s)."""


def status_is_retryable(status: int) -> bool:
    return status in _RETRYABLE_STATUSES


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    stream: bool
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 60.0
    idle_stream_timeout_s: float = 60.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    """Bound on the reply's body as the edge sees it (decoded); a stream's total counts too."""


class ReplyCloser(Protocol):
    """A transport's handle on an open stream: `close()` returns the connection to the pool when the stream was
    read to its end, else closes it (so the vendor sees the disconnect and stops generating)."""

    def close(self) -> None: ...


@dataclass(slots=True)
class UpstreamReply:
    """A vendor's answer. For streams `body` is empty and `chunks` yields raw bytes until `aclose()`."""

    status_code: int
    headers: dict[str, str]
    body: bytes = b""
    chunks: AsyncIterator[bytes] | None = None
    closer: ReplyCloser | None = field(default=None, repr=False)

    async def aclose(self) -> None:
        if self.closer is not None:
            self.closer.close()


class _AiohttpCloser:
    __slots__ = ("response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    def close(self) -> None:
        _finish(self.response)


def _finish(response: aiohttp.ClientResponse) -> None:
    """Return the connection to the pool when the body was read to its end, else close it."""
    if response.content.at_eof():
        response.release()
    else:
        response.close()


class UpstreamTransport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamReply: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """One pooled `aiohttp.ClientSession` (its own `TCPConnector`) per upstream origin, created on first use.

    Why aiohttp and not httpx: httpcore's pool checks every pooled connection on every request (`has_expired`
    polls each socket through anyio's attribute lookups), so a call's CPU grows with the number of keep-alive
    connections; at 32 concurrent requests that was half of the edge's CPU per request and made a bare
    Starlette + httpx pass-through cost ~2-3 ms CPU per request on this box (`bench/bench_edge.py`). aiohttp's
    connector hands out an idle connection in O(1) and parses with its C parser.

    Nothing is added that a gateway does not want: no cookie jar, `accept-encoding: identity` (vendors answer
    uncompressed, as SSE relaying needs; a compressed reply is decoded with a bound, not by aiohttp), no
    `user-agent`/`accept` defaults, no redirects. Idle connections are bounded by `max_connections` (aiohttp has
    no separate idle limit) and dropped after `keepalive_expiry_s`, sooner than a vendor's load balancer would.
    Bounds: aiohttp's `total` timeout is the attempt's deadline (it covers reading the body and a stream),
    `max_headers` headers of at most 8190 bytes each, and the body read here up to the request's
    `max_response_bytes`.
    """

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        keepalive_expiry_s: float = 30.0,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._max_connections = max_connections
        self._keepalive_expiry_s = keepalive_expiry_s
        self.deadline_s = deadline_s
        self._max_headers = max_headers
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}

    def _session_for(self, url: str) -> aiohttp.ClientSession:
        origin = url[: url.find("/", url.find("//") + 2)] if url.count("/") > 2 else url
        session = self._sessions.get(origin)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=self._keepalive_expiry_s
            )
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=_SKIP_AUTO_HEADERS,
                trust_env=False,
                max_line_size=_MAX_FIELD_BYTES,
                max_field_size=_MAX_FIELD_BYTES,
                max_headers=self._max_headers,
            )
            self._sessions[origin] = session
        return session

    def _timeout(self, connect_s: float, first_byte_s: float) -> aiohttp.ClientTimeout:
        """`total` is the attempt's deadline; `connect` bounds waiting for a pooled connection plus connecting;
        `sock_read` the wait for the headers and every read after (switched to the idle timeout once a stream's
        first chunk is in). Cached: the timeouts are per LLM, so there are few distinct pairs."""
        key = (connect_s, first_byte_s)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=self.deadline_s, connect=connect_s, sock_connect=connect_s, sock_read=first_byte_s
            )
            self._timeouts[key] = timeout
        return timeout

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        session = self._session_for(request.url)
        timeout = self._timeout(request.connect_timeout_s, request.first_byte_timeout_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        response = await self._request(session, request, timeout, deadline)
        reply_headers = {k.lower(): v for k, v in response.headers.items()}
        limit = request.max_response_bytes
        try:
            decoder = content_decoder(reply_headers, limit)
        except UpstreamError:
            response.close()
            raise
        if not request.stream or response.status >= 400:
            body = await self._read_whole(response, limit, decoder, deadline)
            return UpstreamReply(response.status, reply_headers, body)
        return UpstreamReply(
            response.status,
            reply_headers,
            b"",
            _iter_stream(response, request.idle_stream_timeout_s, limit, decoder, self.deadline_s, deadline),
            _AiohttpCloser(response),
        )

    async def _request(
        self, session: aiohttp.ClientSession, request: UpstreamRequest, timeout: aiohttp.ClientTimeout, deadline: float
    ) -> aiohttp.ClientResponse:
        """The request sent and the response head read (`accept-encoding: identity`, no redirects); aiohttp's
        exceptions as `UpstreamError`."""
        headers = {k: v for k, v in request.headers.items() if k.lower() != "accept-encoding"}
        headers["accept-encoding"] = "identity"
        try:
            return await session.request(
                request.method,
                request.url,
                headers=headers,
                data=request.body,
                timeout=timeout,
                allow_redirects=False,
            )
        except aiohttp.ConnectionTimeoutError:
            raise self._timed_out(asyncio.get_running_loop(), deadline, "connecting to the upstream") from None
        except TimeoutError:  # aiohttp.ServerTimeoutError is one
            raise self._timed_out(
                asyncio.get_running_loop(), deadline, "waiting for the upstream's first byte"
            ) from None
        except aiohttp.ClientResponseError as exc:  # the response head did not parse
            raise _invalid_head(exc.message) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(
                502, f"upstream unreachable: {type(exc).__name__}", retryable=True, code="upstream_unreachable"
            ) from None

    async def _read_whole(
        self, response: aiohttp.ClientResponse, limit: int, decoder: ContentDecoder | None, deadline: float
    ) -> bytes:
        """A full reply's body within `limit`, decoded; the connection released, or closed on any failure."""
        try:
            body = await _read_bounded(response, limit)
            if decoder is not None:
                body = decode_body(decoder, body)
        except TimeoutError:  # aiohttp.ServerTimeoutError is one
            response.close()
            raise self._timed_out(
                asyncio.get_running_loop(), deadline, "waiting for the upstream's first byte"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            response.close()
            raise read_failed(exc) from None
        except BaseException:
            response.close()  # cancelled (client left), too large: drop the connection, the vendor stops
            raise
        response.release()
        return body

    def _timed_out(self, loop: asyncio.AbstractEventLoop, deadline: float, what: str) -> UpstreamError:
        return deadline_exceeded(self.deadline_s) if loop.time() >= deadline - _CLOCK_SLACK_S else timed_out(what)

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


def _invalid_head(message: str) -> UpstreamError:
    if message.startswith(("Got more than", "Too many headers")):
        return headers_too_large(message[:200])
    return UpstreamError(
        502,
        f"upstream sent an invalid HTTP response ({message[:200]})",
        retryable=True,
        code="upstream_invalid_response",
    )


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, refusing one whose content-length or actual size exceeds `limit`."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise response_too_large(limit)
    content = response.content
    parts: list[bytes] = []
    size = 0
    while True:
        piece = await content.readany()
        if not piece:
            break
        size += len(piece)
        if size > limit:
            raise response_too_large(limit)
        parts.append(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _arm_idle_timeout(response: aiohttp.ClientResponse, idle_timeout_s: float) -> None:
    """After a stream's first bytes, its reads wait at most the idle timeout (re-armed on every read)."""
    connection = response.connection
    if connection is not None and connection.protocol is not None:
        connection.protocol.read_timeout = idle_timeout_s


async def _iter_stream(
    response: aiohttp.ClientResponse,
    idle_timeout_s: float,
    limit: int,
    decoder: ContentDecoder | None,
    deadline_s: float,
    deadline: float,
) -> AsyncIterator[bytes]:
    first = True
    size = 0
    loop = asyncio.get_running_loop()
    try:
        async for piece in response.content.iter_any():
            if first:
                _arm_idle_timeout(response, idle_timeout_s)
                first = False
            size += len(piece)
            if size > limit:
                raise response_too_large(limit)
            if decoder is None:
                yield piece
            else:
                for out in decoder.feed(piece):
                    yield out
                    if loop.time() >= deadline:
                        raise deadline_exceeded(deadline_s)
            if loop.time() >= deadline:  # aiohttp's total timer only interrupts a read that waits
                raise deadline_exceeded(deadline_s)
        if decoder is not None:
            decoder.finish()
    except TimeoutError:  # aiohttp.ServerTimeoutError is one
        if loop.time() >= deadline - _CLOCK_SLACK_S:
            raise deadline_exceeded(deadline_s) from None
        raise timed_out(
            "waiting for the next stream chunk (idle timeout)" if not first else "waiting for the upstream's first byte"
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamError(
            502, f"upstream stream broken: {type(exc).__name__}", retryable=True, code="upstream_stream_broken"
        ) from None
    finally:
        _finish(response)


def read_failed(exc: BaseException) -> UpstreamError:
    """The connection failed while the response was being read (both transports say it the same way)."""
    return UpstreamError(
        502,
        f"upstream connection failed while reading: {type(exc).__name__}",
        retryable=True,
        code="upstream_unreachable",
    )


def timed_out(what: str) -> UpstreamError:
    return UpstreamError(504, f"upstream timed out {what}", retryable=True, type="timeout", code="upstream_timeout")


def deadline_exceeded(deadline_s: float) -> UpstreamError:
    """The attempt ran past the transport's overall deadline. Not retried: a vendor that dripped for the whole
    deadline would only do it again, and the client has waited long enough."""
    return UpstreamError(
        504,
        f"upstream did not finish within the deadline of {deadline_s:g} s",
        retryable=False,
        type="timeout",
        code="upstream_deadline_exceeded",
    )


def headers_too_large(detail: str) -> UpstreamError:
    """The response head exceeded the transport's bounds (size or count)."""
    return UpstreamError(
        502, f"upstream response headers too large ({detail})", retryable=False, code="upstream_headers_too_large"
    )
