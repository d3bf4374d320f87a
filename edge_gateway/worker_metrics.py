"""`/metrics` of a multi-worker edge: every worker's series, each with a `worker` label, from whichever worker
the scrape reaches.

Why not prometheus_client's multiprocess mode: the edge's series are its own lock-free types (`metrics.py`), not
prometheus_client's mmap-backed values, and a scrape connection lands on one worker chosen by the kernel
(SO_REUSEPORT), so each worker must be able to answer for all. Each worker therefore writes its own exposition to
`<EDGE_STATE_DIR>/metrics/<worker>.prom` every `DUMP_INTERVAL_S` (rendered on the event loop, written in a thread:
off the request path), and `/metrics` returns its own live series plus its siblings' last files, each sample
labelled `worker="<index>"`. Sum over `worker` for the edge's totals; a restarted worker's counters start again
from zero, which Prometheus's `rate()` treats as the counter reset it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from .metrics import CONTENT_TYPE_LATEST, EdgeMetrics

__all__ = ["DUMP_INTERVAL_S", "WorkerMetrics", "merge_expositions"]

log = logging.getLogger("fjordgate.edge.metrics")

DUMP_INTERVAL_S = 1.0
"""How stale a sibling worker's series may be in a scrape."""


class _Merged:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def merge_expositions(texts: dict[str, str]) -> bytes:
    """One exposition of several workers' (worker index -> text format), each sample labelled with its worker."""
    families: dict[str, Metric] = {}
    for worker in sorted(texts, key=lambda w: (len(w), w)):
        for family in text_string_to_metric_families(texts[worker]):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            merged.samples.extend(
                Sample(s.name, {"worker": worker, **s.labels}, s.value, s.timestamp, s.exemplar) for s in family.samples
            )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(list(families.values())))
    return generate_latest(registry)


class WorkerMetrics:
    """This worker's side of the scheme: the periodic dump and the `/metrics` endpoint (an ASGI app)."""

    def __init__(self, metrics: EdgeMetrics, directory: str, worker: str) -> None:
        self.metrics = metrics
        self.directory = directory
        self.worker = worker
        self.path = os.path.join(directory, f"{worker}.prom")

    async def run(self) -> None:
        """Dump this worker's series every `DUMP_INTERVAL_S` until cancelled."""
        await asyncio.to_thread(os.makedirs, self.directory, exist_ok=True)
        while True:
            try:
                await asyncio.to_thread(self._write, self.metrics.render())
            except Exception:
                log.exception("metrics of worker %s not written", self.worker)
            await asyncio.sleep(DUMP_INTERVAL_S)

    def _write(self, data: bytes) -> None:
        tmp = f"{self.path}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path)  # a reader sees the previous or the new file, never half of one

    def _siblings(self) -> dict[str, str]:
        texts: dict[str, str] = {}
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.directory):
                worker, ext = os.path.splitext(name)
                if ext == ".prom" and worker != self.worker and worker.isdigit():
                    with contextlib.suppress(FileNotFoundError), open(os.path.join(self.directory, name)) as f:
                        texts[worker] = f.read()
        return texts

    async def render(self) -> bytes:
        texts = await asyncio.to_thread(self._siblings)
        texts[self.worker] = self.metrics.render().decode()
        return merge_expositions(texts)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await self.render()
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
