"""Noticing a client that went away before its response was complete, and cancelling the request's work.

Why: a client that gives up must not keep an upstream call, plugin hooks or a stream pump running for nobody
(the vendor bills the tokens of a call nobody reads). Cancelling the request's task is what closes the upstream
connection; `Pipeline.serve` catches that cancellation and accounts the request (status 499 when nothing was
sent). ASGI servers answer `receive()` with `http.disconnect` once the response is complete too, hence the
`complete` flag set by `send`.

Why the watcher starts late: watching means a task per request blocked in `receive()`, created and cancelled
again, which was ~4% of the edge's CPU per request under load, and most requests that end in milliseconds
(cache hits, errors, fast models) never need it. So `DisconnectWatches` starts a request's watcher only once the
request has lived between one and two ticks (`TICK_S`, 50 ms): one shared sweeper task per edge, a set insert
and remove per request. A disconnect is therefore noticed within about 100 ms of the request's start at worst,
and at once after that; negligible against LLM calls that take seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["DisconnectWatch", "DisconnectWatches"]


class DisconnectWatch:
    """One request's watch: wraps `send` (to know when the response is complete) and, once started by
    `DisconnectWatches`, a task reading `receive` that cancels the request's task on `http.disconnect`."""

    __slots__ = ("_send", "_receive", "_task", "_watcher", "_owner", "complete", "disconnected")

    def __init__(self, owner: DisconnectWatches, send: Any) -> None:
        self._owner = owner
        self._send = send
        self._receive: Any = None
        self._task: asyncio.Task[Any] | None = None
        self._watcher: asyncio.Future[None] | None = None
        self.complete = False
        self.disconnected = False

    async def send(self, message: dict[str, Any]) -> None:
        if not message.get("more_body", False) and message["type"] == "http.response.body":
            self.complete = True
        await self._send(message)

    def start(self, receive: Any) -> None:
        """Watch `receive` from about one tick from now (the request body must have been read already)."""
        self._task = asyncio.current_task()
        self._receive = receive
        self._owner.register(self)

    def begin(self) -> None:
        if self._watcher is None and not self.complete and self._task is not None:
            self._watcher = asyncio.ensure_future(self._watch(self._receive))

    async def _watch(self, receive: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not self.complete and self._task is not None:
                    self.disconnected = True
                    self._task.cancel()
                return

    def stop(self) -> None:
        self._owner.unregister(self)
        if self._watcher is not None:
            self._watcher.cancel()


class DisconnectWatches:
    """Starts the watchers of requests that lived past a tick (see the module docstring). One per edge."""

    TICK_S = 0.05

    def __init__(self) -> None:
        self._new: set[DisconnectWatch] = set()
        self._aging: set[DisconnectWatch] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def watch(self, send: Any) -> DisconnectWatch:
        return DisconnectWatch(self, send)

    def register(self, watch: DisconnectWatch) -> None:
        self._new.add(watch)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="edge-disconnect-watches")

    def unregister(self, watch: DisconnectWatch) -> None:
        self._new.discard(watch)
        self._aging.discard(watch)

    async def _sweep(self) -> None:
        try:
            while self._new or self._aging:
                await asyncio.sleep(self.TICK_S)
                # Registered before the previous tick: at least one tick old now.
                for watch in self._aging:
                    watch.begin()
                self._aging, self._new = self._new, set()
        finally:
            self._sweeper = None
