"""Ending background tasks for sure, for the services of both tiers and the plugin hosts.

Why not `task.cancel()` and a gather: on Python 3.11, `asyncio.wait_for` returns a result that arrived together
with the cancellation and drops the cancellation (fixed in 3.12). nats-py waits for every request's reply that
way (a JetStream publish's ack, a KV update, a lease ask), so a loop cancelled just as its reply came goes on, and
whoever gathers it waits for ever: the bridge's stop hung so in CI (its leader lease renewal), and an edge's stop
could hang the same way on its shipper or lease renewal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

__all__ = ["cancel_and_wait", "finish_uninterrupted"]

log = logging.getLogger("fjordgate.tasks")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, again_after_s: float = 0.5) -> None:
    """Cancel `tasks` and return once every one has ended, cancelling again those still running after
    `again_after_s`. Each task's outcome (a result, an exception, the cancellation) is retrieved, not raised."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_after_s)
        if pending:
            log.info("cancelling %s again: a cancellation was dropped", sorted(task.get_name() for task in pending))
    await asyncio.gather(*tasks, return_exceptions=True)


async def finish_uninterrupted(shutdown: Coroutine[Any, Any, None]) -> None:
    """Run `shutdown` (a service's own bounded clean-up: cancel its tasks, close its connections) to its end, even
    if the caller is cancelled meanwhile; then re-raise that cancellation. A `finally:` that awaits its clean-up
    directly stops at the first await when a second cancellation comes (a supervisor's timeout, a test's), and
    whatever it had not closed yet stays open."""
    task = asyncio.ensure_future(shutdown)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError
