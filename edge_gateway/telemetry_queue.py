"""Telemetry off the hot path: the records each request produced, handed to sinks by background tasks.

The request path only appends to in-memory queues (`TelemetryQueue.put`, no I/O, no await); one drain task per
sink delivers batches, so a slow sink never slows requests or the other sinks.

Sinks implement `TelemetrySink.submit_batch(records)` (metrics, data-collector plugins in
`edge_gateway.collectors`). Each lane is bounded: when a sink falls behind by `maxsize` records, the oldest are
dropped and counted (`fjordgate_edge_telemetry_dropped_total`), so memory stays bounded whatever a sink does.

A sink may say which kinds of record it takes (`accepts(kind) -> bool`, asked per request, so a sink whose
interest follows the config, like the collector plugins, answers for the current one); without it, it takes every
kind. `wants(kind)` is what the producer asks before building a record: with no durable sink and no sink taking
that kind, the record is not made at all (accounting's `BudgetUsage` and `ProxyLog` on an edge without NATS and
without a collector plugin for them: ~30,000 instructions per request, `python -m bench.gate`).

Durable sinks (`DurableSink.write(record) -> future`, the NATS shipper) are different: a record in an
in-memory lane dies with the process, and a request whose client received its response must keep its
analytics row even if the edge is SIGKILLed right after. So `put` hands each record to every durable sink that
accepts its kind (the same optional `accepts`; the shipper takes proxy logs only when they carry bodies) at
once (a queue hand-off to the spool's writer thread, still no I/O on the request path) and gives the futures
to the caller: accounting (`edge_gateway.accounting.account`) returns them, and the pipeline releases the
response's last message once they resolved.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Protocol, runtime_checkable

from shared_sdk import AnalyticsRecord, BudgetUsage, ProxyLog

__all__ = ["DurableSink", "TelemetryQueue", "TelemetryRecord", "TelemetrySink", "log_failed_write"]

log = logging.getLogger("fjordgate.edge.telemetry")

TelemetryRecord = AnalyticsRecord | BudgetUsage | ProxyLog


@runtime_checkable
class TelemetrySink(Protocol):
    """Something that takes batches of telemetry records (AnalyticsRecord | BudgetUsage | ProxyLog).

    `submit_batch` may await I/O; it is called by the sink's own drain task, one batch at a time, never
    concurrently with itself. If it raises, the batch is logged and dropped: a sink that needs durability
    (the NATS shipper) keeps its own spool.
    """

    async def submit_batch(self, records: list[Any]) -> None: ...


@runtime_checkable
class DurableSink(Protocol):
    """Something that makes each record durable on its own: `write` queues it (no blocking I/O) and returns a
    future that resolves once it is safe (or fails). It may raise at once when it cannot take the record."""

    def write(self, record: Any) -> asyncio.Future[None]: ...


def _takes_every_kind(kind: type) -> bool:
    return True


class _SinkLane:
    __slots__ = ("sink", "name", "items", "wakeup", "task", "dropped", "accepts")

    def __init__(self, sink: TelemetrySink, name: str, maxsize: int) -> None:
        self.sink = sink
        self.accepts: Any = getattr(sink, "accepts", None) or _takes_every_kind
        self.name = name
        self.items: deque[TelemetryRecord] = deque(maxlen=maxsize)
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.dropped = 0


class TelemetryQueue:
    """Bounded in-memory fan-out of telemetry records to registered sinks.

    Interface for sinks (used by the sync helper's NATS shipper):
        queue.add_sink(sink, name="nats")      # start receiving every record put from now on
        queue.remove_sink(sink)                # stop; pending records of that sink are discarded
    Producers call `queue.put(record)` (sync, never blocks). `start()` / `stop()` are called by the app's
    lifespan; `stop()` flushes what is pending to each sink before returning (bounded by `drain_timeout_s`).
    """

    def __init__(
        self, *, maxsize: int = 10_000, batch_size: int = 200, flush_interval_s: float = 1.0, on_drop: Any = None
    ) -> None:
        self.maxsize = maxsize
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._lanes: list[_SinkLane] = []
        self._durable: list[tuple[DurableSink, str, Any]] = []
        """(sink, name, its `accepts`)"""
        self._running = False
        self._on_drop = on_drop

    @property
    def sinks(self) -> list[TelemetrySink]:
        return [lane.sink for lane in self._lanes]

    def add_sink(self, sink: TelemetrySink, name: str | None = None) -> None:
        lane = _SinkLane(sink, name or type(sink).__name__, self.maxsize)
        self._lanes = [*self._lanes, lane]
        if self._running:
            lane.task = asyncio.get_running_loop().create_task(self._drain(lane), name=f"telemetry-{lane.name}")

    def add_durable_sink(self, sink: DurableSink, name: str | None = None) -> None:
        """Hand every record put from now on, of the kinds `sink.accepts` (all without it), to `sink.write`
        synchronously (see the module docstring)."""
        accepts = getattr(sink, "accepts", None) or _takes_every_kind
        self._durable = [*self._durable, (sink, name or type(sink).__name__, accepts)]

    @property
    def has_durable_sinks(self) -> bool:
        return bool(self._durable)

    def wants(self, kind: type) -> bool:
        """Whether a record of `kind` would reach any sink now (see the module docstring): a sink, durable or not,
        takes the kinds its `accepts` names, every kind without it."""
        for _, _, accepts in self._durable:
            if accepts(kind):
                return True
        for lane in self._lanes:
            if lane.accepts(kind):
                return True
        return False

    def remove_sink(self, sink: Any) -> None:
        self._durable = [entry for entry in self._durable if entry[0] is not sink]
        for lane in self._lanes:
            if lane.sink is sink:
                self._lanes = [x for x in self._lanes if x is not lane]
                if lane.task is not None:
                    lane.task.cancel()

    def put(self, record: TelemetryRecord, pending: list[asyncio.Future[None]] | None = None) -> None:
        """Queue `record` for every sink; the durable sinks' futures go to `pending` (else failures are logged)."""
        if self._durable:
            kind = type(record)
            for sink, name, accepts in self._durable:
                if accepts is not _takes_every_kind and not accepts(kind):
                    continue
                try:
                    future = sink.write(record)
                except Exception as exc:
                    log.error("telemetry sink %s refused a record: %s", name, exc)
                    if self._on_drop is not None:
                        self._on_drop(name)
                    continue
                if pending is not None:
                    pending.append(future)
                else:
                    future.add_done_callback(log_failed_write)
        for lane in self._lanes:
            items = lane.items
            if len(items) == items.maxlen:
                lane.dropped += 1
                if self._on_drop is not None:
                    self._on_drop(lane.name)
            items.append(record)
            if len(items) >= self.batch_size:
                lane.wakeup.set()

    def pending(self) -> int:
        return sum(len(lane.items) for lane in self._lanes)

    async def start(self) -> None:
        self._running = True
        loop = asyncio.get_running_loop()
        for lane in self._lanes:
            if lane.task is None:
                lane.task = loop.create_task(self._drain(lane), name=f"telemetry-{lane.name}")

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        self._running = False
        lanes = list(self._lanes)
        for lane in lanes:
            if lane.task is not None:
                lane.task.cancel()
        for lane in lanes:
            if lane.task is not None:
                try:
                    await lane.task
                except asyncio.CancelledError:
                    pass
                lane.task = None
        try:
            async with asyncio.timeout(drain_timeout_s):
                for lane in lanes:
                    while lane.items:
                        await self._deliver(lane)
        except TimeoutError:
            log.warning("telemetry: gave up flushing %d records at shutdown", self.pending())

    async def flush(self) -> None:
        """Deliver everything pending now (tests and shutdown)."""
        for lane in list(self._lanes):
            while lane.items:
                await self._deliver(lane)

    async def _drain(self, lane: _SinkLane) -> None:
        while True:
            if not lane.items:
                lane.wakeup.clear()
                try:
                    await asyncio.wait_for(lane.wakeup.wait(), self.flush_interval_s)
                except TimeoutError:
                    pass
            elif len(lane.items) < self.batch_size:
                lane.wakeup.clear()
                try:  # gather a fuller batch, but never hold records longer than the flush interval
                    await asyncio.wait_for(lane.wakeup.wait(), self.flush_interval_s)
                except TimeoutError:
                    pass
            if lane.items:
                await self._deliver(lane)

    async def _deliver(self, lane: _SinkLane) -> None:
        items = lane.items
        batch = [items.popleft() for _ in range(min(self.batch_size, len(items)))]
        try:
            await lane.sink.submit_batch(batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("telemetry sink %s failed on a batch of %d records (dropped)", lane.name, len(batch))


def log_failed_write(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a telemetry record could not be made durable: %s", future.exception())
