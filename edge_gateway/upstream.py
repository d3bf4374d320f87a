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
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from .errors import UpstreamError

__all__ = [
    "AiohttpTransport",
    "ReplyCloser",
    "UpstreamReply",
    "UpstreamRequest",
    "UpstreamTransport",
    "read_failed",
    "status_is_retryable",
    "timed_out",
]

_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_SKIP_AUTO_HEADERS = frozenset({"accept", "accept-encoding", "user-agent"})


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

    Nothing is added that a gateway does not want: no cookie jar, no automatic `accept-encoding` (vendors answer
    uncompressed, as SSE relaying needs; bodies are never decompressed here), no `user-agent`/`accept` defaults,
    no redirects. Idle connections are bounded by `max_connections` (aiohttp has no separate idle limit) and
    dropped after `keepalive_expiry_s`, sooner than a vendor's load balancer would.
    """

    def __init__(self, *, max_connections: int = 1000, keepalive_expiry_s: float = 30.0) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._max_connections = max_connections
        self._keepalive_expiry_s = keepalive_expiry_s
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
            )
            self._sessions[origin] = session
        return session

    def _timeout(self, connect_s: float, first_byte_s: float) -> aiohttp.ClientTimeout:
        """`connect` bounds waiting for a pooled connection plus connecting; `sock_read` the wait for the headers
        and every read after (switched to the idle timeout once a stream's first chunk is in). Cached: the
        timeouts are per LLM, so there are few distinct pairs."""
        key = (connect_s, first_byte_s)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=None, connect=connect_s, sock_connect=connect_s, sock_read=first_byte_s
            )
            self._timeouts[key] = timeout
        return timeout

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        session = self._session_for(request.url)
        timeout = self._timeout(request.connect_timeout_s, request.first_byte_timeout_s)
        try:
            response = await session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=timeout,
                allow_redirects=False,
            )
        except aiohttp.ConnectionTimeoutError:
            raise timed_out("connecting to the upstream") from None
        except TimeoutError:  # aiohttp.ServerTimeoutError is one
            raise timed_out("waiting for the upstream's first byte") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(
                502, f"upstream unreachable: {type(exc).__name__}", retryable=True, code="upstream_unreachable"
            ) from None
        headers = {k.lower(): v for k, v in response.headers.items()}
        if not request.stream or response.status >= 400:
            try:
                body = await response.read()
            except TimeoutError:  # aiohttp.ServerTimeoutError is one
                response.close()
                raise timed_out("waiting for the upstream's first byte") from None
            except (aiohttp.ClientError, OSError) as exc:
                response.close()
                raise read_failed(exc) from None
            except BaseException:
                response.close()  # cancelled (client left): drop the connection, the vendor stops
                raise
            response.release()
            return UpstreamReply(response.status, headers, body)
        return UpstreamReply(
            response.status,
            headers,
            b"",
            _iter_stream(response, request.idle_stream_timeout_s),
            _AiohttpCloser(response),
        )

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


async def _iter_stream(response: aiohttp.ClientResponse, idle_timeout_s: float) -> AsyncIterator[bytes]:
    first = True
    try:
        async for piece in response.content.iter_any():
            if first:
                connection = response.connection
                if connection is not None and connection.protocol is not None:
                    connection.protocol.read_timeout = idle_timeout_s  # re-armed on every read from now on
                first = False
            yield piece
    except TimeoutError:  # aiohttp.ServerTimeoutError is one
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
