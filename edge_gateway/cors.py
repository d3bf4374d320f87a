"""CORS for browser clients (`EDGE_CORS_ALLOW_ORIGINS`): preflights answered, real answers readable by the page.

Why: a browser app (the openai SDK with `dangerouslyAllowBrowser`, Anthropic's with
`anthropic-dangerous-direct-browser-access`, the Vercel AI SDK, a playground page) calling an edge of another
origin sends a preflight `OPTIONS` first, with no key, and reads an answer only when it names the page's origin.
Off by default: the front is then not built at all (`app.create_app`), and the request path is unchanged. The
setting is validated at start (`settings.parse_origins`: exact origins as browsers send them, or `*`).

On, for a request with an `Origin` header from an allowed origin:

- a preflight (`OPTIONS` with `Access-Control-Request-Method`), on any path, is answered here with 204 before
  anything else runs (no authentication: a preflight carries no key; no rate limit, no analytics row): the origin
  (or `*`), the methods, the requested headers (echoed when each is a header token and the list is at most
  `_MAX_REQUESTED` bytes, else `_FIXED_HEADERS`), `Access-Control-Max-Age`, `Vary`;
- every other answer (success, each error shape, streams) gets `Access-Control-Allow-Origin`, `Vary: Origin` and
  `Access-Control-Expose-Headers` (the request id and `retry-after`, which the SDKs read).

A preflight from an origin not allowed is a 403 without CORS headers (the browser refuses the call); a real
request from one is served as without CORS, and the browser keeps its answer from the page. Never
`Access-Control-Allow-Credentials`: keys travel in headers, not cookies.

Cost with CORS on: one scan of the request's headers for `origin`; a request without one (a server-side
client) goes on unchanged, except for this front's coroutine level.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .errors import error_body
from .rate_headers import ANTHROPIC_RATE_HEADERS, OPENAI_RATE_HEADERS

__all__ = ["Cors"]

Send = Callable[[dict[str, Any]], Awaitable[None]]

_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
_FIXED_HEADERS = (
    b"authorization, x-api-key, x-goog-api-key, api-key, anthropic-version, anthropic-beta, "
    b"anthropic-dangerous-direct-browser-access, openai-beta, openai-organization, openai-project, content-type, "
    b"content-encoding, x-request-id, x-stainless-arch, x-stainless-lang, x-stainless-os, "
    b"x-stainless-package-version, x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, "
    b"x-stainless-timeout, x-stainless-helper-method, x-stainless-stream-helper, x-stainless-async"
)
"""Allowed when a preflight's `Access-Control-Request-Headers` cannot be echoed: what the SDKs send."""
_EXPOSE = b", ".join(
    (
        b"x-request-id",
        b"request-id",
        b"retry-after",
        *(name for names in (*OPENAI_RATE_HEADERS, *ANTHROPIC_RATE_HEADERS) for name in names),
    )
)
"""Response headers a page may read besides the safelisted ones: the request id (the SDKs' `request_id`; Anthropic's
`request-id`), `retry-after` of a 429 (the SDKs wait by it) and the rate-limit headers of an app with limits
(`rate_headers`), by which a page paces itself."""
MAX_AGE_S = 600
"""How long a browser may reuse a preflight's answer (Chromium caps it at 7200, Firefox at 86400)."""
_MAX_REQUESTED = 2048
"""Longest `Access-Control-Request-Headers` echoed back (an SDK asks for ~12 names, ~250 bytes)."""
_TOKEN_LIST = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*,[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")
"""A comma-separated list of header names (RFC 9110 tokens)."""
_REFUSED_BODY = error_body(
    "this origin may not call the edge from a browser (EDGE_CORS_ALLOW_ORIGINS)",
    "invalid_request_error",
    "cors_origin_not_allowed",
)


class Cors:
    """ASGI front of the edge's app when `EDGE_CORS_ALLOW_ORIGINS` is set (see the module docstring)."""

    def __init__(self, app: Any, origins: Iterable[str]) -> None:
        self.app = app
        allowed = tuple(origins)
        self.any = allowed == ("*",)
        self.origins = frozenset(o.encode("latin-1") for o in allowed)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
                break
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = self.any or origin in self.origins
        if scope["method"] == "OPTIONS" and _requested(scope["headers"], b"access-control-request-method"):
            await self._preflight(scope, send, origin if allowed else None)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return
        extra = [
            (b"access-control-allow-origin", b"*" if self.any else origin),
            (b"access-control-expose-headers", _EXPOSE),
            (b"vary", b"Origin"),
        ]

        async def cors_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, cors_send)

    @property
    def state(self) -> Any:
        return self.app.state

    @property
    def router(self) -> Any:
        return self.app.router

    async def _preflight(self, scope: dict[str, Any], send: Send, origin: bytes | None) -> None:
        """204 with what the browser asked for, or, for an origin not allowed, 403 without CORS headers."""
        if origin is None:
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(_REFUSED_BODY)),
                (b"vary", b"Origin"),
            ]
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": _REFUSED_BODY})
            return
        requested = _requested(scope["headers"], b"access-control-request-headers")
        headers = [
            (b"access-control-allow-origin", b"*" if self.any else origin),
            (b"access-control-allow-methods", _METHODS),
            (b"access-control-allow-headers", _allowed_headers(requested)),
            (b"access-control-max-age", b"%d" % MAX_AGE_S),
            (b"vary", b"Origin, Access-Control-Request-Headers"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _requested(headers: Iterable[tuple[bytes, bytes]], wanted: bytes) -> bytes | None:
    for name, value in headers:
        if name == wanted:
            return value
    return None


def _allowed_headers(requested: bytes | None) -> bytes:
    """The requested header names, lower-cased, when they are a list of tokens of bounded length; else the fixed
    list (a browser that asked for something else then refuses the call, as it should)."""
    if requested is None or not requested.strip():
        return _FIXED_HEADERS
    requested = requested.strip()
    if len(requested) > _MAX_REQUESTED or _TOKEN_LIST.fullmatch(requested) is None:
        return _FIXED_HEADERS
    return b", ".join(name.strip() for name in requested.lower().split(b","))
