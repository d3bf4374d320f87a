"""A plugin that blocks: a plain `def` handler runs in a worker thread; an `async` one that blocks the loop is
reported (log record and counter, with the plugin's name) by the host's loop watchdog."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from shared_sdk import BasePlugin, PluginResponse, ResponseWriteRequest, ServiceError
from shared_sdk.host import LoopStall, PluginHost, PluginSpec
from shared_sdk.pipeline import HookChain
from shared_sdk.testing import InMemoryEventHub, make_context, make_request, make_services


class SyncWaiter(BasePlugin):
    """A plain-def hook that blocks its thread until the test releases it (or 10 s pass)."""

    name = "sync-waiter"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.ran_on: list[str] = []

    def handle_post_auth(self, ctx, req):
        self.ran_on.append(threading.current_thread().name)
        released = self.release.wait(10)
        return PluginResponse(context_updates={"released": "yes" if released else "no"})


class AsyncBlocker(BasePlugin):
    """An async hook that blocks the loop with time.sleep: the mistake the watchdog exists for."""

    name = "async-blocker"

    async def handle_pre_auth(self, ctx, req):
        time.sleep(1.0)
        return None


def _host(**kwargs) -> PluginHost:
    return PluginHost("gateway", lambda slug: make_services("gateway", slug), **kwargs)


async def test_a_blocking_plain_def_handler_does_not_block_a_concurrent_coroutine():
    host = _host()
    plugin = SyncWaiter()
    try:
        handle = await host.load_instance(
            plugin, PluginSpec(slug="sync-waiter", import_path=f"{__name__}:SyncWaiter", timeout_s=15)
        )
        call = asyncio.create_task(handle.call("handle_post_auth", None, make_request("hi")))

        async def concurrent() -> None:  # runs while the handler blocks, then lets it return
            while not plugin.ran_on:
                await asyncio.sleep(0.01)
            plugin.release.set()

        await concurrent()
        response = await call
    finally:
        await host.aclose()
    assert response.context_updates == {"released": "yes"}  # the handler was released by the coroutine, not its timeout
    assert plugin.ran_on[0].startswith("plugin-sync-waiter")


async def test_an_async_handler_blocking_the_loop_is_logged_and_counted_with_the_plugin_name(caplog):
    seen: list[LoopStall] = []
    host = _host(loop_stall_s=0.2, on_loop_stall=seen.append)
    try:
        handle = await host.load_instance(
            AsyncBlocker(), PluginSpec(slug="async-blocker", import_path=f"{__name__}:AsyncBlocker")
        )
        with caplog.at_level(logging.WARNING, logger="fjordgate.plugins.watchdog"):
            await handle.call("handle_pre_auth", None, make_request("hi"))
            await asyncio.sleep(0)  # on_stall runs on the loop once it turns again
            await asyncio.sleep(0)
        watchdog = host.watchdog
        assert watchdog is not None
        assert watchdog.stalls_by_plugin.get("async-blocker") == 1
    finally:
        await host.aclose()
    (record,) = [r for r in caplog.records if r.name == "fjordgate.plugins.watchdog"]
    assert record.plugin == "async-blocker"
    assert "plugin async-blocker in handle_pre_auth" in record.getMessage()
    assert [(s.plugin, s.method) for s in seen] == [("async-blocker", "handle_pre_auth")]


class ChunkBlocker(BasePlugin):
    """An async chunk hook that blocks the loop: called per event through the stream's chunk caller, not `call`."""

    name = "chunk-blocker"

    async def on_before_write(self, ctx, req):
        time.sleep(1.0)
        return None


async def test_a_chunk_hook_blocking_the_loop_is_named_too():
    seen: list[LoopStall] = []
    host = _host(loop_stall_s=0.2, on_loop_stall=seen.append)
    try:
        handle = await host.load_instance(
            ChunkBlocker(), PluginSpec(slug="chunk-blocker", import_path=f"{__name__}:ChunkBlocker")
        )
        chain = HookChain([handle])
        run = chain.chunk_run(make_context(), chain.handles)
        await run.run(ResponseWriteRequest(body=b"data: {}\n\n", is_stream_chunk=True))
        await asyncio.sleep(0)  # on_stall runs on the loop once it turns again
        await asyncio.sleep(0)
    finally:
        await host.aclose()
    assert [(s.plugin, s.method) for s in seen] == [("chunk-blocker", "on_before_write")]


class SyncSubscriber(BasePlugin):
    """A plain-def plugin whose event handler uses the (blocking) services it was given."""

    name = "sync-subscriber"

    def initialize(self, ctx, config):
        services = ctx.services

        def on_event(event):
            services.kv.write("seen", event.payload)

        services.events.subscribe("orders.created", on_event)


def test_a_plain_def_event_handler_runs_in_a_thread_and_may_use_its_blocking_services():
    # It used to run on the loop, where its blocking kv.write waited for the loop it was blocking: forever.
    # The scenario runs on a loop of its own thread, so a hang fails this test instead of freezing the suite.
    hub = InMemoryEventHub()
    services = make_services("gateway", "sync-subscriber", hub=hub)
    seen: list[bytes | None] = []

    async def scenario() -> None:
        host = PluginHost("gateway", lambda slug: services, loop_stall_s=None)
        try:
            spec = PluginSpec(slug="sync-subscriber", import_path=f"{__name__}:SyncSubscriber")
            await host.load_instance(SyncSubscriber(), spec)
            await hub.bus("shop").publish("orders.created", b"42")
        finally:
            await host.aclose()
        seen.append(await services.kv.read("seen"))

    runner = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    runner.start()
    runner.join(15)
    assert not runner.is_alive(), "delivering the event hung the event loop"
    assert seen == [b"42"]


async def test_a_blocking_service_called_on_the_loop_says_so_instead_of_hanging():
    blocking = make_services("gateway", "p").blocking(asyncio.get_running_loop())
    with pytest.raises(ServiceError, match=r"blocking service read\(\) called on the event loop's thread"):
        blocking.kv.read("k")


class BlocksAfterAwaiting(BasePlugin):
    """An async hook that suspends first, then blocks the loop: resumed by the host, it must still be named."""

    name = "late-blocker"

    async def handle_pre_auth(self, ctx, req):
        await asyncio.sleep(0.01)
        time.sleep(1.0)
        return None


async def test_a_hook_blocking_the_loop_after_it_suspended_is_named_too():
    seen: list[LoopStall] = []
    host = _host(loop_stall_s=0.2, on_loop_stall=seen.append)
    try:
        handle = await host.load_instance(
            BlocksAfterAwaiting(), PluginSpec(slug="late-blocker", import_path=f"{__name__}:BlocksAfterAwaiting")
        )
        await handle.call("handle_pre_auth", None, make_request("hi"))
        await asyncio.sleep(0)  # on_stall runs on the loop once it turns again
        await asyncio.sleep(0)
    finally:
        await host.aclose()
    assert [(s.plugin, s.method) for s in seen] == [("late-blocker", "handle_pre_auth")]
