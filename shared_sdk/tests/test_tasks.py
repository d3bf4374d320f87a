"""Stopping a service ends every task it started, also one that dropped its first cancellation."""

from __future__ import annotations

import asyncio

import pytest

from shared_sdk.tasks import cancel_and_wait


async def test_a_task_that_dropped_its_cancellation_is_cancelled_again_and_ends():
    """On Python 3.11 `asyncio.wait_for` returns an answer that arrived together with the cancellation and drops the
    cancellation. The leader lease's renewal loop waits for NATS that way: cancelled as its KV update was answered,
    it went back to sleep and ran on, and the bridge's stop hung in the gather after it."""
    loop = asyncio.get_running_loop()
    answers: list[asyncio.Future[bytes]] = []
    asked = asyncio.Event()
    renewals = 0

    async def renew_forever() -> None:
        nonlocal renewals
        while True:
            answer: asyncio.Future[bytes] = loop.create_future()
            answers.append(answer)
            asked.set()
            await asyncio.wait_for(answer, 10)  # a NATS request, the way nats-py waits for the reply
            renewals += 1
            await asyncio.sleep(2)

    leader = asyncio.create_task(renew_forever(), name="leader")
    await asked.wait()
    answers[-1].set_result(b"+OK")  # the answer and the stop's cancellation arrive in the same loop turn
    await asyncio.wait_for(cancel_and_wait([leader], again_after_s=0.05), 5)
    assert leader.cancelled()


async def test_tasks_that_end_or_fail_when_cancelled_are_collected_without_raising():
    async def sleeper() -> None:
        await asyncio.sleep(60)

    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    async def done_already() -> str:
        return "done"

    tasks = [asyncio.create_task(c()) for c in (sleeper, fails_on_cancel, done_already)]
    await asyncio.sleep(0)
    await cancel_and_wait(tasks)
    assert tasks[0].cancelled()
    assert isinstance(tasks[1].exception(), RuntimeError)
    assert tasks[2].result() == "done"


async def test_a_shutdown_runs_to_its_end_though_its_caller_is_cancelled_twice():
    """A service's `finally:` awaiting its clean-up stopped at the first await when a second cancellation came,
    and left the rest open: a bridge cut short so kept its NATS subscriptions on the server it shared."""
    from shared_sdk.tasks import finish_uninterrupted

    steps: list[str] = []
    stopping = asyncio.Event()

    async def shut_down() -> None:
        steps.append("tasks cancelled")
        stopping.set()
        await asyncio.sleep(0.05)
        steps.append("lease released")
        await asyncio.sleep(0.05)
        steps.append("connection closed")

    async def service() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await finish_uninterrupted(shut_down())

    running = asyncio.create_task(service())
    await asyncio.sleep(0)
    running.cancel()  # the first cancellation starts the shutdown
    await stopping.wait()
    running.cancel()  # a second one while it runs
    with pytest.raises(asyncio.CancelledError):
        await running
    assert steps == ["tasks cancelled", "lease released", "connection closed"]


async def test_a_shutdown_that_fails_raises_its_error():
    from shared_sdk.tasks import finish_uninterrupted

    async def shut_down() -> None:
        raise RuntimeError("could not close")

    with pytest.raises(RuntimeError, match="could not close"):
        await finish_uninterrupted(shut_down())
