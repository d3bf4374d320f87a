"""Who is using each studio plugin instance, so that one replaced meanwhile is stopped only once they are done.

The studio host (`runtime`) is shared by Django's threads: a call, an agent's stream (`streaming.plugin_stream`) or
a studio LLM call's chain (`studio_calls`) takes a plugin's handle and uses it for milliseconds or for minutes.
When the plugin's row changes, the runtime reloads or unloads it with `PluginHost.reload/unload(retire=...)`: the
next callers get the new instance, and the replaced one must keep running for the callers that already took it
(stopped at once, their next call would fail: an in-process plugin shut down, an isolated one's process gone).
`HandleUsers` counts those users per handle and stops a retired handle when its count drops to zero.

Bounded as at the edge (`edge_gateway.config_store`): at most RETIRED_MAX retired instances wait (past it the
oldest is stopped at once), none longer than RETIRE_AFTER_S (`expire`, on a timer the runtime arms), and
`drain` hands the waiting ones over at shutdown.

Taking a handle and counting it is one step under the lock (`acquire`), and a retired handle is never taken again:
otherwise a thread that fetched a handle just before a reload retired it (with no user yet, so stopped at once)
would count it afterwards and call a stopped instance. A refused caller fetches the current handle again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from shared_sdk.host import RETIRE_AFTER_S, RETIRED_MAX, PluginHandle

__all__ = ["RETIRED_MAX", "RETIRE_AFTER_S", "HandleUsers", "taken"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class HandleUsers:
    """The users of each plugin handle, and the retired handles waiting for theirs to finish.

    Thread-safe: Django threads acquire and release, the host's loop retires. `stop(handle)` is called, outside
    the lock, for a retired handle whose last user released it or whose wait expired; it must not block (the
    runtime schedules `PluginHost.stop_retired` on its loop).
    """

    def __init__(self, stop: Callable[[PluginHandle], None]) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self._users: dict[PluginHandle, int] = {}
        """Handles in use and how many users each has (a handle leaves when its count drops to zero)."""
        self._waiting: dict[PluginHandle, None] = {}
        """Retired handles not stopped yet, oldest first: each still has users."""
        self._retired: weakref.WeakSet[PluginHandle] = weakref.WeakSet()
        """Every handle ever retired (stopped, being stopped or waiting): none is acquired again."""

    def acquire(self, handles: Iterable[PluginHandle]) -> bool:
        """Count the caller as a user of each of `handles`, all or none: False (nothing counted) when one of them
        was retired already, in which case the caller fetches the current handles and tries again."""
        handles = list(handles)
        with self._lock:
            if any(handle in self._retired for handle in handles):
                return False
            for handle in handles:
                self._users[handle] = self._users.get(handle, 0) + 1
        return True

    def release(self, handles: Iterable[PluginHandle]) -> None:
        """The caller is done with `handles` (what it acquired); a retired one that has no user left is stopped."""
        unused = []
        with self._lock:
            for handle in handles:
                left = self._users.get(handle, 0) - 1
                if left > 0:
                    self._users[handle] = left
                    continue
                self._users.pop(handle, None)
                if handle in self._waiting:
                    del self._waiting[handle]
                    unused.append(handle)
        for handle in unused:
            self._stop(handle)

    def retire(self, handle: PluginHandle) -> list[PluginHandle]:
        """`handle` was replaced or unloaded: it gets no new user. Returns what the caller must stop now: `handle`
        itself when nobody uses it, and the oldest waiting handles past RETIRED_MAX (stopped under their users).
        Otherwise it waits; `release` stops it when its last user is done."""
        stop_now = []
        evicted = []
        with self._lock:
            self._retired.add(handle)
            if handle not in self._users:
                stop_now.append(handle)
            else:
                self._waiting[handle] = None
                while len(self._waiting) > RETIRED_MAX:
                    oldest = next(iter(self._waiting))
                    del self._waiting[oldest]
                    evicted.append(oldest)
        for oldest in evicted:
            logger.warning(
                "plugin %s: more than %d replaced instances wait for calls in flight; stopped the oldest",
                oldest.slug,
                RETIRED_MAX,
            )
        return stop_now + evicted

    def expire(self, handle: PluginHandle) -> None:
        """RETIRE_AFTER_S after `handle` was retired: stopped now if it still waits for its users."""
        with self._lock:
            if handle not in self._waiting:
                return
            del self._waiting[handle]
            users = self._users.get(handle, 0)
        logger.warning(
            "plugin %s: a replaced instance was stopped after %.0f s with %d call(s) still using it",
            handle.slug,
            RETIRE_AFTER_S,
            users,
        )
        self._stop(handle)

    def drain(self) -> list[PluginHandle]:
        """Every retired handle still waiting, handed over to be stopped (the runtime is shutting down)."""
        with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
        return waiting

    def waiting(self) -> int:
        """How many retired handles wait for their users."""
        with self._lock:
            return len(self._waiting)


async def taken(taking: Awaitable[_T], release: Callable[[_T], None]) -> _T:
    """`await taking`, an acquisition that runs elsewhere (a worker thread fetching and acquiring handles), without
    leaking it: when the awaiting task is cancelled meanwhile, what `taking` took is released once it is taken."""
    future = asyncio.ensure_future(taking)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:

        def release_when_taken(done: asyncio.Future[_T]) -> None:
            if not done.cancelled() and done.exception() is None:
                release(done.result())

        future.add_done_callback(release_when_taken)
        raise
