"""Telemetry up: a durable pull consumer shared by every bridge, bulk insert, acknowledge after commit.

A crash between commit and ack makes NATS re-deliver the batch; the unique record_id turns the second insert
into a no-op, so each record is stored exactly once. A message that cannot be decoded is terminated (it would
fail the same way on every re-delivery) and logged with its subject.

Each batch's namespace and edge are those of its subject, and records naming another namespace's app or LLM
are refused (counted in `records_refused`, logged): see `identity.py`.

`lag_s` (the bridge's `telemetry_lag_seconds`): how long the oldest message of the last fetch had been in the
stream when its records were committed. It is timed from JetStream's own store time, not from the records' answer
times, which an edge writes and could set to any date; the edge's share of the lag (the spool, the shipper's
linger of 50 ms) comes before it and shows at the edge (`/ready`'s spooled records).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from nats.errors import NotJSMessageError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from control_plane.analytics.services import IngestResult, analytics_ingest_batches
from shared_sdk.sync_protocol import TELEMETRY_CONSUMER, TelemetryBatch, decode

from .db import run_db
from .identity import ScopedTelemetry, UpIdentity, telemetry_in_scope, up_identity
from .pull_consumer import PullConsumer

log = logging.getLogger("fjordgate.bridge")

FETCH_BATCH = 64
LINGER_S = 0.2
"""After a fetch of one message (`PullConsumer`): one edge at low traffic costs far fewer transactions, for at most
this much more ingest lag; with more traffic a fetch takes several messages and goes straight on."""


def _ingest_in_scope(received: list[tuple[UpIdentity, TelemetryBatch]]) -> tuple[ScopedTelemetry, IngestResult]:
    scoped = telemetry_in_scope(received)
    return scoped, analytics_ingest_batches(scoped.batches)  # commits before returning


def _stored_at(message: Any) -> float | None:
    """When JetStream stored `message` (Unix seconds, the server's clock); None if its reply subject says nothing."""
    try:
        return float(message.metadata.timestamp.timestamp())
    except (NotJSMessageError, IndexError, ValueError, OverflowError):  # no JetStream delivery's ack subject
        return None


class TelemetryIngestor(PullConsumer):
    what = "telemetry"
    subject = "fj.up.*.*.telemetry"
    durable = TELEMETRY_CONSUMER

    def __init__(
        self,
        js: JetStreamContext,
        *,
        on_ingested: Callable[[set[str]], Awaitable[None]] | None = None,
        fetch_batch: int = FETCH_BATCH,
        linger_s: float = LINGER_S,
    ) -> None:
        """`fetch_batch`: messages (each up to 500 records) fetched and committed in one transaction."""
        super().__init__(js, fetch_batch=fetch_batch, linger_s=linger_s)
        self._on_ingested = on_ingested
        self.records_inserted = 0
        self.records_refused = 0
        """Records naming an app or LLM outside their subject's namespace (metric)."""
        self.batches = 0
        self.lag_s = 0.0
        """Seconds from the store of the last fetch's oldest message in the stream to the commit of its records."""

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=30, max_ack_pending=20_000
        )

    async def handle(self, messages: list[Any]) -> None:
        received: list[tuple[UpIdentity, TelemetryBatch]] = []
        good = []
        for message in messages:
            try:
                received.append((up_identity(message.subject, "telemetry"), decode(message.data, TelemetryBatch)))
                good.append(message)
            except (msgspec.DecodeError, ValueError) as exc:
                log.error("dropping undecodable telemetry on %s: %s", message.subject, exc)
                await message.term()
        if not received:
            return
        stored = min(filter(None, map(_stored_at, good)), default=None)
        scoped, result = await run_db(_ingest_in_scope, received)
        if stored is not None:
            self.lag_s = max(0.0, time.time() - stored)
        for message in good:
            await message.ack()
        self.batches += len(received)
        self.records_inserted += result.inserted
        if scoped.refused:
            self.records_refused += scoped.refused
            for reason in scoped.reasons:
                log.warning("refused telemetry outside its subject's namespace: %s", reason)
        log.debug("ingested %d batches: %d records, %d new", len(received), result.received, result.inserted)
        if self._on_ingested is not None:
            namespaces = {
                b.namespace for b in scoped.batches if b.budget_usage or (b.budget_usage_from_analytics and b.analytics)
            }
            if namespaces:
                await self._on_ingested(namespaces)
