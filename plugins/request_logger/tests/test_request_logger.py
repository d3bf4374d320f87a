import asyncio
from typing import Any

import orjson
import pytest

from plugins.request_logger import RequestLogger
from plugins.request_logger import plugin as logger_module
from shared_sdk import AnalyticsRecord, App, EndpointRequest
from shared_sdk.testing import InMemoryKV, PluginHarness, make_context, make_services

FAST = {"window_s": 0.05}


def record(request_id: str, ts: float, app_id: int = 1) -> AnalyticsRecord:
    return AnalyticsRecord(request_id=request_id, app_id=app_id, timestamp=ts, model="m", status_code=200)


async def recent(h: PluginHarness, limit: int, app_id: int = 1) -> list[str]:
    out = await h.call("handle_endpoint_request", EndpointRequest(query_string=f"limit={limit}", app=App(id=app_id)))
    assert out.status_code == 200
    return [e["request_id"] for e in orjson.loads(out.body)["data"]]


async def rows(kv: InMemoryKV, prefix: str = "logs:") -> dict[str, list[dict[str, Any]]]:
    return {key: orjson.loads(await kv.read(key) or b"[]") for key in await kv.list(prefix)}


async def test_logs_and_lists_newest_first_per_app() -> None:
    async with PluginHarness(RequestLogger()) as h:
        for i in range(3):
            await h.call("handle_analytics", AnalyticsRecord(request_id=f"r{i}", app_id=1, timestamp=100.0 + i))
        await h.call("handle_analytics", AnalyticsRecord(request_id="other", app_id=2, timestamp=200.0))
        out = await h.call("handle_endpoint_request", EndpointRequest(query_string="limit=2", app=App(id=1)))
    assert [e["request_id"] for e in orjson.loads(out.body)["data"]] == ["r2", "r1"]


async def test_a_window_is_one_row_per_app_that_another_worker_reads() -> None:
    """Held records are written together once the window is over: one KV row per app, not one per request, and a
    second instance on the same store (another worker of the edge) lists them."""
    kv = InMemoryKV()
    services = make_services(kv=kv, slug="request-logger")
    async with (
        PluginHarness(RequestLogger(), config=FAST, services=services) as first,
        PluginHarness(RequestLogger(), config=FAST, services=services) as second,
    ):
        for i in range(5):
            await first.call("handle_analytics", record(f"a{i}", 100.0 + i))
        await first.call("handle_analytics", record("b0", 150.0, app_id=2))
        assert await rows(kv) == {}  # still held: nothing written per request
        assert await recent(second, 10) == []  # the other worker sees them once written
        await asyncio.sleep(0.2)
        stored = await rows(kv)
        assert sorted(len(v) for v in stored.values()) == [1, 5]
        assert [e["request_id"] for e in stored[next(k for k in stored if k.startswith("logs:1:"))]] == [
            f"a{i}" for i in range(5)
        ]
        assert await recent(second, 3) == ["a4", "a3", "a2"]
        assert await recent(second, 10, app_id=2) == ["b0"]
        assert await kv.list("log:") == []  # no row of the old one-per-request form


async def test_recent_is_exact_across_rows_of_overlapping_windows_and_held_entries() -> None:
    """Two workers' windows overlap in time; the newest entries come out in timestamp order, with what this
    process still holds among them, and old one-entry rows (1.0.x) are read too."""
    kv = InMemoryKV()
    services = make_services(kv=kv, slug="request-logger")
    await kv.write("log:1:0000000050.000000:old", orjson.dumps({"request_id": "old", "timestamp": 50.0}))
    async with (
        PluginHarness(RequestLogger(), config=FAST, services=services) as one,
        PluginHarness(RequestLogger(), config=FAST, services=services) as two,
    ):
        for ts in (100.0, 103.0, 106.0):
            await one.call("handle_analytics", record(f"one-{ts:g}", ts))
        for ts in (101.0, 104.0, 107.0):
            await two.call("handle_analytics", record(f"two-{ts:g}", ts))
        await asyncio.sleep(0.2)
        for ts in (102.0, 105.0):
            await one.call("handle_analytics", record(f"one-{ts:g}", ts))
        await asyncio.sleep(0.2)
        await one.call("handle_analytics", record("held-108", 108.0))
        assert await recent(one, 4) == ["held-108", "two-107", "one-106", "one-105"]
        assert await recent(one, 9) == [
            "held-108",
            "two-107",
            "one-106",
            "one-105",
            "two-104",
            "one-103",
            "one-102",
            "two-101",
            "one-100",
        ]
        assert (await recent(two, 50))[-2:] == ["one-100", "old"]


async def test_a_clean_stop_writes_what_is_held() -> None:
    kv = InMemoryKV()
    services = make_services(kv=kv, slug="request-logger")
    async with PluginHarness(RequestLogger(), config={"window_s": 60}, services=services) as h:
        await h.call("handle_analytics", record("r0", 100.0))
    async with PluginHarness(RequestLogger(), services=services) as after_restart:
        assert await recent(after_restart, 5) == ["r0"]


async def test_memory_is_bounded_by_writing_early_and_rows_by_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logger_module, "_MAX_HELD", 7)
    monkeypatch.setattr(logger_module, "_ROW_ENTRIES", 3)
    kv = InMemoryKV()
    services = make_services(kv=kv, slug="request-logger")
    async with PluginHarness(RequestLogger(), config={"window_s": 60}, services=services) as h:
        for i in range(7):
            await h.call("handle_analytics", record(f"r{i}", 100.0 + i))
        stored = await rows(kv)  # written at the 7th record, not after the 60 s window
        assert sorted(len(v) for v in stored.values()) == [1, 3, 3]
        assert await recent(h, 7) == [f"r{i}" for i in reversed(range(7))]


async def test_an_entry_keeps_256_characters_of_a_long_model_name() -> None:
    """A client's model name has no length limit where an LLM's allow-list is a pattern: neither what is held nor
    what is stored keeps more of it."""
    kv = InMemoryKV()
    services = make_services(kv=kv, slug="request-logger")
    async with PluginHarness(RequestLogger(), config={"window_s": 60}, services=services) as h:
        long = AnalyticsRecord(request_id="r0", app_id=1, timestamp=100.0, model="gpt-4" + "x" * 100_000)
        await h.call("handle_analytics", long)
        assert len(orjson.loads(h.plugin._held[0][2])["model"]) == 256
    stored = await rows(kv)
    assert [len(e["model"]) for entries in stored.values() for e in entries] == [256]


async def test_an_instance_shut_down_without_being_initialized_stops_cleanly() -> None:
    """The control plane describes a plugin at registration: it loads it and shuts it down, never initialized."""
    await RequestLogger().shutdown(make_context())


async def test_limit_must_be_an_integer() -> None:
    async with PluginHarness(RequestLogger()) as h:
        out = await h.call("handle_endpoint_request", EndpointRequest(query_string="limit=x", app=App(id=1)))
    assert out.status_code == 400


class _GatedKV(InMemoryKV):
    """A store whose calls suspend, as every real one does (the edge's SQLite on its thread, the isolated
    runtime's gRPC calls), here until the test lets them go: other tasks of the loop run meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.lists, self.writes = asyncio.Event(), asyncio.Event()
        self.listing, self.writing = asyncio.Event(), asyncio.Event()
        self.lists.set()
        self.writes.set()

    async def list(self, prefix: str = "") -> list[str]:
        self.listing.set()
        await self.lists.wait()
        return await super().list(prefix)

    async def write(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.writing.set()
        await self.writes.wait()
        await super().write(key, value, ttl_s)


async def test_recent_lists_each_entry_once_while_its_window_is_written() -> None:
    """The window's timer fired while `/recent` waited for the store: the entries it had read as held were read
    again from the row written meanwhile, and a request showed twice (seen on a busy CI machine). The other way
    round, entries of a row still being written are neither held nor stored: they must not go missing."""
    kv = _GatedKV()
    services = make_services(kv=kv, slug="request-logger")
    loop = asyncio.get_running_loop()
    async with PluginHarness(RequestLogger(), config={"window_s": 60}, services=services) as h:
        for i in range(3):
            await h.call("handle_analytics", record(f"r{i}", 100.0 + i))
        kv.lists.clear()
        reading = loop.create_task(recent(h, 5))
        await kv.listing.wait()  # /recent has taken what is held and waits for the store
        await h.plugin.write_held()  # the window's timer
        kv.lists.set()
        assert await reading == ["r2", "r1", "r0"]

        await h.call("handle_analytics", record("r3", 103.0))
        kv.writes.clear()
        kv.writing.clear()
        writing = loop.create_task(h.plugin.write_held())
        await kv.writing.wait()  # r3 is no longer held and not yet stored
        assert await recent(h, 2) == ["r3", "r2"]
        kv.writes.set()
        await writing
        assert await recent(h, 5) == ["r3", "r2", "r1", "r0"]
