"""Edge payloads up: persist each payload once, acknowledge, then hand it to the owning studio plugin.

Once a payload is committed to PostgreSQL it is safe, so the NATS message is acknowledged right away; delivery
to the plugin's `accept_edge_payload` is then retried from the table (every `retry_every_s`) until it
succeeds, so a plugin that is down or slow never makes the edge hold or re-send its payload.

The payload's edge and namespace are those of its subject (`identity.py`); a payload addressed to a plugin of
another namespace is refused (logged, counted in `refused`, terminated), never stored or delivered.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from control_plane.analytics.models import EdgePayloadRecord
from control_plane.analytics.services import edge_payload_mark_delivered, edge_payload_store
from shared_sdk.messages import EdgePayload
from shared_sdk.sync_protocol import PAYLOAD_CONSUMER, PayloadEnvelope, decode, edge_payload_problem

from .db import run_db
from .identity import up_identity
from .pull_consumer import PullConsumer

log = logging.getLogger("fjordgate.bridge")


def _deliver(record: EdgePayloadRecord) -> None:
    """Call the studio plugin (sync; runs on the bridge's DB thread so the plugin may use the ORM-backed services)."""
    from control_plane.plugins.runtime import call_plugin

    payload = EdgePayload(
        payload=bytes(record.payload),
        edge_id=record.edge_id,
        edge_namespace=record.namespace,
        correlation_id=record.correlation_id,
        plugin_slug=record.plugin_slug,
        metadata=dict(record.metadata),
        edge_timestamp=int(record.edge_timestamp.timestamp()),
        received_timestamp=int(record.received_timestamp.timestamp()),
    )
    try:
        call_plugin(record.plugin_slug, "accept_edge_payload", payload)
    except Exception as exc:
        log.warning("plugin %s did not accept payload %s: %s", record.plugin_slug, record.record_id, exc)
        edge_payload_mark_delivered(record=record, error=f"{type(exc).__name__}: {exc}")
        return
    edge_payload_mark_delivered(record=record)


def _plugin_namespace(slug: str) -> str | None:
    from control_plane.plugins.models import Plugin

    return Plugin.objects.filter(slug=slug).values_list("namespace", flat=True).first()


def _store_and_deliver(envelope: PayloadEnvelope) -> str | None:
    """Store and deliver; returns why the payload was refused, or None."""
    payload = envelope.payload
    for field, text in (("record_id", envelope.record_id), ("plugin_slug", payload.plugin_slug)):
        if "\x00" in text:  # PostgreSQL's text cannot hold it: the plugin's lookup raised, and held up the fetch
            return f"its {field} holds a NUL character"
    problem = edge_payload_problem(payload.payload, payload.metadata, payload.correlation_id)
    if problem is not None:
        return problem
    owner = _plugin_namespace(envelope.payload.plugin_slug)
    if owner not in (None, "", envelope.payload.edge_namespace):
        return f"plugin {envelope.payload.plugin_slug!r} belongs to namespace {owner!r}"
    record, created = edge_payload_store(envelope=envelope)
    if created or record.delivered_at is None:
        _deliver(record)
    return None


def _retry_undelivered(limit: int = 100) -> int:
    records = list(EdgePayloadRecord.objects.filter(delivered_at__isnull=True).order_by("received_timestamp")[:limit])
    for record in records:
        _deliver(record)
    return len(records)


class PayloadReceiver(PullConsumer):
    what = "payload"
    subject = "fj.up.*.*.payload"
    durable = PAYLOAD_CONSUMER

    def __init__(self, js: JetStreamContext) -> None:
        super().__init__(js, fetch_batch=16)
        self.received = 0
        self.refused = 0

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60, max_ack_pending=1000)

    async def handle(self, messages: list[Any]) -> None:
        for message in messages:
            try:
                identity = up_identity(message.subject, "payload")
                envelope = decode(message.data, PayloadEnvelope)
            except (msgspec.DecodeError, ValueError) as exc:
                log.error("dropping undecodable payload on %s: %s", message.subject, exc)
                await message.term()
                continue
            envelope.payload.edge_namespace = identity.namespace
            envelope.payload.edge_id = identity.edge_id
            if not envelope.payload.received_timestamp:
                envelope.payload.received_timestamp = int(time.time())
            refused = await run_db(_store_and_deliver, envelope)
            if refused is not None:
                self.refused += 1
                log.warning("refused payload %s on %s: %s", envelope.record_id[:64], message.subject, refused)
                await message.term()
                continue
            await message.ack()
            self.received += 1

    @staticmethod
    def retry_once() -> int:
        """Leader duty (sync, on the DB thread): re-offer payloads whose plugin failed to accept them."""
        return _retry_undelivered()
