"""Which of the headers a vendor's reply or a plugin hands the edge may go to the client, the length it frames,
and which statuses are final answers.

Why: the edge owns a response's framing. A response hook (`on_before_write_headers`), a short-circuit answer or an
error a plugin raises may name any header. Passed on as given, a `content-length` that is not the body's cuts the
answer short (the client reads what the header says, and the rest of the body becomes the start of its next
response on the kept-alive connection), `transfer-encoding` or `connection` change how the connection is read,
and a value with CR or LF would inject headers of its own. uvicorn refuses an invalid name or value by raising
mid-response, so one bad header of a plugin turned every answer into a 500. Here such a header is dropped (and
logged once per name), the plugin's valid ones go through, and a full answer carries the `content-length` of
the body actually sent instead of chunked framing (as vendors answer, and as the floor of the benchmarks does).

The same holds for a status a plugin chooses: uvicorn only knows 100-599 (anything else raised mid-response and
closed the connection), and a 1xx is an interim answer (101 tells the client the connection switched protocols),
so a status outside 200-599 is answered as the plugin's failure (`final_status`; the callers answer 502).
"""

from __future__ import annotations

import logging
import re

__all__ = ["content_length", "final_status", "response_headers"]

log = logging.getLogger("fjordgate.edge.headers")

_FRAMING = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
    }
)
"""Hop-by-hop and framing headers (RFC 9110 7.6.1, RFC 9112): the edge's own server decides them."""
_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9a-z-]+")
"""A header name is a token (RFC 9110 5.6.2), lower-cased here."""
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
"""Control characters other than HTAB: CR and LF would end the header and start another."""
_NO_BODY = frozenset({204, 304})
_warned: set[str] = set()
_CHECKED_MAX = 4096
_UNCHECKED = (b"", b"")
_checked: dict[tuple[str, str], tuple[bytes, bytes] | None] = {}


def response_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """`headers` as ASGI pairs, without what would break the exchange (see the module docstring).

    Each (name, value) is checked once: most responses carry the same few headers (a content type, a
    retry-after), so the verdicts are kept, at most `_CHECKED_MAX` of them (a plugin that varies its values per
    request only costs the check again)."""
    pairs = []
    for item in headers.items():
        pair = _checked.get(item, _UNCHECKED)
        if pair is _UNCHECKED:
            pair = _check(*item)
            if len(_checked) >= _CHECKED_MAX:
                _checked.clear()
            _checked[item] = pair
        if pair is not None:
            pairs.append(pair)
    return pairs


def _check(key: str, value: str) -> tuple[bytes, bytes] | None:
    try:
        name = key.lower().encode("latin-1")
        raw = value.encode("latin-1")
    except (UnicodeEncodeError, AttributeError):
        _dropped(key, "not a latin-1 string")
        return None
    if name in _FRAMING:
        _dropped(key, "the edge frames its responses itself")
    elif _NAME.fullmatch(name) is None:
        _dropped(key, "not a valid header name")
    elif _BAD_VALUE.search(raw) is not None:
        _dropped(key, "a control character in its value")
    else:
        return name, raw
    return None


def final_status(status: int) -> bool:
    """Whether `status` can end an HTTP exchange: 200-599 (a 1xx is interim; the rest is not HTTP)."""
    return 200 <= status <= 599


def content_length(status: int, body: bytes) -> list[tuple[bytes, bytes]]:
    """The `content-length` header of a full answer (none for a status that has no body)."""
    return [] if status in _NO_BODY or status < 200 else [(b"content-length", b"%d" % len(body))]


def _dropped(name: str, why: str) -> None:
    if name not in _warned and len(_warned) < 1000:  # bounded: names come from plugins and vendors
        _warned.add(name)
        log.warning("response header %r not sent to the client: %s", name[:100], why)
