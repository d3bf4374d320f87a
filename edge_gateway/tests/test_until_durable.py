"""`accounting.until_durable`: the response's end waits for its records' spool writes, bounded, never raising,
and never cancelling the futures it shares with other requests."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge_gateway.accounting import until_durable


async def test_waits_for_a_future_shared_by_the_records_then_returns() -> None:
    loop = asyncio.get_running_loop()
    shared: asyncio.Future[None] = loop.create_future()
    waiting = asyncio.create_task(until_durable([shared, shared, shared], timeout_s=5))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    shared.set_result(None)
    await asyncio.wait_for(waiting, 1)


async def test_returns_at_once_when_every_write_is_already_durable() -> None:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    await asyncio.wait_for(until_durable([done, done]), 0.5)
    await until_durable([])


async def test_waits_for_every_distinct_future() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[None] = loop.create_future()
    second: asyncio.Future[None] = loop.create_future()
    waiting = asyncio.create_task(until_durable([first, second, first], timeout_s=5))
    first.set_result(None)
    await asyncio.sleep(0.01)
    assert not waiting.done()
    second.set_result(None)
    await asyncio.wait_for(waiting, 1)


async def test_a_failed_write_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(failed.set_exception, OSError("disk full"))
    with caplog.at_level(logging.ERROR, logger="fjordgate.edge.telemetry"):
        await until_durable([failed], timeout_s=5)
    assert "disk full" in caplog.text


async def test_a_stalled_write_releases_the_response_after_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    stalled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with caplog.at_level(logging.ERROR, logger="fjordgate.edge.telemetry"):
        await asyncio.wait_for(until_durable([stalled, stalled], timeout_s=0.05), 1)
        assert "1 telemetry writes not on disk after 0.1 s" in caplog.text
        assert not stalled.done()
        stalled.set_exception(OSError("late failure"))  # still logged when it finally fails
        await asyncio.sleep(0)
    assert "late failure" in caplog.text


async def test_a_cancelled_request_leaves_the_shared_future_to_the_others() -> None:
    loop = asyncio.get_running_loop()
    shared: asyncio.Future[None] = loop.create_future()
    leaving = asyncio.create_task(until_durable([shared], timeout_s=5))
    staying = asyncio.create_task(until_durable([shared], timeout_s=5))
    await asyncio.sleep(0.01)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert not shared.cancelled()
    shared.set_result(None)
    await asyncio.wait_for(staying, 1)
