"""`on_before_write_events`: a stream's chunk hook that takes the events of one read from the vendor in one call,
beside plugins with the per-event `on_before_write`, with the chain's rules kept (reverse order, each plugin sees
what the ones before it passed, drops, failure policy), in-process and isolated."""

from __future__ import annotations

import pytest

from shared_sdk import (
    BasePlugin,
    Context,
    PluginCallError,
    ResponseWriteRequest,
    ResponseWriteResponse,
    StreamEventsRequest,
    StreamEventsResponse,
)
from shared_sdk.pipeline import HookChain, HookTiming
from shared_sdk.testing import PluginHarness, make_context

EVENTS_UPPER = "shared_sdk.tests.sample_plugins:EventsUpper"


class Groups(BasePlugin):
    """Records each group it is given (its events and where it starts) and passes it."""

    name = "groups"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[list[bytes], int, bool]] = []

    async def on_before_write_events(self, ctx: Context, req: StreamEventsRequest) -> StreamEventsResponse:
        self.seen.append((list(req.events), req.first_index, req.is_final))
        return StreamEventsResponse()


class Bang(BasePlugin):
    """Per event: appends '!' and records the chunk index and finality it was given."""

    name = "bang"

    def __init__(self, fail_at: bytes = b"") -> None:
        super().__init__()
        self.fail_at = fail_at
        self.seen: list[tuple[int, bool]] = []

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        if self.fail_at and self.fail_at in req.body:
            raise RuntimeError("bug")
        self.seen.append((req.chunk_index, req.is_final_chunk))
        return ResponseWriteResponse(modified=True, body=req.body + b"!")


class Broken(BasePlugin):
    name = "broken"

    async def on_before_write_events(self, ctx: Context, req: StreamEventsRequest) -> StreamEventsResponse:
        raise RuntimeError("bug")


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
async def test_a_read_goes_to_an_events_hook_in_one_call_and_per_event_hooks_see_its_output(isolated: bool) -> None:
    seen: list[HookTiming] = []
    bang = Bang()
    async with (
        PluginHarness(EVENTS_UPPER, slug="events-upper", isolated=isolated) as up,
        PluginHarness(bang) as b,
    ):
        assert up.handle is not None and b.handle is not None
        assert (up.handle.pid is not None) == isolated  # isolated: a plugin process of its own
        # chain order [bang, events-upper]: response hooks run in reverse, events-upper first
        chain = HookChain([b.handle, up.handle], observer=seen.append)
        assert chain.chunk_hooks() == (b.handle, up.handle)
        run = chain.chunk_run(make_context(request_id="r1"), chain.handles)
        first, failure = await run.run_events([b"a\n\n"], 0, "r1", False, None)
        rest, failure2 = await run.run_events([b"b\n\n", b"drop\n\n", b"c\n\n", b"[done]"], 1, "r1", True, None)
        run.finish()
    assert failure is None and failure2 is None
    assert first == [b"[1]A\n\n!"]
    assert rest == [b"[4]B\n\n!", b"[4]C\n\n!", b"[4][DONE]!"]
    # the per-event hook got the stream positions of what it was given (the dropped event's position skipped
    # is not kept: positions follow the events passed to it) and the last event of the final read as final
    assert bang.seen == [(0, False), (1, False), (2, False), (3, True)]
    assert sorted((t.slug, t.method, t.outcome, t.chunks) for t in seen) == [
        ("bang", "on_before_write", "modified", 4),
        ("events-upper", "on_before_write_events", "dropped", 2),
    ]


async def test_the_group_carries_its_stream_position_and_whether_it_ends_the_stream() -> None:
    groups = Groups()
    async with PluginHarness(groups) as h:
        assert h.handle is not None
        chain = HookChain([h.handle])
        run = chain.chunk_run(make_context(request_id="r1"), chain.handles)
        assert await run.run_events([b"x"], 0, "r1", False, None) == ([b"x"], None)
        assert await run.run_events([b"y", b"z"], 1, "r1", True, None) == ([b"y", b"z"], None)
    assert groups.seen == [([b"x"], 0, False), ([b"y", b"z"], 1, True)]


async def test_a_fail_open_events_hook_is_skipped_for_the_read() -> None:
    seen: list[HookTiming] = []
    async with PluginHarness(Broken()) as br, PluginHarness(Bang()) as b:
        assert br.handle is not None and b.handle is not None
        chain = HookChain([b.handle, br.handle], observer=seen.append)
        run = chain.chunk_run(make_context(request_id="r1"), chain.handles)
        out = await run.run_events([b"a", b"b"], 0, "r1", False, None)
    assert out == ([b"a!", b"b!"], None)
    assert [(t.slug, t.method, t.outcome) for t in seen] == [("broken", "on_before_write_events", "skipped")]


class NotBytes(BasePlugin):
    name = "not-bytes"

    async def on_before_write_events(self, ctx: Context, req: StreamEventsRequest) -> StreamEventsResponse:
        return StreamEventsResponse(modified=True, events=["a str, not bytes"])  # type: ignore[list-item]


@pytest.mark.parametrize("policy", ["open", "closed"])
async def test_events_that_are_not_bytes_fail_a_one_chunk_call_under_the_plugins_policy(policy: str) -> None:
    """One chunk at a time (`run`, `run_response_chunk`), an in-process plugin's events that are not bytes fail
    its call. (`run_events` leaves that check to its caller, once per read: the edge's relay, whose test is
    `edge_gateway/tests/test_pipeline.py::test_an_events_hook_answering_text_instead_of_bytes_...`.)"""
    async with PluginHarness(NotBytes(), failure_policy=policy) as h:
        assert h.handle is not None
        chain = HookChain([h.handle])
        run = chain.chunk_run(make_context(request_id="r1"), chain.handles)
        chunk = ResponseWriteRequest(body=b"c", is_stream_chunk=True)
        if policy == "open":  # skipped: the chunk passes as it came
            out = await run.run(chunk)
            assert out is not None and out.body == b"c"
            out = await chain.run_response_chunk(make_context(), chain.handles, chunk)
            assert out is not None and out.body == b"c"
        else:
            with pytest.raises(PluginCallError) as caught:
                await run.run(chunk)
            assert caught.value.kind == "exception" and caught.value.method == "on_before_write_events"
            with pytest.raises(PluginCallError):
                await chain.run_response_chunk(make_context(), chain.handles, chunk)


async def test_a_fail_closed_events_hook_passes_none_of_the_read() -> None:
    async with PluginHarness(Broken(), failure_policy="closed") as h:
        assert h.handle is not None
        chain = HookChain([h.handle])
        run = chain.chunk_run(make_context(request_id="r1"), chain.handles)
        events, failure = await run.run_events([b"a", b"b"], 0, "r1", False, None)
    assert events == [] and isinstance(failure, PluginCallError) and failure.method == "on_before_write_events"


async def test_after_a_fail_closed_per_event_hook_what_it_passed_still_goes_through_the_rest() -> None:
    """A fail-closed failure at the third event: the first two went through this plugin, so they still go through
    the plugins after it and are sent before the stream ends with the error."""
    groups = Groups()
    async with PluginHarness(groups) as g, PluginHarness(Bang(fail_at=b"c"), failure_policy="closed") as b:
        assert g.handle is not None and b.handle is not None
        chain = HookChain([g.handle, b.handle])  # reverse: bang first, then groups
        run = chain.chunk_run(make_context(request_id="r1"), chain.handles)
        events, failure = await run.run_events([b"a", b"b", b"c", b"d"], 0, "r1", False, None)
    assert events == [b"a!", b"b!"] and failure is not None and failure.slug == "bang"
    assert groups.seen == [([b"a!", b"b!"], 0, False)]


async def test_one_chunk_at_a_time_an_events_hook_gets_groups_of_one() -> None:
    """`run` and `run_response_chunk` (one chunk per call: the studio's chat) call an events-only plugin with a
    group of one; dropping it drops the chunk."""
    async with PluginHarness(EVENTS_UPPER, slug="events-upper") as h:
        assert h.handle is not None
        chain = HookChain([h.handle])
        ctx = make_context(request_id="r1")
        chunk = ResponseWriteRequest(request_id="r1", body=b"abc", is_stream_chunk=True)
        out = await chain.run_response_chunk(ctx, chain.handles, chunk)
        assert out is not None and out.body == b"[1]ABC"
        assert await chain.run_response_chunk(ctx, chain.handles, ResponseWriteRequest(body=b"drop")) is None
        run = chain.chunk_run(ctx, chain.handles)
        out = await run.run(chunk)
        assert out is not None and out.body == b"[1]ABC"
