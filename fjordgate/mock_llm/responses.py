"""The mock's ASGI responses: plain pre-encoded ones, and ones that misbehave on purpose (a server-sent-event
stream with faults, a dropped connection).

Breaking a connection is not part of ASGI, so the mock reaches the transport of uvicorn's request cycle: uvicorn
passes the cycle's bound `send`, whose owner holds `transport` and `disconnected`. `MockApp.__call__` stores that
owner in the scope under `CYCLE_KEY` before Starlette wraps `send`. Under another server the stream still breaks
(the app returns without finishing the body, which servers answer by closing), but `drop_connection` cannot be
honoured and raises `ConnectionDropUnsupported` instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .faults import FaultPlan

CYCLE_KEY = "fjordgate.mock.cycle"
_CLOSE_WAIT_STEPS = 50


class ConnectionDropUnsupported(RuntimeError):
    """The server does not expose its transport, so the mock cannot close the connection itself."""


def _disconnected(cycle: Any) -> bool:
    return bool(getattr(cycle, "disconnected", False))


async def close_connection(scope: Scope, *, abort: bool) -> bool:
    """Close the client connection under the running request; False when the server hides its transport.

    `abort=False` flushes what was already sent (a stream cut after N events); `abort=True` resets at once.
    Waits, briefly, until the server has noticed, so it does not log an unfinished response or send a 500.
    """
    cycle = scope.get(CYCLE_KEY)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    if abort:
        transport.abort()
    else:
        transport.close()
    for _ in range(_CLOSE_WAIT_STEPS):
        if _disconnected(cycle):
            break
        await asyncio.sleep(0.001)
    return True


class RawResponse(Response):
    """A response whose body and headers are already encoded: the mock knows them, so skip header building."""

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", str(len(body)).encode()), *headers]


class DroppedConnection(Response):
    """No status line, no headers: the client sees the server hang up."""

    def __init__(self) -> None:
        self.status_code = 0
        self.background = None
        self.raw_headers = []
        self.body = b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await close_connection(scope, abort=True):
            raise ConnectionDropUnsupported("drop_connection needs uvicorn (the server's transport is not reachable)")


class EventStream(Response):
    """Pre-encoded SSE events sent one by one, with the plan's pacing and its mid-stream faults.

    The last event is the terminator (`data: [DONE]` or `message_stop`); `fail_after_chunks` and
    `error_after_chunks` never send it (unless `done_after_error`: then it follows the error event).
    """

    def __init__(
        self, events: list[bytes], *, plan: FaultPlan, error_event: bytes, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = headers
        self.body = b""
        self.events = events
        self.plan = plan
        self.error_event = error_event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plan, events = self.plan, self.events
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        cycle = scope.get(CYCLE_KEY)
        cut = plan.fail_after_chunks if plan.fail_after_chunks is not None else plan.error_after_chunks
        limit = len(events) if cut is None else min(cut, len(events) - 1)
        delay = plan.chunk_delay_ms / 1000
        if plan.ttft_ms:
            await asyncio.sleep(plan.ttft_ms / 1000)
        if plan.burst and cut is None and not delay:
            await send({"type": "http.response.body", "body": b"".join(events[:limit]), "more_body": False})
            return
        for index in range(limit):
            if index and delay:
                await asyncio.sleep(delay)
                if _disconnected(cycle):
                    return
            last = cut is None and index == limit - 1
            await send({"type": "http.response.body", "body": events[index], "more_body": not last})
        if plan.fail_after_chunks is not None:
            # Without transport access, returning mid-body makes the server close the connection itself.
            await close_connection(scope, abort=False)
        elif plan.error_after_chunks is not None:
            end = events[-1] if plan.done_after_error else b""  # the terminator: `data: [DONE]`, message_stop
            await send({"type": "http.response.body", "body": self.error_event + end, "more_body": False})
