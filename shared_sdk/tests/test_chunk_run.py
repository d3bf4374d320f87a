"""A stream's chunk hooks through `HookChain.chunk_run` / `PluginHandle.chunk_caller`: the per-call plumbing done
once per stream, with `run_response_chunk`'s rules (timeouts, failure policy, result types) kept."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from shared_sdk import BasePlugin, Context, PluginCallError, ResponseWriteRequest, ResponseWriteResponse
from shared_sdk.host.handle import _Deadlines, _deadlines
from shared_sdk.pipeline import HookChain, HookTiming
from shared_sdk.testing import PipelineRunner, PluginHarness, make_context, make_request


def chunk(index: int, body: bytes = b"data: {}\n\n") -> ResponseWriteRequest:
    return ResponseWriteRequest(request_id="r1", body=body, is_stream_chunk=True, chunk_index=index)


class Upper(BasePlugin):
    """Upper-cases every chunk without awaiting anything (the common chunk hook)."""

    name = "upper"

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        return ResponseWriteResponse(modified=True, body=req.body.upper())


class Awaits(BasePlugin):
    """Suspends once per chunk, then tags it: the path that needs a deadline."""

    name = "awaits"

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        await asyncio.sleep(self.delay)
        return ResponseWriteResponse(modified=True, body=req.body + b"!")


class Wrong(BasePlugin):
    name = "wrong"

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> Any:
        return 42


class Raises(BasePlugin):
    name = "raises"

    def __init__(self, after_await: bool) -> None:
        super().__init__()
        self.after_await = after_await

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        if self.after_await:
            await asyncio.sleep(0)
        raise RuntimeError("bug")


async def caller(h: PluginHarness) -> Any:
    assert h.handle is not None
    return h.handle.chunk_caller(make_context(request_id="r1"))


async def test_one_deadline_per_stream_armed_for_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-call deadline object (and its allocation) is made once per stream, not per chunk."""
    made: list[str] = []
    enter, parked = _Deadlines.enter, _Deadlines.parked

    def counted_enter(self: _Deadlines, timeout_s: float) -> Any:
        made.append("enter")
        return enter(self, timeout_s)

    def counted_parked(self: _Deadlines) -> Any:
        made.append("parked")
        return parked(self)

    monkeypatch.setattr(_Deadlines, "enter", counted_enter)
    monkeypatch.setattr(_Deadlines, "parked", counted_parked)
    for plugin in (Upper(), Awaits()):
        async with PluginHarness(plugin) as h:
            call = await caller(h)
            made.clear()  # loading the plugin made calls of its own
            outs = [await call(chunk(i, b"x"), time.monotonic()) for i in range(5)]
            assert made == ["parked"] and all(out.modified for out in outs)
            assert not _deadlines().calls  # none left in flight


async def test_a_hook_that_suspends_is_bounded_from_the_call_start() -> None:
    """The deadline counts from `started`, so time spent before the first await counts against the timeout."""
    async with PluginHarness(Awaits(delay=5), timeout_s=1.0) as h:
        call = await caller(h)
        t0 = time.monotonic()
        with pytest.raises(PluginCallError) as caught:
            await call(chunk(0), t0 - 1.0)  # the call's whole timeout already spent before it suspended
    assert caught.value.kind == "timeout" and time.monotonic() - t0 < 0.5


async def test_a_cancelled_stream_is_cancelled_not_a_timeout() -> None:
    async with PluginHarness(Awaits(delay=5)) as h:
        call = await caller(h)
        task = asyncio.ensure_future(call(chunk(0), time.monotonic()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("plugin", [Raises(after_await=False), Raises(after_await=True), Wrong()])
async def test_failures_and_wrong_results_are_plugin_call_errors(plugin: BasePlugin) -> None:
    async with PluginHarness(plugin, failure_policy="closed") as h:
        call = await caller(h)
        with pytest.raises(PluginCallError) as caught:
            await call(chunk(0), time.monotonic())
    assert caught.value.kind == "exception" and caught.value.method == "on_before_write"


async def test_an_unloaded_plugin_is_unavailable() -> None:
    async with PluginHarness(Upper()) as h:
        call = await caller(h)
        assert h.handle is not None
        h.handle.healthy = False
        with pytest.raises(PluginCallError) as caught:
            await call(chunk(0), time.monotonic())
        h.handle.healthy = True
    assert caught.value.kind == "unavailable"


class Drops(BasePlugin):
    name = "drops"

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        return ResponseWriteResponse(drop_chunk=req.chunk_index == 1)


async def test_timings_are_summed_per_plugin_and_reported_once_per_stream() -> None:
    """One observer call per plugin and stream (`chunks` = its calls), not one per chunk; a failed call on its own."""
    seen: list[HookTiming] = []
    failing = Raises(after_await=False)
    async with PluginHarness(Upper()) as up, PluginHarness(Drops()) as dr, PluginHarness(failing) as fa:
        assert up.handle is not None and dr.handle is not None and fa.handle is not None
        chain = HookChain([up.handle, dr.handle, fa.handle], observer=seen.append)
        run = chain.chunk_run(make_context(request_id="r1"), chain.handles)
        outs = [await run.run(chunk(i, b"a")) for i in range(3)]
        # reverse order: raises (fail open: skipped), drops, then upper
        assert [o.body if o is not None else None for o in outs] == [b"A", None, b"A"]
        assert [(t.slug, t.outcome, t.chunks) for t in seen] == [("raises", "skipped", 0)] * 3
        seen.clear()
        run.finish()
        run.finish()  # a second finish reports nothing more
    assert sorted((t.slug, t.outcome, t.chunks) for t in seen) == [("drops", "dropped", 3), ("upper", "modified", 2)]
    assert all(t.method == "on_before_write" and t.duration_s >= 0 for t in seen)


async def test_fail_closed_chunk_hook_raises_and_is_recorded_failed() -> None:
    seen: list[HookTiming] = []
    async with PluginHarness(Raises(after_await=True), failure_policy="closed") as h:
        assert h.handle is not None
        chain = HookChain([h.handle], observer=seen.append)
        run = chain.chunk_run(make_context(request_id="r1"), chain.handles)
        with pytest.raises(PluginCallError):
            await run.run(chunk(0))
        run.finish()
    assert [(t.outcome, t.chunks) for t in seen] == [("failed", 0)]


async def test_the_runner_streams_through_chunk_run() -> None:
    async with PipelineRunner(Upper()) as runner:
        out = await runner.run(make_request("hi", stream=True), upstream=[b"a", b"b", b"c"])
    assert out.chunks == [b"A", b"B", b"C"]
    assert [(t.slug, t.outcome, t.chunks) for t in out.timings if t.chunks] == [("upper", "modified", 3)]


class PlainUpper(BasePlugin):
    """A plain-`def` chunk hook: runs in the plugin's thread pool, through `call` (the generic caller)."""

    name = "plain-upper"

    def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        return ResponseWriteResponse(modified=True, body=req.body.upper())


async def test_a_plain_def_chunk_hook_goes_through_call() -> None:
    seen: list[HookTiming] = []
    async with PluginHarness(PlainUpper()) as h:
        assert h.handle is not None
        chain = HookChain([h.handle], observer=seen.append)
        run = chain.chunk_run(make_context(request_id="r1"), chain.handles)
        out = await run.run(chunk(0, b"abc"))
        run.finish()
    assert out is not None and out.body == b"ABC"
    assert [(t.outcome, t.chunks) for t in seen] == [("modified", 1)]


async def test_after_a_timeout_the_stream_deadline_serves_the_next_call() -> None:
    plugin = Awaits(delay=5)
    async with PluginHarness(plugin, timeout_s=1.0) as h:
        call = await caller(h)
        with pytest.raises(PluginCallError) as caught:
            await call(chunk(0), time.monotonic() - 1.0)
        assert caught.value.kind == "timeout"
        plugin.delay = 0.02  # longer than a tick: the ticker sees the re-armed deadline in flight, not yet due
        out = await call(chunk(1, b"y"), time.monotonic())
    assert out.body == b"y!"
