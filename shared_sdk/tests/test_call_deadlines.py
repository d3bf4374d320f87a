"""Per-call plugin timeouts (`shared_sdk.host.handle._Deadlines`): one ticker task for many calls."""

from __future__ import annotations

import asyncio

import pytest

from shared_sdk import BasePlugin, Context, PluginCallError, ResponseWriteRequest, ResponseWriteResponse
from shared_sdk.host.handle import _Deadlines
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
