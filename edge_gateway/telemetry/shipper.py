"""The edge's telemetry and payload shipper: writes through the spool, publishes to JetStream in spool order.

Durability comes first: `write(record)` (called by `TelemetryQueue.put` for each record of each accepted
request) queues the record to the spool's writer thread and returns a future that resolves once it is
committed; the edge holds the end of the response until then (`accounting.account` -> `Pipeline.serve`), so a client
that received its response can count on the record reaching PostgreSQL even if the edge is SIGKILLed a
microsecond later. A record leaves the spool only after the JetStream ack of the batch that carried it.

The sender publishes strictly in spool order, one message at a time (a JetStream ack is sub-millisecond on a
LAN, and ordering is the point), up to MAX_RECORDS_PER_BATCH records per message, and backs off
exponentially while NATS is unreachable. A batch's `Nats-Msg-Id` is `<spool id>:<first seq>-<last seq>`, so a
replay after a lost ack is dropped by the server's duplicate window, and the unique `record_id` in PostgreSQL
makes any other re-delivery harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from nats.aio.client import Client

from shared_sdk.messages import AnalyticsRecord, BudgetUsage, EdgePayload, ProxyLog
from shared_sdk.sync_protocol import PayloadEnvelope, TelemetryBatchRaw, encode, up_subject

from .spool import Spool, SpooledRecord

log = logging.getLogger("fjordgate.edge.telemetry")

MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_RECORDS_PER_BATCH = 500
KIND_ANALYTICS, KIND_BUDGET_USAGE, KIND_PROXY_LOG = 0, 1, 2
_KINDS: dict[type, int] = {AnalyticsRecord: KIND_ANALYTICS, BudgetUsage: KIND_BUDGET_USAGE, ProxyLog: KIND_PROXY_LOG}
_encode = msgspec.msgpack.Encoder().encode


class PayloadTooLarge(ValueError):
    pass


def _transfer(done: asyncio.Future[None], future: asyncio.Future[None]) -> None:
    if future.done():
        return
    if done.cancelled():
        future.cancel()
    elif done.exception() is not None:
        future.set_exception(done.exception())  # type: ignore[arg-type]
    else:
        future.set_result(None)


class TelemetryShipper:
    """Register with `TelemetryQueue.add_durable_sink(shipper, "nats")`; `attach(nc)` once NATS is connected.

    `linger_s`: after the first record arrives, the sender waits this long so the batch it publishes carries
    what arrived meanwhile (fewer, larger JetStream messages; it bounds how stale the control plane's view is).
    """

    def __init__(self, *, namespace: str, edge_id: str, spool: Spool, linger_s: float = 0.05) -> None:
        self.namespace = namespace
        self.edge_id = edge_id
        self.spool = spool
        self._linger_s = linger_s
        self._nc: Client | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._telemetry_subject = up_subject(namespace, edge_id, "telemetry")
        self._payload_subject = up_subject(namespace, edge_id, "payload")
        self.published = 0
        self.published_records = 0
        self._pending: list[tuple[int, bytes]] = []
        self._pending_future: asyncio.Future[None] | None = None
        self.on_budget_usage: Callable[[BudgetUsage], None] | None = None
        """Told of every BudgetUsage written (the config sync counts this edge's unreflected spend)."""

    def attach(self, nc: Client | None) -> None:
        self._nc = nc
        self._wake.set()

    # -- producers ----------------------------------------------------------------------------------------------

    def write(self, record: Any) -> asyncio.Future[None]:
        """DurableSink: spool one record; the future resolves once it is on disk. Raises SpoolFull/SpoolClosed.

        Records written in the same event-loop turn (the three of one request, or of several requests finishing
        together) go to the spool's writer thread as one operation: one thread hop and one INSERT batch.
        """
        body = _encode(record)
        self.spool.reserve(len(body), "record")
        self._pending.append((_KINDS[type(record)], body))
        if type(record) is BudgetUsage and self.on_budget_usage is not None:
            self.on_budget_usage(record)
        future = self._pending_future
        if future is None:
            loop = asyncio.get_running_loop()
            future = self._pending_future = loop.create_future()
            loop.call_soon(self._hand_over)
        return future

    def _hand_over(self) -> None:
        items, future = self._pending, self._pending_future
        self._pending, self._pending_future = [], None
        if future is None or not items:
            return
        try:
            written = self.spool.write_records(items)
        except Exception as exc:
            future.set_exception(exc)
            return
        written.add_done_callback(lambda done: _transfer(done, future))
        self._idle.clear()
        self._wake.set()

    async def submit_batch(self, records: list[Any]) -> None:
        """TelemetrySink form (tests, tools): spool every record and return once all are on disk."""
        futures = {self.write(record) for record in records if type(record) in _KINDS}
        if futures:
            await asyncio.gather(*futures)

    async def submit_payload(
        self, *, plugin_slug: str, payload: bytes, correlation_id: str = "", metadata: dict[str, str] | None = None
    ) -> str:
        """Persist a gateway plugin's payload until the control plane acknowledged it; returns its record id."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(f"edge payloads are limited to {MAX_PAYLOAD_BYTES} bytes, got {len(payload)}")
        record_id = uuid.uuid4().hex
        envelope = PayloadEnvelope(
            record_id=record_id,
            payload=EdgePayload(
                payload=payload,
                edge_id=self.edge_id,
                edge_namespace=self.namespace,
                correlation_id=correlation_id or record_id,
                plugin_slug=plugin_slug,
                metadata={str(k): str(v) for k, v in (metadata or {}).items()},
                edge_timestamp=int(time.time()),
            ),
        )
        await self.spool.append(self._payload_subject, record_id, encode(envelope))
        self._idle.clear()
        self._wake.set()
        return record_id

    async def drained(self, timeout_s: float) -> bool:
        """Wait until everything spooled so far was acknowledged (or the timeout passed)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
            return True
        except TimeoutError:
            return False

    # -- the sender ---------------------------------------------------------------------------------------------

    def _batch(self, rows: list[SpooledRecord]) -> tuple[str, bytes]:
        lanes: tuple[list[msgspec.Raw], list[msgspec.Raw], list[msgspec.Raw]] = ([], [], [])
        for row in rows:
            lanes[row.kind].append(msgspec.Raw(row.body))
        batch_id = f"{self.spool.spool_id}:{rows[0].seq}-{rows[-1].seq}"
        message = TelemetryBatchRaw(
            batch_id=batch_id,
            edge_id=self.edge_id,
            namespace=self.namespace,
            created_at=time.time(),
            analytics=lanes[KIND_ANALYTICS],
            budget_usage=lanes[KIND_BUDGET_USAGE],
            proxy_logs=lanes[KIND_PROXY_LOG],
        )
        return batch_id, encode(message)

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self._wake.clear()
            nc = self._nc
            if nc is None or not nc.is_connected:
                continue
            if self._linger_s:
                await asyncio.sleep(self._linger_s)
            js = nc.jetstream(timeout=5)
            try:
                while messages := await self.spool.head(100):
                    for message in messages:
                        await js.publish(message.subject, message.body, headers={"Nats-Msg-Id": message.msg_id})
                        await self.spool.remove([message.seq])
                        self.published += 1
                while rows := await self.spool.head_records(MAX_RECORDS_PER_BATCH):
                    batch_id, body = self._batch(rows)
                    await js.publish(self._telemetry_subject, body, headers={"Nats-Msg-Id": batch_id})
                    await self.spool.remove_records(rows[-1].seq)
                    self.published += 1
                    self.published_records += len(rows)
                    if len(rows) < MAX_RECORDS_PER_BATCH:
                        # Caught up. What arrived during this round trip waits for the next linger: going on
                        # would publish whatever each round trip let in, a message (and two spool transactions)
                        # per request or two under steady traffic, instead of one per linger.
                        break
                backoff = 0.2
                if not self._wake.is_set():
                    self._idle.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("publishing telemetry failed (%s); %d messages spooled", exc, self.spool.records)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._wake.set()
