"""Requests-per-minute and tokens-per-minute limits, per app and per user within an app.

A sliding window approximated from two fixed one-minute windows (the previous minute's count weighted by how
much of it still overlaps the last 60 s), the scheme nginx and Cloudflare use: O(1) memory and time per key,
no timestamps per request, and no burst of 2x at a window edge.

Requests are counted when admitted; tokens are counted after the call (they are known only then), so a TPM
limit admits a request while the window is under the limit and the request's own tokens may overshoot once.
Local to this edge process (an edge enforces its own share; there is no cross-edge coordination).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RateLimiter", "SlidingWindow"]

_WINDOW_S = 60.0


class SlidingWindow:
    __slots__ = ("window_start", "current", "previous")

    def __init__(self, now: float) -> None:
        self.window_start = now - (now % _WINDOW_S)
        self.current = 0
        self.previous = 0

    def _roll(self, now: float) -> None:
        start = now - (now % _WINDOW_S)
        if start != self.window_start:
            self.previous = self.current if start - self.window_start == _WINDOW_S else 0
            self.current = 0
            self.window_start = start

    def used(self, now: float) -> float:
        self._roll(now)
        overlap = 1.0 - (now - self.window_start) / _WINDOW_S
        return self.previous * overlap + self.current

    def retry_after(self, now: float, limit: int, amount: int) -> float:
        """Seconds until `amount` more fits under `limit` (at most until the previous window has slid out)."""
        self._roll(now)
        into = now - self.window_start
        if self.current + amount > limit:
            return _WINDOW_S - into
        if self.previous == 0:
            return 0.0
        # previous * (1 - (into + t)/60) + current + amount <= limit  ->  solve for t
        needed = (self.previous * (1.0 - into / _WINDOW_S) + self.current + amount - limit) * _WINDOW_S
        return max(0.0, needed / self.previous)

    def add(self, now: float, amount: int) -> None:
        self._roll(now)
        self.current += amount


class RateLimiter:
    """Named windows (`app:3:rpm`, `user:3:9:tpm`, ...) created on first use."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._windows: dict[str, SlidingWindow] = {}
        self._clock = clock

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
            self._window(key, now).add(now, amount)

    def prune(self) -> int:
        """Drop windows idle for two minutes (called periodically so one-off users do not accumulate)."""
        cutoff = self._clock() - 2 * _WINDOW_S
        stale = [k for k, w in self._windows.items() if w.window_start < cutoff]
        for key in stale:
            del self._windows[key]
        return len(stale)
