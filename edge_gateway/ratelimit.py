"""Requests-per-minute and tokens-per-minute limits, per app and per user within an app.

A sliding window approximated from two fixed one-minute windows (the previous minute's count weighted by how
much of it still overlaps the last 60 s), the scheme nginx and Cloudflare use: O(1) memory and time per key,
no timestamps per request, and no burst of 2x at a window edge.

Requests are counted when admitted; tokens are counted after the call (they are known only then), so a TPM
limit admits a request while the window is under the limit and the request's own tokens may overshoot once.

Shared by the edges of a namespace, approximately: each window counts this edge's own increments ("local")
plus the increments the namespace's other edges reported for the same fixed minute ("remote"), and a check
compares local + remote with the limit. `edge_gateway.sync.ratelimit_share` takes this edge's increments
(`take_increments`) every `EDGE_RATELIMIT_SHARE_S` and feeds in its peers' (`add_remote`) over core NATS; the
request path itself does no I/O and awaits nothing. So the limit holds for the namespace up to what the other
edges admitted in the last share interval (plus NATS latency), which they have not reported yet: about one
interval of traffic per edge. Without NATS (or with sharing off) an edge enforces the limit on its own traffic.

With NATS, both kinds are also leased per fixed minute from the control plane's ledger (`RateLease`, taken in
`policy.admit`): strict across the edges, with these windows as the check that decides alone while the ledger is
unreachable (docs/governance.md#rate-limits).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

__all__ = ["RateLease", "RateLimiter", "SlidingWindow", "Standing"]

_WINDOW_S = 60.0
Standing = tuple[float, int, float]
"""(what remains, negative past the limit; the limit; the seconds until what remains grows by one):
`SlidingWindow.standing`."""


def _window_start(now: float) -> float:
    return now - (now % _WINDOW_S)


class SlidingWindow:
    """One key's counts for the current and the previous fixed minute, this edge's and its peers' apart.

    The local and remote parts are kept apart so this edge reports only its own increments (a peer's count is
    never echoed back and counted twice); `reported` is how much of `current` went into a report already.
    """

    __slots__ = (
        "window_start",
        "current",
        "previous",
        "remote_current",
        "remote_previous",
        "reported",
        "unreported_previous",
    )

    def __init__(self, now: float) -> None:
        self.window_start = _window_start(now)
        self.current = 0
        self.previous = 0
        self.remote_current = 0
        self.remote_previous = 0
        self.reported = 0
        self.unreported_previous = 0

    def _roll(self, now: float) -> None:
        start = now - (now % _WINDOW_S)  # inlined: this runs on every check
        if start != self.window_start:
            if start - self.window_start == _WINDOW_S:
                self.previous = self.current
                self.remote_previous = self.remote_current
                self.unreported_previous = self.current - self.reported
            else:
                self.previous = self.remote_previous = self.unreported_previous = 0
            self.current = self.remote_current = self.reported = 0
            self.window_start = start

    def used(self, now: float) -> float:
        self._roll(now)
        overlap = 1.0 - (now - self.window_start) / _WINDOW_S
        return (self.previous + self.remote_previous) * overlap + self.current + self.remote_current

    def retry_after(self, now: float, limit: int, amount: int) -> float:
        """Seconds until `amount` more fits under `limit`, with no more traffic meanwhile.

        When the current minute alone is over, the minute's turn is not enough: it then becomes the previous one
        and still weighs in full, so a client that retried at the turn was refused again. It must also slide out
        until `amount` fits: `current * (1 - t/60) + amount <= limit` past the turn (`amount` is at most `limit`,
        so within that minute)."""
        self._roll(now)
        into = now - self.window_start
        current = self.current + self.remote_current
        if current + amount > limit:
            slide = (current + amount - limit) * _WINDOW_S / current if current else 0.0
            return _WINDOW_S - into + min(slide, _WINDOW_S)
        previous = self.previous + self.remote_previous
        if previous == 0:
            return 0.0
        # previous * (1 - (into + t)/60) + current + amount <= limit  ->  solve for t
        needed = (previous * (1.0 - into / _WINDOW_S) + current + amount - limit) * _WINDOW_S
        return max(0.0, needed / previous)

    def standing(self, now: float, limit: int, amount: int) -> Standing:
        """(what remains under `limit` once `amount` more is counted in the current minute, negative when it does
        not fit; `limit`; the seconds until what remains grows by one, 0 when nothing is counted): the check of a
        request and its rate-limit headers (`rate_headers`) in one pass. The wait assumes no more traffic: the
        previous minute's count slides out at `previous / 60` per second, then the current one's after the turn;
        by two minutes everything has."""
        into = now - self.window_start
        if not 0.0 <= into < _WINDOW_S:  # the minute turned since the last check (or the clock went back)
            self._roll(now)
            into = now - self.window_start
        current = self.current + self.remote_current + amount
        previous = self.previous + self.remote_previous
        sliding = previous * (1.0 - into / _WINDOW_S) if previous else 0.0  # what the previous minute still weighs
        used = sliding + current
        if used <= 0:
            return limit, limit, 0.0
        room = limit - used
        # how far the count must fall for one more to remain: to the next whole number, or back under the limit
        need = (1.0 - room % 1.0) if room >= 0 else 1.0 - room
        if need <= sliding:
            return room, limit, need * _WINDOW_S / previous
        need -= sliding
        if need <= current:
            return room, limit, _WINDOW_S - into + need * _WINDOW_S / current
        return room, limit, 2 * _WINDOW_S - into

    def add(self, now: float, amount: int) -> None:
        self._roll(now)
        self.current += amount

    def add_remote(self, now: float, amount: int, previous: bool) -> None:
        """Count a peer's increment in the current fixed minute, or in the previous one when `previous`."""
        self._roll(now)
        if previous:
            self.remote_previous += amount
        else:
            self.remote_current += amount

    def take_unreported(self, now: float) -> tuple[int, int]:
        """(local increments of the current minute, of the previous minute) not reported yet; marks them reported.

        The previous minute's part is what was counted just before the minute turned and not reported by then.
        """
        self._roll(now)
        current = self.current - self.reported
        self.reported = self.current
        previous = self.unreported_previous
        self.unreported_previous = 0
        return current, previous


class RateLease:
    """What this edge may admit under one limit in one fixed minute, leased from the control plane's ledger
    (docs/governance.md): requests for an rpm limit, tokens for a tpm one; the namespace's edges together are
    granted at most the limit. A tpm request takes its token bound and gives back what it did not use."""

    __slots__ = ("key", "limit", "window_start", "granted", "used")

    def __init__(self, key: str, limit: int, window_start: int) -> None:
        self.key, self.limit, self.window_start = key, limit, window_start
        self.granted = 0
        self.used = 0

    def take(self, amount: int = 1) -> bool:
        if self.used + amount <= self.granted:
            self.used += amount
            return True
        return False

    def lacks(self, amount: int) -> int:
        return max(0, self.used + amount - self.granted)

    def settle(self, taken: int, actual: int) -> None:
        """Swap what a request took for what it used (the rest is free again in this edge's part of the minute;
        more than it took stays counted, so the lease refuses until the minute ends)."""
        self.used = max(0, self.used - taken + actual)


class RateLimiter:
    """Named windows (`app:3:rpm`, `user:3:9:tpm`, ...) created on first use."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._windows: dict[str, SlidingWindow] = {}
        self._clock = clock
        self._unreported: dict[str, SlidingWindow] | None = None
        """Windows with local increments since the last `take_increments`; None until sharing starts (so an
        edge that never shares keeps no such record)."""
        self.leasing = False
        """Set by the sync service when the edge talks to NATS: rpm limits are then also leased per minute."""
        self._leases: dict[str, RateLease] = {}

    def rate_lease(self, key: str, limit: int) -> RateLease:
        """This minute's lease of `key` (a new minute starts with nothing granted)."""
        start = int(_window_start(self._clock()))
        lease = self._leases.get(key)
        if lease is None or lease.window_start != start:
            lease = self._leases[key] = RateLease(key, limit, start)
        lease.limit = limit
        return lease

    def seconds_to_next_window(self) -> float:
        now = self._clock()
        return max(1.0, _WINDOW_S - (now - _window_start(now)))

    def now(self) -> float:
        return self._clock()

    def standing(self, key: str, limit: int, amount: int = 0) -> Standing:
        """`SlidingWindow.standing` of `key`'s window: the check that also tells the rate-limit headers."""
        now = self._clock()
        return self._window(key, now).standing(now, limit, amount)

    def _window(self, key: str, now: float) -> SlidingWindow:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = SlidingWindow(now)
        return window

    def check(self, key: str, limit: int, amount: int = 1) -> float:
        """0.0 when `amount` more fits under `limit`, else the seconds to wait (nothing is recorded)."""
        now = self._clock()
        window = self._window(key, now)
        if window.used(now) + amount <= limit:
            return 0.0
        return max(window.retry_after(now, limit, amount), 1.0)

    def add(self, key: str, amount: int) -> None:
        if amount:
            now = self._clock()
            window = self._window(key, now)
            window.add(now, amount)
            if self._unreported is not None:
                self._unreported[key] = window

    def prune(self) -> int:
        """Drop windows idle for two minutes (called periodically so one-off users do not accumulate)."""
        cutoff = self._clock() - 2 * _WINDOW_S
        stale = [k for k, w in self._windows.items() if w.window_start < cutoff]
        for key in stale:
            del self._windows[key]
        for key in [k for k, lease in self._leases.items() if lease.window_start < cutoff]:
            del self._leases[key]
        return len(stale)

    # -- sharing with the namespace's other edges (edge_gateway.sync.ratelimit_share) ------------------------

    def start_sharing(self) -> None:
        """Remember from now on which windows take local increments, for `take_increments`."""
        if self._unreported is None:
            self._unreported = {}

    def take_increments(self) -> list[tuple[float, dict[str, int]]]:
        """This edge's increments since the last call, as `(fixed window start, {key: count})`: the current
        minute's, preceded by the previous minute's when some were counted just before the minute turned.
        Empty when nothing was counted. Each increment is returned once."""
        unreported = self._unreported
        if not unreported:
            return []
        self._unreported = {}
        now = self._clock()
        start = _window_start(now)
        current: dict[str, int] = {}
        previous: dict[str, int] = {}
        for key, window in unreported.items():
            in_current, in_previous = window.take_unreported(now)
            if in_current:
                current[key] = in_current
            if in_previous:
                previous[key] = in_previous
        taken: list[tuple[float, dict[str, int]]] = []
        if previous:
            taken.append((start - _WINDOW_S, previous))
        if current:
            taken.append((start, current))
        return taken

    def add_remote(self, window_start: float, counts: Mapping[str, int]) -> bool:
        """Add a peer edge's increments for the fixed minute starting at `window_start`; False (nothing counted)
        when that minute is older than the previous one. A minute ahead of ours (the peer's clock is a little
        ahead) counts in the current one: over-counting errs on the side of the limit."""
        now = self._clock()
        minutes_ago = round((_window_start(now) - window_start) / _WINDOW_S)
        if minutes_ago > 1:
            return False
        previous = minutes_ago == 1
        for key, count in counts.items():
            if count > 0:
                self._window(key, now).add_remote(now, count, previous)
        return True
