"""The rate-limit headers of an answer to a caller whose app has rate limits, in the caller's dialect.

Why: without them a client learns its limit only from the 429, and cannot pace itself before. OpenAI's API (and
LiteLLM's proxy, for its own limits) sends `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` with the reset
as a duration (`20ms`, `1s`, `6m0s`); Anthropic's sends `anthropic-ratelimit-{requests,tokens}-{limit,remaining,
reset}` with the reset as an RFC 3339 time. Google's API sends none: Gemini callers get the OpenAI-style ones,
which their SDK ignores and a client reading raw headers knows from every other gateway (docs/edge.md).

Per kind (requests, tokens) the tightest of the app's and the user's windows is told: the smaller remaining, its
limit and its reset. Built once per request in `policy.admit` from what its check of the sliding windows found
(`RateLimiter.standing` is that check: no second look, no I/O), or at the edge's own 429, and kept on the
`Exchange`; an app without limits costs nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from .ratelimit import RateLimiter, Standing

__all__ = [
    "ANTHROPIC_RATE_HEADERS",
    "OPENAI_RATE_HEADERS",
    "RATE_HEADER_PREFIXES",
    "Header",
    "rate_headers",
    "refused_headers",
]

Header = tuple[bytes, bytes]
_Limit = tuple[str, int, str, bool]
"""(window key, limit, what it counts, counts tokens): `policy._limits`."""
RATE_HEADER_PREFIXES = (b"x-ratelimit-", b"anthropic-ratelimit-")
"""Names the edge owns when it sends its own: a vendor's or a plugin's of these names is not passed on beside them."""

OPENAI_RATE_HEADERS = (
    (b"x-ratelimit-limit-requests", b"x-ratelimit-remaining-requests", b"x-ratelimit-reset-requests"),
    (b"x-ratelimit-limit-tokens", b"x-ratelimit-remaining-tokens", b"x-ratelimit-reset-tokens"),
)
ANTHROPIC_RATE_HEADERS = (
    (
        b"anthropic-ratelimit-requests-limit",
        b"anthropic-ratelimit-requests-remaining",
        b"anthropic-ratelimit-requests-reset",
    ),
    (b"anthropic-ratelimit-tokens-limit", b"anthropic-ratelimit-tokens-remaining", b"anthropic-ratelimit-tokens-reset"),
)
_MILLIS = [b"0s", *(b"%dms" % ms for ms in range(1, 1000)), b"1s"]
_SECONDS = [b"%ds" % s if s < 60 else b"%dm%ds" % divmod(s, 60) for s in range(181)]
"""A wait as OpenAI writes it (Go's duration format: `0s`, `20ms`, `7s`, `1m5s`), looked up: under a second in
ms, else in whole seconds (a window's wait is at most two minutes, a 429's one)."""
_LIMITS: dict[int, bytes] = {}
"""Limits as header values (an edge serves a few distinct ones)."""
_TIMES: dict[int, bytes] = {}
"""RFC 3339 times by the second, for Anthropic callers (the resets of the next two minutes, a few hundred at most)."""


def rate_headers(
    limiter: RateLimiter, limits: Sequence[_Limit], standings: Sequence[Standing], dialect: str
) -> list[Header]:
    """The headers of a request's `limits` (`policy._limits`) from their `standings` (`RateLimiter.standing`, in
    the same order, as the request's check left them: what remains once this request counts). Per kind, the
    window with the least remaining. Inlined lookups rather than helpers: this runs on every request of an app
    with limits."""
    requests: Standing | None = None
    tokens: Standing | None = None
    for (_, _, _, counts_tokens), standing in zip(limits, standings, strict=True):
        if counts_tokens:
            if tokens is None or standing[0] < tokens[0]:
                tokens = standing
        elif requests is None or standing[0] < requests[0]:
            requests = standing
    anthropic = dialect == "anthropic"
    names = ANTHROPIC_RATE_HEADERS if anthropic else OPENAI_RATE_HEADERS
    now = limiter.now() if anthropic else 0.0
    pairs: list[Header] = []
    for (limit_name, remaining_name, reset_name), found in ((names[0], requests), (names[1], tokens)):
        if found is None:
            continue
        room, limit, reset = found
        if anthropic:
            reset_value = _rfc3339(now + reset)
        elif reset < 1.0:
            reset_value = _MILLIS[int(reset * 1000.0 + 0.999)]  # rounded up (within a millisecond)
        else:
            whole = int(reset + 0.999)
            reset_value = _SECONDS[whole] if whole < 181 else b"%dm%ds" % divmod(whole, 60)
        limit_value = _LIMITS.get(limit)
        if limit_value is None:
            if len(_LIMITS) >= 4096:
                _LIMITS.clear()
            limit_value = _LIMITS[limit] = b"%d" % limit
        remaining = b"%d" % room if room >= 1.0 else b"0"  # %d truncates: the whole requests or tokens left
        pairs += ((limit_name, limit_value), (remaining_name, remaining), (reset_name, reset_value))
    return pairs


def refused_headers(
    limiter: RateLimiter, limits: Sequence[_Limit], dialect: str, refused: str, wait: float
) -> list[Header]:
    """The headers of a 429 of the edge's own limits: the limit that `refused` has 0 remaining and resets in the
    429's `wait` (its `retry-after`), the others tell what remains (the refused request counts in none)."""
    standings: list[Standing] = []
    for key, limit, _, _ in limits:
        standings.append((-1.0, limit, wait) if key == refused else limiter.standing(key, limit))
    return rate_headers(limiter, limits, standings, dialect)


def _rfc3339(at: float) -> bytes:
    """A time as Anthropic writes it (RFC 3339, UTC), rounded up to the second."""
    second = math.ceil(at)
    found = _TIMES.get(second)
    if found is None:
        if len(_TIMES) >= 512:
            _TIMES.clear()
        found = _TIMES[second] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)).encode()
    return found
