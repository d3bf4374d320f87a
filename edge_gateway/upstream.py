"""How the edge reaches vendors: one pooled httpx transport per upstream origin behind a one-method transport.

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
    """One pooled `httpx.AsyncHTTPTransport` per upstream origin, created on first use, kept for the process.

    Why the transport and not `httpx.AsyncClient`: the client's layers (auth flows, redirects, cookies, event
    hooks, default headers, mounts) do nothing for a gateway that sets every header itself and never follows
    redirects, and they cost about a third of the CPU of a call (measured with `bench/bench_edge.py`). The
    transport still maps httpcore's exceptions to httpx's, which `_map_timeout` and `send` turn into
    `UpstreamError`s. No `accept-encoding` is sent, so vendors answer uncompressed, as SSE relaying needs.

    `max_keepalive` bounds the idle connections kept per origin; `keepalive_expiry_s` drops idle ones sooner
    than a vendor's load balancer would (a connection closed by the far side is detected and replaced).
    """

    def __init__(
        self, *, max_connections: int = 1000, max_keepalive: int = 200, keepalive_expiry_s: float = 30.0
    ) -> None:
        self._transports: dict[str, httpx.AsyncHTTPTransport] = {}
        self._limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive,
            keepalive_expiry=keepalive_expiry_s,
        )

    def _transport_for(self, url: str) -> httpx.AsyncHTTPTransport:
        origin = url[: url.find("/", url.find("//") + 2)] if url.count("/") > 2 else url
        transport = self._transports.get(origin)
        if transport is None:
            transport = httpx.AsyncHTTPTransport(limits=self._limits, trust_env=False)
            self._transports[origin] = transport
        return transport

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        transport = self._transport_for(request.url)
        timeouts = {
            "connect": request.connect_timeout_s,
            "read": request.first_byte_timeout_s,
            "write": request.first_byte_timeout_s,
            "pool": request.connect_timeout_s,
        }
        built = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.body, extensions={"timeout": timeouts}
        )
        try:
            response = await transport.handle_async_request(built)
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
        return UpstreamReply(
            response.status_code,
            headers,
            b"",
            _iter_stream(response, timeouts, request.idle_stream_timeout_s),
            response,
        )

    async def aclose(self) -> None:
        transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            await transport.aclose()


async def _iter_stream(response: httpx.Response, timeouts: dict, idle_timeout_s: float) -> AsyncIterator[bytes]:
    first = True
    try:
        async for piece in response.stream:  # type: ignore[union-attr]
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
