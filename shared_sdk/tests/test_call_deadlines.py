"""Per-call plugin timeouts (`shared_sdk.host.handle._Deadlines`): one ticker task for many calls."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared_sdk import BasePlugin, Context, PluginCallError, ResponseWriteRequest, ResponseWriteResponse
from shared_sdk.host.handle import _Deadlines, _deadlines
from shared_sdk.testing import PluginHarness


class Passes(BasePlugin):
    name = "passes"

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        return ResponseWriteResponse()


async def test_calls_that_end_at_once_share_one_ticker_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream's chunk hooks end before the ticker's task first runs; each must not start a task of its own
    (one task per hook call per event was most of what a chunk hook call cost the edge)."""
    started = 0
    tick = _Deadlines._tick

    async def counted(self: _Deadlines) -> None:
        nonlocal started
        started += 1
        await tick(self)

    monkeypatch.setattr(_Deadlines, "_tick", counted)
    async with PluginHarness(Passes()) as h:
        for index in range(50):
            await h.call(
                "on_before_write", ResponseWriteRequest(body=b"data: {}\n\n", is_stream_chunk=True, chunk_index=index)
            )
            await asyncio.sleep(0)  # the loop runs other callbacks (a ticker's first step) between events
    assert started <= 5, f"{started} ticker tasks for 50 calls"


async def test_a_call_past_its_deadline_still_times_out() -> None:
    """The ticker that sleeps before its first check still cancels a call that outlives its timeout."""

    class Slow(Passes):
        async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
            await asyncio.sleep(5)
            return ResponseWriteResponse()

    async with PluginHarness(Slow(), timeout_s=0.05) as h:
        with pytest.raises(PluginCallError) as caught:
            await h.call("on_before_write", ResponseWriteRequest(body=b"x"))
    assert caught.value.kind == "timeout"


async def test_a_hook_that_returns_without_suspending_needs_no_deadline() -> None:
    """Most hooks return at their first step: such a call puts nothing in flight and starts no ticker task (its
    deadline, two getpid() syscalls and a set entry, was three quarters of what an in-process call cost)."""
    async with PluginHarness(Passes()) as h:
        deadlines = _deadlines()
        for index in range(20):
            await h.call("on_before_write", ResponseWriteRequest(body=b"x", chunk_index=index))
            assert not deadlines.calls
        assert deadlines._ticker is None


class Juggles(BasePlugin):
    """Suspends in every way a hook can: bare yields, a future's value, a future's exception it catches."""

    name = "juggles"

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        value: asyncio.Future[bytes] = loop.create_future()
        loop.call_soon(value.set_result, b"!")
        failing: asyncio.Future[bytes] = loop.create_future()
        loop.call_later(0.01, failing.set_exception, LookupError("caught"))
        try:
            await failing
            caught = b""
        except LookupError as exc:
            caught = str(exc).encode()
        await asyncio.sleep(0.01)
        return ResponseWriteResponse(modified=True, body=req.body + await value + caught)


async def test_a_hook_that_suspends_is_finished_inside_the_call_with_what_it_awaited() -> None:
    async with PluginHarness(Juggles(), timeout_s=5) as h:
        out = await h.call("on_before_write", ResponseWriteRequest(body=b"x"))
        assert _deadlines().calls == set()  # its deadline left with it
    assert out.body == b"x!caught"


async def test_a_hook_that_blocks_past_its_timeout_then_suspends_times_out_there() -> None:
    """The deadline of a hook that suspends counts from the call's start, not from its first suspension: its wait,
    answered 50 ms after it began, would be in time by a deadline counted from there (100 ms), but the ticker's
    first tick (10 ms) finds the call already past the one counted from the start."""

    class BlocksThenWaits(Passes):
        async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
            time.sleep(0.15)  # the loop cannot time this part out; its time still counts
            answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(0.05, answer.set_result, None)
            await answer
            return ResponseWriteResponse(modified=True, body=b"in time")

    async with PluginHarness(BlocksThenWaits(), timeout_s=0.1) as h:
        with pytest.raises(PluginCallError) as caught:
            await h.call("on_before_write", ResponseWriteRequest(body=b"x"))
    assert caught.value.kind == "timeout"


async def test_a_cancelled_call_reaches_the_hook_where_it_waits_and_is_not_a_timeout() -> None:
    cleaned: list[str] = []

    class Waits(Passes):
        async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
            try:
                await asyncio.sleep(5)
            finally:
                cleaned.append("finally")
            return ResponseWriteResponse()

    async with PluginHarness(Waits(), timeout_s=10) as h:
        call = asyncio.create_task(h.call("on_before_write", ResponseWriteRequest(body=b"x")))
        await asyncio.sleep(0.05)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert not _deadlines().calls
    assert cleaned == ["finally"]
