"""What `H1Transport` sends: the origin and target of a URL, and the request head framed from the caller's headers.

Kept apart from the connection and the pool because it is pure (no I/O, no state): a URL is parsed once per
distinct URL (cached), and a request head is refused before any byte goes out when a header could inject a line.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from .errors import UpstreamError
from .upstream import UpstreamRequest

__all__ = ["Target", "parse_url", "request_head"]

_NOT_FROM_CALLER = frozenset(
    {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade", "accept-encoding"}
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class Target:
    """Where a request goes: the pool's key (`origin`), how to connect, and what the request line names."""

    __slots__ = ("origin", "host", "port", "tls", "host_header", "target")

    def __init__(self, origin: tuple[str, str, int], tls: bool, host_header: str, target: str) -> None:
        self.origin = origin
        _, self.host, self.port = origin
        self.tls = tls
        self.host_header = host_header
        self.target = target


@lru_cache(maxsize=1024)
def parse_url(url: str) -> Target:
    """`url` as a `Target`; `ValueError` for anything but an http(s) URL with a host."""
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
    return Target((scheme, host, port), scheme == "https", host_header, target)


def _injects(name: str, value: str) -> bool:
    """A header that would end its line early, smuggle a NUL, or hide a second name in its own."""
    return "\r" in name or "\n" in name or "\r" in value or "\n" in value or "\x00" in value or ":" in name


def request_head(request: UpstreamRequest, target: Target) -> bytes:
    """The request line and headers, Latin-1; `UpstreamError` for a header holding CR, LF, NUL or non-Latin-1."""
    lines = [
        f"{request.method} {target.target} HTTP/1.1\r\nhost: {target.host_header}\r\naccept-encoding: identity\r\n"
    ]
    for name, value in request.headers.items():
        if name.lower() in _NOT_FROM_CALLER:
            continue
        if _injects(name, value):
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
