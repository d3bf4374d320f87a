"""A multi-worker edge's `/metrics` (`worker_metrics.py`): siblings dump their series when a scrape asks, not on a
timer, and a scrape carries every worker's series as of the scrape."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

import pytest

from edge_gateway import worker_metrics
from edge_gateway.metrics import EdgeMetrics
from edge_gateway.worker_metrics import WorkerMetrics

SERIES = 'fjordgate_edge_requests_total{app="1",llm="llm",model="m",status="200",worker="%s"} %s'


class CountingMetrics(EdgeMetrics):
    """EdgeMetrics that counts its renders: a render is what a multi-worker edge pays beyond a single one."""

    def __init__(self) -> None:
        super().__init__()
        self.renders = 0

    def render(self) -> bytes:
        self.renders += 1
        return super().render()


@contextlib.asynccontextmanager
async def running(*workers: WorkerMetrics) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        deadline = time.monotonic() + 5
        while not all(os.path.exists(w.path) for w in workers):
            assert time.monotonic() < deadline, "a worker never wrote its series at start"
            await asyncio.sleep(0.01)
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def pair(tmp_path) -> tuple[WorkerMetrics, WorkerMetrics]:
    directory = str(tmp_path / "metrics")
    return (
        WorkerMetrics(CountingMetrics(), directory, "0", 2),
        WorkerMetrics(CountingMetrics(), directory, "1", 2),
    )


async def test_a_scrape_carries_its_siblings_series_as_of_the_scrape(tmp_path):
    a, b = pair(tmp_path)
    async with running(a, b):
        b.metrics.requests.labels("1", "llm", "m", "200").inc(3)  # after b's start-up dump
        merged = (await a.render()).decode()
        assert SERIES % ("1", "3.0") in merged, "worker 1's count as it is now, not as it was at its last dump"
        a.metrics.requests.labels("1", "llm", "m", "200").inc(2)
        b.metrics.requests.labels("1", "llm", "m", "200").inc(4)
        merged = (await b.render()).decode()
        assert SERIES % ("0", "2.0") in merged and SERIES % ("1", "7.0") in merged


async def test_an_unscraped_worker_renders_its_series_once_not_every_second(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_metrics, "POLL_S", 0.01)
    a, b = pair(tmp_path)
    async with running(a, b):
        await asyncio.sleep(1.3)
        assert (a.metrics.renders, b.metrics.renders) == (1, 1), "no scrape, no render beyond the start-up one"
        await a.render()
        assert a.metrics.renders == 2 and b.metrics.renders == 2, "the scrape rendered a's own and asked b for one"


async def test_a_sibling_that_does_not_answer_is_shown_with_its_last_series_after_the_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_metrics, "ANSWER_WAIT_S", 0.2)
    a, b = pair(tmp_path)
    b.metrics.requests.labels("1", "llm", "m", "200").inc(5)
    async with running(b):
        pass  # b wrote its file and stopped: a restarting or stalled worker
    async with running(a):
        started = time.monotonic()
        merged = (await a.render()).decode()
        assert 0.2 <= time.monotonic() - started < 2
    assert SERIES % ("1", "5.0") in merged


@pytest.mark.parametrize("workers", [1, 3])
async def test_only_the_edges_workers_are_read(tmp_path, workers):
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "7.prom").write_text("fjordgate_edge_config_version 9.0\n")  # not a worker of this edge
    (directory / "7.prom.tmp").write_text("half a file")
    a = WorkerMetrics(EdgeMetrics(), str(directory), "0", workers)
    async with running(a):
        merged = (await a.render()).decode()
    assert 'worker="7"' not in merged and 'worker="0"' in merged


async def test_scrapes_arriving_together_share_one_render(tmp_path, monkeypatch):
    """A burst of scrapes (anyone may connect to /metrics) costs one render and one ask of the siblings, not one
    each; every scrape gets the whole edge's series."""
    monkeypatch.setattr(worker_metrics, "POLL_S", 0.01)
    a, b = pair(tmp_path)
    async with running(a, b):
        b.metrics.requests.labels("1", "llm", "m", "200").inc(5)
        replies = await asyncio.gather(*(a.render() for _ in range(20)))
        assert all(SERIES % ("1", "5.0") in reply.decode() for reply in replies)
        assert (a.metrics.renders, b.metrics.renders) == (2, 2), "start-up, then one for the whole burst"
        await a.render()  # a later scrape is not served an old render
        assert a.metrics.renders == 3
