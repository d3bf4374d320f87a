"""Health of loaded plugins: isolated processes are pinged and a hung one is killed and restarted; plain-`def`
handlers stuck past their timeout are reported and, once they hold every worker thread, calls fail fast."""

from __future__ import annotations

import asyncio
import logging
import os
import threading

import msgspec
import pytest

from shared_sdk import BasePlugin, PluginCallError, PluginResponse, Runtime
from shared_sdk.host import PluginHost, PluginSpec
from shared_sdk.testing import PluginHarness, make_context, make_request, make_services

SAMPLES = "shared_sdk.tests.sample_plugins"


async def _until(predicate, timeout_s: float = 15.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_hung_isolated_plugin_is_killed_and_restarted():
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug), ping_interval_s=0.2)
    spec = PluginSpec(
        slug="hangs",
        import_path=f"{SAMPLES}:Hangs",
        isolated=True,
        failure_policy="closed",
        timeout_s=0.5,
        ping_timeout_s=0.3,
        ping_failures=2,
        restart_backoff_initial_s=0.1,
    )
    handle = await host.load(spec)
    ctx = make_context()
    try:
        assert handle.ping_interval_s == 0.2  # the host's default reached a spec that left it unset
        await _until(lambda: handle.health().last_ping_at is not None, what="a first answered ping")
        first = handle.health()
        assert first.healthy and first.state == "running" and first.last_ping_ms is not None
        old_pid = handle.pid

        # Blocks the plugin's event loop for a minute: the process stays alive but answers nothing.
        with pytest.raises(PluginCallError) as info:
            await handle.call("handle_post_auth", ctx, make_request("x", headers={"x-hang": "60"}))
        assert info.value.kind == "timeout"
        assert _alive(old_pid)

        await _until(lambda: not handle.healthy, what="the hang to be noticed")
        # Meanwhile calls fail fast with the plugin's failure policy instead of waiting for a timeout.
        with pytest.raises(PluginCallError) as info:
            await handle.call("handle_post_auth", ctx, make_request("x"))
        assert info.value.kind == "unavailable" and info.value.fail_open is False
        assert "hung" in info.value.detail

        await _until(lambda: handle.healthy and handle.restarts == 1, what="the restart")
        health = handle.health()
        assert health.state == "running" and health.pid != old_pid and health.restarts == 1
        assert "2 health pings in a row unanswered" in health.last_error and "killed" in health.last_error
        assert not _alive(old_pid)
        resp = await handle.call("handle_post_auth", ctx, make_request("x"))
        assert resp.context_updates["pid"] == str(handle.pid)
        assert msgspec.json.decode(msgspec.json.encode(host.health()))["hangs"]["restarts"] == 1
    finally:
        await host.aclose()


async def test_a_busy_isolated_plugin_is_not_killed_and_reports_its_stuck_thread():
    # Host timeout 0.3 s: the plugin process gives up on its side after 0.3*1.5+1 = 1.45 s, then counts the
    # thread as stuck; its loop keeps answering pings, so it is busy, not hung.
    async with PluginHarness(
        f"{SAMPLES}:SlowSync", isolated=True, timeout_s=0.3, ping_interval_s=0.2, sync_workers=2
    ) as h:
        handle = h.handle
        pid = handle.pid
        with pytest.raises(PluginCallError) as info:
            await h.call("handle_post_auth", make_request("x", headers={"x-sleep": "6"}))
        assert info.value.kind == "timeout"
        await _until(lambda: handle.health().stuck_threads == 1, what="the child to report a stuck thread")
        health = handle.health()
        assert health.healthy and health.restarts == 0 and health.pid == pid and health.sync_workers == 2
        assert health.ping_failures == 0

        # A second stuck thread fills the process' pool: calls fail fast as unavailable, not as a crash.
        with pytest.raises(PluginCallError):
            await h.call("handle_post_auth", make_request("x", headers={"x-sleep": "6"}))
        await _until(lambda: handle.health().stuck_threads == 2, what="a second stuck thread")
        assert handle.health().state == "degraded" and handle.pid == pid
        with pytest.raises(PluginCallError) as info:
            await h.call("handle_post_auth", make_request("x"))
        assert info.value.kind == "unavailable" and "all 2 worker threads are stuck" in info.value.detail


class BlockingSync(BasePlugin):
    """Plain-def handler that blocks its worker thread until the test releases it."""

    name = "blocking-sync"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def handle_post_auth(self, ctx, req):
        if "x-block" in req.headers:
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            try:
                self.release.wait(10)
            finally:
                with self.lock:
                    self.running -= 1
        return PluginResponse()


async def test_stuck_threads_are_reported_and_a_full_pool_fails_fast(caplog):
    caplog.set_level(logging.WARNING, logger="fjordgate.plugins.host")
    plugin = BlockingSync()
    async with PluginHarness(plugin, timeout_s=0.2, sync_workers=2, failure_policy="closed") as h:
        handle = h.handle
        block = make_request("x", headers={"x-block": "1"})
        results = await asyncio.gather(*(h.call("handle_post_auth", block) for _ in range(2)), return_exceptions=True)
        assert [r.kind for r in results] == ["timeout", "timeout"]
        health = handle.health()
        assert (health.busy_threads, health.stuck_threads, health.sync_workers) == (2, 2, 2)
        assert not health.healthy and health.state == "degraded"
        assert "stuck in handle_post_auth" in health.last_error
        assert sum("stuck in handle_post_auth past its 0.2s timeout" in m for m in caplog.messages) == 2

        with pytest.raises(PluginCallError) as info:  # would otherwise queue behind the stuck threads
            await h.call("handle_post_auth", make_request("x"))
        assert info.value.kind == "unavailable" and not info.value.fail_open
        assert "all 2 worker threads are stuck" in info.value.detail

        plugin.release.set()
        await _until(lambda: handle.health().busy_threads == 0, what="the threads to be freed")
        assert handle.health().healthy and handle.health().state == "running"
        assert any("worker thread freed" in m for m in caplog.messages)
        assert await h.call("handle_post_auth", make_request("x")) == PluginResponse()


@pytest.mark.parametrize(("spec_workers", "host_workers", "expected"), [(None, 3, 3), (1, 3, 1)])
async def test_the_thread_pool_size_comes_from_the_spec_or_the_host(spec_workers, host_workers, expected):
    plugin = BlockingSync()
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug), sync_workers=host_workers)
    spec = PluginSpec(slug="b", import_path="inline", sync_workers=spec_workers, timeout_s=5)
    handle = await host.load_instance(plugin, spec)
    try:
        block = make_request("x", headers={"x-block": "1"})
        calls = [asyncio.ensure_future(handle.call("handle_post_auth", make_context(), block)) for _ in range(4)]
        await _until(lambda: plugin.running == expected, what=f"{expected} threads busy")
        await asyncio.sleep(0.1)  # give a 4th thread, if the pool had one, time to start
        assert plugin.peak == expected and handle.health().sync_workers == expected
        plugin.release.set()
        await asyncio.gather(*calls)
    finally:
        plugin.release.set()
        await host.aclose()


def test_spec_rejects_bad_health_settings():
    for bad in ({"sync_workers": 0}, {"ping_interval_s": 0}, {"ping_timeout_s": -1}, {"ping_failures": 0}):
        with pytest.raises(ValueError):
            PluginSpec(slug="x", import_path="a:b", **bad)
    with pytest.raises(ValueError, match="not a string"):
        PluginSpec(slug="x", import_path="a:b", extra_scopes="apps.read")
    assert PluginSpec(slug="x", import_path="a:b", extra_scopes=["apps.read"]).extra_scopes == ("apps.read",)
