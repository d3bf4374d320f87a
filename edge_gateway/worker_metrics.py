"""`/metrics` of a multi-worker edge: every worker's series, each with a `worker` label, from whichever worker
the scrape reaches.

Why not prometheus_client's multiprocess mode: the edge's series are its own lock-free types (`metrics.py`), not
prometheus_client's mmap-backed values, and a scrape connection lands on one worker chosen by the kernel
(SO_REUSEPORT), so each worker must be able to answer for all. Each worker therefore writes its own exposition to
`<EDGE_STATE_DIR>/metrics/<worker>.prom` (rendered on the event loop, written in a thread), and `/metrics` returns
its own live series plus its siblings' files, each sample labelled `worker="<index>"`. Sum over `worker` for the
edge's totals; a restarted worker's counters start again from zero, which Prometheus's `rate()` treats as the
counter reset it is.

Why on demand, not every second: rendering the exposition is the one thing a worker does per second that a
single-process edge does not, and it grows with the series (apps x LLMs x models x histogram buckets). Dumped
every second it cost ~11 million instructions per dump with the gate's request mix (~0.3 % of a worker's CPU
under load; callgrind, bench/README.md), more with a real fleet's series, whether anyone scraped or not. So a
worker writes its file once at start and then only when a sibling's scrape asks: the scrape writes its
`time.time_ns()` to `<dir>/asked`; every worker looks at that file every `POLL_S` (a stat; the read, in a thread,
only when it was replaced) and, when it holds a newer ask, dumps its series headed by the ask they answer; the
scrape waits up to `ANSWER_WAIT_S` for every sibling's file to answer its ask (or a later one). A sibling that
does not answer in time (restarting, its loop stalled) is shown with its last file. A scrape's series are now as
of the scrape rather than up to a second old.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from .metrics import CONTENT_TYPE_LATEST, EdgeMetrics

__all__ = ["ANSWER_WAIT_S", "POLL_S", "WorkerMetrics", "merge_expositions"]

log = logging.getLogger("fjordgate.edge.metrics")

POLL_S = 0.1
"""How often a worker looks whether a sibling's scrape asked for its series."""
ANSWER_WAIT_S = 1.0
"""How long a scrape waits for its siblings' fresh series before it answers with their last files."""
_ANSWER_CHECK_S = 0.01
ASKED = "asked"
"""The file a scrape writes its ask to, in the metrics directory."""


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
    """This worker's side of the scheme: dumps when asked and the `/metrics` endpoint (an ASGI app)."""

    def __init__(self, metrics: EdgeMetrics, directory: str, worker: str, workers: int) -> None:
        self.metrics = metrics
        self.directory = directory
        self.worker = worker
        self.siblings = [str(i) for i in range(workers) if str(i) != worker]
        self.path = self._file(worker)
        self.asked_path = os.path.join(directory, ASKED)
        self._answered = 0
        """The newest ask this worker has seen: a file rendered from now on answers it."""
        self._writing = asyncio.Lock()
        self._rendering: asyncio.Future[bytes] | None = None

    def _file(self, worker: str) -> str:
        return os.path.join(self.directory, f"{worker}.prom")

    async def run(self) -> None:
        """Dump this worker's series now and whenever a sibling's scrape asks, until cancelled."""
        await asyncio.to_thread(os.makedirs, self.directory, exist_ok=True)
        self._answered = await asyncio.to_thread(self._asked)
        await self._dump(self.metrics.render(), self._answered)
        seen = self._ask_file()
        while True:
            await asyncio.sleep(POLL_S)
            current = self._ask_file()
            if current == seen:
                continue
            seen = current
            asked = await asyncio.to_thread(self._asked)
            if asked > self._answered:
                self._answered = asked
                await self._dump(self.metrics.render(), asked)

    def _ask_file(self) -> tuple[int, int] | None:
        """Which ask file is there (each ask replaces it): a stat on the loop, ~1 µs of cached metadata, where a
        read in a thread costs ~27 µs of CPU; ten times a second per worker, whether anyone scrapes or not."""
        try:
            st = os.stat(self.asked_path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    async def _dump(self, data: bytes, answers: int) -> None:
        async with self._writing:  # a scrape's dump and an ask's share the temporary file
            try:
                await asyncio.to_thread(self._write, data, answers)
            except Exception:
                log.exception("metrics of worker %s not written", self.worker)

    def _asked(self) -> int:
        """The newest scrape's ask: its `time.time_ns()` (not the file's time, which the kernel keeps coarsely)."""
        try:
            with open(self.asked_path, "rb") as f:
                return int(f.read() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _ask(self) -> int:
        ask = time.time_ns()
        tmp = f"{self.asked_path}.{self.worker}.tmp"
        with open(tmp, "w") as f:
            f.write(str(ask))
        os.replace(tmp, self.asked_path)
        return ask

    def _write(self, data: bytes, answers: int) -> None:
        tmp = f"{self.path}.tmp"
        with open(tmp, "wb") as f:
            f.write(b"%d\n" % answers)
            f.write(data)
        os.replace(tmp, self.path)  # a reader sees the previous or the new file, never half of one

    def _read_siblings(self, asked: int) -> tuple[dict[str, str], bool]:
        """The siblings' last series, and whether every sibling's answers `asked` (or a later ask)."""
        texts: dict[str, str] = {}
        fresh = True
        for worker in self.siblings:
            try:
                with open(self._file(worker)) as f:
                    answers, _, text = f.read().partition("\n")
            except FileNotFoundError:
                fresh = False
                continue
            texts[worker] = text
            fresh = fresh and answers.isdigit() and int(answers) >= asked
        return texts, fresh

    async def render(self) -> bytes:
        """Every worker's series (`_render`); scrapes that arrive while one is being made share it.

        Why: `/metrics` answers whoever connects, and each render asks every sibling for a dump and renders this
        worker's series (milliseconds with a real fleet's series): a burst of scrapes would cost that each time.
        A shared render still reads this worker's series after the later scrape arrived, and the siblings' answer
        an ask made at most `ANSWER_WAIT_S` before it."""
        shared = self._rendering
        if shared is None:
            shared = self._rendering = asyncio.ensure_future(self._render())
            shared.add_done_callback(self._rendered)
        return await asyncio.shield(shared)  # a scrape that leaves does not cancel the others' render

    def _rendered(self, done: asyncio.Future[bytes]) -> None:
        self._rendering = None
        if not done.cancelled() and done.exception() is not None:
            log.debug("metrics render failed: %s", done.exception())

    async def _render(self) -> bytes:
        """Ask the siblings for their series, wait for them (at most `ANSWER_WAIT_S`), merge with this worker's."""
        asked = await asyncio.to_thread(self._ask)
        self._answered = max(self._answered, asked)  # this worker answers its own ask below, with its file too
        deadline = time.monotonic() + ANSWER_WAIT_S
        while True:
            texts, fresh = await asyncio.to_thread(self._read_siblings, asked)
            if fresh or time.monotonic() >= deadline:
                break
            await asyncio.sleep(_ANSWER_CHECK_S)
        own = self.metrics.render()
        await self._dump(own, self._answered)  # rendered after every ask seen so far (its own included)
        texts[self.worker] = own.decode()
        return merge_expositions(texts)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await self.render()
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
