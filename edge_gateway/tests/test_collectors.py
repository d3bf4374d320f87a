"""Data-collector plugins as a telemetry sink (`edge_gateway.collectors`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from edge_gateway.collectors import YIELD_EVERY, PluginCollectorSink
from shared_sdk import AnalyticsRecord


class _Chain:
    """A collector chain whose one plugin does no I/O (as the request logger, which buffers its KV writes)."""

    def __init__(self, order: list[str]) -> None:
        self.order = order

    def hooks(self, method: str) -> list[Any]:
        return [SimpleNamespace(slug="request-logger", services=None)]

    async def run_data_collection(self, method: str, ctx: Any, record: AnalyticsRecord) -> None:
        self.order.append(record.request_id)


class _Config(SimpleNamespace):
    """The parts of a `CompiledConfig` the sink reads, used as it is (`with cfg:`)."""

    def __enter__(self) -> _Config:
        return self

    def __exit__(self, *_: object) -> None:
        return None


async def test_a_request_waiting_on_the_loop_runs_between_records_of_a_batch():
    """Why: a collector that never suspends made a 200-record batch one loop step of 0.5-1 ms, and the request
    that arrived meanwhile waited for all of it (the p99 at concurrency 1)."""
    order: list[str] = []
    cfg = _Config(collectors=_Chain(order), snapshot=SimpleNamespace(namespace="ns"), apps={})
    sink = PluginCollectorSink(SimpleNamespace(current=cfg), "edge-1")

    async def request() -> None:
        order.append("request")

    waiting = asyncio.get_running_loop().create_task(request())
    await sink.submit_batch([AnalyticsRecord(request_id=f"r{i}") for i in range(200)])
    await waiting

    assert [x for x in order if x != "request"] == [f"r{i}" for i in range(200)]  # every record, in order
    assert order.index("request") <= YIELD_EVERY
