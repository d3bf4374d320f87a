"""How the edge reaches vendors: one pooled `httpx.AsyncClient` per upstream origin behind a one-method transport.

The transport contract is `send(UpstreamRequest) -> UpstreamReply` (httpx's own `handle_async_request`
shape). Everything third-party stops here: httpx exceptions are mapped to `UpstreamError` with the status
the client will see (502 for network failures, 504 for timeouts) and whether a retry may help, so the
pipeline never imports httpx.

Timeouts: `connect_timeout_s` bounds the TCP/TLS connect; `first_byte_timeout_s` bounds the wait for the
response headers and, for streams, for the first chunk; after the first chunk, `idle_stream_timeout_s`
bounds the gap between chunks. httpcore reads the read timeout from the request's `timeout` extension on
every read, which is what lets the idle timeout take over once the first chunk is in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from .errors import UpstreamError

__all__ = ["HttpxTransport", "UpstreamReply", "UpstreamRequest", "UpstreamTransport", "status_is_retryable"]

_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


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


@dataclass(slots=True)
class UpstreamReply:
    """A vendor's answer. For streams `body` is empty and `chunks` yields raw bytes until `aclose()`."""

    status_code: int
    headers: dict[str, str]
    body: bytes = b""
    chunks: AsyncIterator[bytes] | None = None
    _response: httpx.Response | None = field(default=None, repr=False)

    async def aclose(self) -> None:
        if self._response is not None:
            await self._response.aclose()


class UpstreamTransport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamReply: ...

    async def aclose(self) -> None: ...


class HttpxTransport:
    """One `httpx.AsyncClient` per upstream origin, created on first use and kept for the process lifetime."""

    def __init__(self, *, max_connections: int = 1000, max_keepalive: int = 200) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_keepalive)

    def _client_for(self, url: str) -> httpx.AsyncClient:
        origin = url[: url.find("/", url.find("//") + 2)] if url.count("/") > 2 else url
        client = self._clients.get(origin)
        if client is None:
            client = httpx.AsyncClient(limits=self._limits, follow_redirects=False, trust_env=False)
            self._clients[origin] = client
        return client

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        client = self._client_for(request.url)
        timeout = httpx.Timeout(
            connect=request.connect_timeout_s,
            read=request.first_byte_timeout_s,
            write=request.first_byte_timeout_s,
            pool=request.connect_timeout_s,
        )
        built = client.build_request(
            request.method, request.url, headers=request.headers, content=request.body, timeout=timeout
        )
        try:
            response = await client.send(built, stream=True)
        except httpx.TimeoutException as exc:
            raise _map_timeout(exc) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(
                502, f"upstream unreachable: {type(exc).__name__}", retryable=True, code="upstream_unreachable"
            ) from None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers.raw}
        if not request.stream or response.status_code >= 400:
            try:
                body = await response.aread()
            except httpx.TimeoutException as exc:
                raise _map_timeout(exc) from None
            except httpx.HTTPError as exc:
                raise UpstreamError(
                    502,
                    f"upstream connection failed while reading: {type(exc).__name__}",
                    retryable=True,
                    code="upstream_unreachable",
                ) from None
            finally:
                await response.aclose()
            return UpstreamReply(response.status_code, headers, body)
        timeouts = built.extensions["timeout"]
        return UpstreamReply(
            response.status_code,
            headers,
            b"",
            _iter_stream(response, timeouts, request.idle_stream_timeout_s),
            response,
        )

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


async def _iter_stream(response: httpx.Response, timeouts: dict, idle_timeout_s: float) -> AsyncIterator[bytes]:
    first = True
    try:
        async for piece in response.aiter_raw():
            if first:
                timeouts["read"] = idle_timeout_s  # httpcore re-reads this on every read
                first = False
            yield piece
    except httpx.TimeoutException as exc:
        raise _map_timeout(exc, streaming=not first) from None
    except httpx.HTTPError as exc:
        raise UpstreamError(
            502, f"upstream stream broken: {type(exc).__name__}", retryable=True, code="upstream_stream_broken"
        ) from None
    finally:
        await response.aclose()


def _map_timeout(exc: httpx.TimeoutException, streaming: bool = False) -> UpstreamError:
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        what = "connecting to the upstream"
    elif streaming:
        what = "waiting for the next stream chunk (idle timeout)"
    else:
        what = "waiting for the upstream's first byte"
    return UpstreamError(504, f"upstream timed out {what}", retryable=True, type="timeout", code="upstream_timeout")
