"""Telemetry up: a durable pull consumer shared by every bridge, bulk insert, acknowledge after commit.

A crash between commit and ack makes NATS re-deliver the batch; the unique record_id turns the second insert
into a no-op, so each record is stored exactly once. A message that cannot be decoded is terminated (it would
fail the same way on every re-delivery) and logged with its subject.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from control_plane.analytics.services import analytics_ingest_batches
from shared_sdk.sync_protocol import TELEMETRY_CONSUMER, UP_STREAM, TelemetryBatch, decode

from .db import run_db

log = logging.getLogger("fjordgate.bridge")

FETCH_BATCH = 64


class TelemetryIngestor:
    def __init__(
        self,
        js: JetStreamContext,
        *,
        on_ingested: Callable[[set[str]], Awaitable[None]] | None = None,
        fetch_batch: int = FETCH_BATCH,
    ) -> None:
        """`fetch_batch`: messages (each up to 500 records) fetched and committed in one transaction."""
        self._js = js
        self._on_ingested = on_ingested
        self._fetch_batch = fetch_batch
        self.records_inserted = 0
        self.batches = 0

    async def run(self) -> None:
        while True:
            try:
                subscription = await self._js.pull_subscribe(
                    "fj.up.*.*.telemetry",
                    durable=TELEMETRY_CONSUMER,
                    stream=UP_STREAM,
                    config=ConsumerConfig(
                        ack_policy=AckPolicy.EXPLICIT,
                        deliver_policy=DeliverPolicy.ALL,
                        ack_wait=30,
                        max_ack_pending=20_000,
                    ),
                )
                await self._consume(subscription)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("telemetry consumer interrupted (%s); resubscribing", exc)
                await asyncio.sleep(1)

    async def _consume(self, subscription) -> None:
        while True:
            try:
                messages = await subscription.fetch(self._fetch_batch, timeout=1)
            except TimeoutError:  # nats.errors.TimeoutError or a bare one from fetch()
                continue
            batches: list[TelemetryBatch] = []
            good = []
            for message in messages:
                try:
                    batches.append(decode(message.data, TelemetryBatch))
                    good.append(message)
                except msgspec.DecodeError as exc:
                    log.error("dropping undecodable telemetry on %s: %s", message.subject, exc)
                    await message.term()
            if not batches:
                continue
            result = await run_db(analytics_ingest_batches, batches)  # commits before returning
            for message in good:
                await message.ack()
            self.batches += len(batches)
            self.records_inserted += result.inserted
            log.debug("ingested %d batches: %d records, %d new", len(batches), result.received, result.inserted)
            if self._on_ingested is not None:
                namespaces = {b.namespace for b in batches if b.budget_usage}
                if namespaces:
                    await self._on_ingested(namespaces)
