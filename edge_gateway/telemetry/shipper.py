"""The edge's telemetry and payload shipper: a `TelemetrySink` that writes through the spool to JetStream.

Everything goes to the on-disk spool first and is removed only after JetStream acknowledged it, so NATS being
down, or the edge being killed, delays telemetry but does not lose it. The sender publishes strictly in spool
order, one message at a time (a JetStream ack is sub-millisecond on a LAN, and ordering is the point), and backs
off exponentially while NATS is unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from nats.aio.client import Client

from shared_sdk.messages import AnalyticsRecord, BudgetUsage, EdgePayload, ProxyLog
from shared_sdk.sync_protocol import PayloadEnvelope, TelemetryBatch, encode, up_subject

from .spool import Spool

log = logging.getLogger("fjordgate.edge.telemetry")

MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_RECORDS_PER_BATCH = 500


class PayloadTooLarge(ValueError):
    pass


class TelemetryShipper:
    """Register with `TelemetryQueue.add_sink(shipper, "nats")`; call `attach(nc)` once NATS is connected."""

    def __init__(self, *, namespace: str, edge_id: str, spool: Spool) -> None:
        self.namespace = namespace
        self.edge_id = edge_id
        self.spool = spool
        self._nc: Client | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._telemetry_subject = up_subject(namespace, edge_id, "telemetry")
        self._payload_subject = up_subject(namespace, edge_id, "payload")
        self.published = 0

    def attach(self, nc: Client | None) -> None:
        self._nc = nc
        self._wake.set()

    async def submit_batch(self, records: list[Any]) -> None:
        """TelemetrySink: spool the records as one or more batches (at most MAX_RECORDS_PER_BATCH each)."""
        for start in range(0, len(records), MAX_RECORDS_PER_BATCH):
            part = records[start : start + MAX_RECORDS_PER_BATCH]
            batch = TelemetryBatch(
                batch_id=uuid.uuid4().hex,
                edge_id=self.edge_id,
                namespace=self.namespace,
                created_at=time.time(),
                analytics=[r for r in part if isinstance(r, AnalyticsRecord)],
                budget_usage=[r for r in part if isinstance(r, BudgetUsage)],
                proxy_logs=[r for r in part if isinstance(r, ProxyLog)],
            )
            if not (batch.analytics or batch.budget_usage or batch.proxy_logs):
                continue
            await self.spool.append(self._telemetry_subject, batch.batch_id, encode(batch))
        self._idle.clear()
        self._wake.set()

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
                metadata=dict(metadata or {}),
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
            js = nc.jetstream(timeout=5)
            try:
                while messages := await self.spool.head(100):
                    for message in messages:
                        await js.publish(message.subject, message.body, headers={"Nats-Msg-Id": message.msg_id})
                        await self.spool.remove([message.seq])
                        self.published += 1
                backoff = 0.2
                self._idle.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("publishing telemetry failed (%s); %d messages spooled", exc, self.spool.records)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._wake.set()
