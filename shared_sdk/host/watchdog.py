"""`LoopWatchdog`: notices an event loop that stopped turning, and names the plugin that stopped it.

An `async` handler that blocks (`time.sleep`, a synchronous HTTP client, a CPU-bound loop) stalls every
request of the process, and nothing in the request path can see it: the code that would notice is itself
waiting for the loop. So the watchdog is two small parts:

- on the loop, a timer that stamps the time every `threshold_s / 4` (one `call_later` callback; nothing is
  added to a plugin call, so the hot path does not pay for it);
- a daemon thread that wakes as often and, when the stamp is older than `threshold_s` and still has not moved
  one interval later (a process that was merely descheduled catches up at once), reads the loop thread's
  stack: the `InProcessHandle.call` / `.stream` frame (or a stream's chunk-hook call) on it names the plugin and
  the method.

Each stall is logged once, while it is happening (`fjordgate.plugins.watchdog`, warning, with the plugin's
slug, the method and the innermost line), counted in `stalls` / `stalls_by_plugin`, and handed to
`on_stall` (run on the loop, as soon as it turns again) so a runtime can meter it: the edge counts
`fjordgate_edge_loop_stalls_total{plugin,hook}`. A stall outside any plugin call is reported with
`plugin=""` and the innermost line, which is usually enough to find it.

Plain-`def` handlers cannot cause this: the host runs them in the plugin's thread pool (`handle.py`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FrameType

from .handle import InProcessHandle, _InProcessChunkCall

__all__ = ["DEFAULT_STALL_THRESHOLD_S", "LoopStall", "LoopWatchdog"]

log = logging.getLogger("fjordgate.plugins.watchdog")

DEFAULT_STALL_THRESHOLD_S = 0.5

_PLUGIN_CALLS: frozenset[CodeType] = frozenset(
    {InProcessHandle.call.__code__, InProcessHandle.stream.__code__, _InProcessChunkCall.__call__.__code__}
)
"""The frames that mean "the host is inside a plugin call": their `self` has the plugin's `slug`, `method` is the
method (a stream's chunk hooks are called through `_InProcessChunkCall`, not `call`)."""


@dataclass(frozen=True, slots=True)
class LoopStall:
    """One stall: who was running and where, and how long the loop had been blocked when it was seen."""

    plugin: str
    """The plugin's slug, or `""` when the loop was blocked outside any plugin call."""
    method: str
    where: str
    """`file:line in function` of the innermost frame on the loop's thread."""
    blocked_s: float


class LoopWatchdog:
    """Watches the running event loop once `start`ed (from that loop); `stop` ends it. Thread-safe counters."""

    def __init__(
        self, threshold_s: float = DEFAULT_STALL_THRESHOLD_S, on_stall: Callable[[LoopStall], None] | None = None
    ) -> None:
        if threshold_s <= 0:
            raise ValueError("threshold_s must be positive")
        self.threshold_s = threshold_s
        self.on_stall = on_stall
        self.stalls = 0
        self.stalls_by_plugin: dict[str, int] = {}
        self._interval = max(threshold_s / 4, 0.005)
        self._beat = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = threading.Event()

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._stopped.is_set()

    def start(self) -> None:
        """Start watching the running loop (no-op when already watching)."""
        if self.running:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopped = threading.Event()
        self._tick()
        # The thread gets a weak reference: a strong one in its arguments kept a finished loop (and all it held)
        # alive until the thread next woke up and saw the stop.
        threading.Thread(
            target=self._watch,
            args=(weakref.ref(self._loop), self._stopped),
            name="fjordgate-loop-watchdog",
            daemon=True,
        ).start()

    def stop(self) -> None:
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None

    def _tick(self) -> None:
        self._beat = time.monotonic()
        if self._loop is not None and not self._stopped.is_set():
            self._timer = self._loop.call_later(self._interval, self._tick)

    # -- the watching thread -------------------------------------------------------------------------------

    def _watch(self, loop_ref: weakref.ref[asyncio.AbstractEventLoop], stopped: threading.Event) -> None:
        reported = 0.0  # the beat of the stall already reported: one report per stall
        while not stopped.wait(self._interval):
            beat = self._stalled_beat(loop_ref, reported)
            if beat is None:
                return
            if not beat:
                continue
            if stopped.wait(self._interval):  # confirm: a loop that was only descheduled has moved by now
                return
            if self._beat != beat:
                continue
            reported = beat
            stall = _describe(sys._current_frames().get(self._loop_thread), time.monotonic() - beat)
            loop = loop_ref()
            if loop is None:
                return
            self._report(loop, stall)
            del loop  # not held while the thread waits

    def _stalled_beat(self, loop_ref: weakref.ref[asyncio.AbstractEventLoop], reported: float) -> float | None:
        """The beat of a loop that stopped turning, 0.0 when it turns, None when it is gone or closed (the loop is
        referenced only during this call)."""
        loop = loop_ref()
        if loop is None or loop.is_closed():
            return None
        beat = self._beat
        if beat == reported or not loop.is_running() or time.monotonic() - beat < self.threshold_s:
            return 0.0
        return beat

    def _report(self, loop: asyncio.AbstractEventLoop, stall: LoopStall) -> None:
        self.stalls += 1
        self.stalls_by_plugin[stall.plugin] = self.stalls_by_plugin.get(stall.plugin, 0) + 1
        if stall.plugin:
            log.warning(
                "event loop blocked for %.1fs by plugin %s in %s (at %s): an async handler must not block; "
                "make it a plain def (it then runs in a worker thread) or await non-blocking I/O",
                stall.blocked_s,
                stall.plugin,
                stall.method,
                stall.where,
                extra={"plugin": stall.plugin, "fields": {"method": stall.method, "blocked_s": stall.blocked_s}},
            )
        else:
            log.warning("event loop blocked for %.1fs outside any plugin call (at %s)", stall.blocked_s, stall.where)
        if self.on_stall is not None:
            try:
                loop.call_soon_threadsafe(self.on_stall, stall)
            except RuntimeError:  # the loop closed meanwhile
                pass


def _describe(frame: FrameType | None, blocked_s: float) -> LoopStall:
    where = ""
    if frame is not None:
        where = f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
    current = frame
    while current is not None:
        if current.f_code in _PLUGIN_CALLS:
            scope = current.f_locals
            return LoopStall(
                plugin=str(getattr(scope.get("self"), "slug", "")),
                method=str(scope.get("method", "")),
                where=where,
                blocked_s=blocked_s,
            )
        current = current.f_back
    return LoopStall(plugin="", method="", where=where, blocked_s=blocked_s)
