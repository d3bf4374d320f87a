"""The connections of `H1Transport` to one origin: idle ones reused LIFO, a bound on open ones, waiting callers.

Apart from the connection itself because it is the only part that deals with more than one request: who gets the
next free connection, when a new one may be opened, and when an idle one has expired.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import Protocol

from .upstream_h1_connection import H1Connection, HeadLimits
from .upstream_h1_request import Target

__all__ = ["H1Pool", "PoolOwner"]


class PoolOwner(HeadLimits, Protocol):
    """What a pool needs of its transport: its bounds and its TLS context."""

    @property
    def max_connections(self) -> int: ...

    @property
    def keepalive_expiry_s(self) -> float: ...

    def tls_context(self) -> ssl.SSLContext: ...


class H1Pool:
    """The connections to one origin: idle ones (LIFO), a bound on open ones, and callers waiting for either."""

    def __init__(self, transport: PoolOwner, target: Target, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = transport
        self.target = target
        self.loop = loop
        self.idle: deque[H1Connection] = deque()
        self.open = 0
        self.waiters: deque[asyncio.Future[H1Connection | None]] = deque()

    async def acquire(self, connect_timeout_s: float, *, fresh: bool = False) -> H1Connection:
        """An idle connection (unless `fresh`), else a new one if the bound allows, else the next one handed
        back; `TimeoutError` after `connect_timeout_s` of waiting and connecting."""
        conn = None if fresh else self._idle_connection()
        if conn is not None:
            return conn  # the usual case, with no timer to arm
        async with asyncio.timeout(connect_timeout_s):
            while True:
                conn = None if fresh else self._idle_connection()
                if conn is not None:
                    return conn
                if self.open < self.owner.max_connections:
                    return await self._connect()
                waiter: asyncio.Future[H1Connection | None] = self.loop.create_future()
                self.waiters.append(waiter)
                try:
                    handed = await waiter
                except BaseException:
                    self._abandon(waiter)
                    raise
                if handed is not None:
                    return handed
                # A connection closed: there is room for a new one (loop).

    def _idle_connection(self) -> H1Connection | None:
        idle = self.idle
        expiry = self.owner.keepalive_expiry_s
        while idle:
            conn = idle.pop()
            if conn.closed or time.monotonic() - conn.idle_since > expiry:
                conn.close()
                self.release()
                continue
            return conn
        return None

    async def _connect(self) -> H1Connection:
        self.open += 1
        target = self.target
        try:
            _, conn = await self.loop.create_connection(
                lambda: H1Connection(self),
                target.host,
                target.port,
                ssl=self.owner.tls_context() if target.tls else None,
                server_hostname=target.host if target.tls else None,
            )
        except BaseException:
            self.release()
            raise
        return conn

    def _abandon(self, waiter: asyncio.Future[H1Connection | None]) -> None:
        """A waiter gave up (timeout, cancelled): what it was handed in the meantime goes to the next one."""
        if not waiter.done():
            waiter.cancel()
            try:
                self.waiters.remove(waiter)
            except ValueError:
                pass
            return
        if waiter.cancelled():
            return
        handed = waiter.result()
        if handed is not None:
            self.put_back(handed)
        else:
            self._hand(None)

    def _hand(self, conn: H1Connection | None) -> bool:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def put_back(self, conn: H1Connection) -> None:
        """A connection whose response was read to its end: to a waiting caller, else idle."""
        if not self._hand(conn):
            self.idle.append(conn)

    def release(self) -> None:
        """A connection of this pool closed for good: a waiting caller may open a new one."""
        if self.open > 0:
            self.open -= 1
            self._hand(None)

    def lost(self, conn: H1Connection) -> None:
        """The vendor (or we) closed `conn`; an idle one leaves the pool now."""
        if conn in self.idle:
            self.idle.remove(conn)
            self.release()

    def prune(self) -> int:
        """Close idle connections past the keep-alive expiry (LIFO reuse leaves the oldest at the bottom)."""
        cutoff = time.monotonic() - self.owner.keepalive_expiry_s
        stale = [conn for conn in self.idle if conn.idle_since < cutoff]
        for conn in stale:
            self.idle.remove(conn)
            conn.close()
            self.release()
        return len(stale)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()
