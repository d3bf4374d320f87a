"""The edge's telemetry and payload shipper: writes through the spool, publishes to JetStream in spool order.

Durability comes first: `write(record)` (called by `TelemetryQueue.put` for each record of each accepted
request) queues the record to the spool's writer thread and returns a future that resolves once it is
committed; the edge holds the end of the response until then (`accounting.account` -> `Pipeline.serve`), so a client
that received its response can count on the record reaching PostgreSQL even if the edge is SIGKILLed a
microsecond later. While the spool's writer is idle (no transaction under way), a record goes into the journal
instead (`journal.py`: durable against a SIGKILL as soon as it is written, no thread round trip), and the future
returned is already resolved; the journal's records reach the spool in groups every JOURNAL_DRAIN_S. Under load a
commit is under way most of the time: a response waiting for it costs little, and its records join that group.
A record leaves the spool only after the JetStream ack of the batch that carried it.

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
from typing import Any

import msgspec
from nats.aio.client import Client

from shared_sdk.messages import AnalyticsRecord, BudgetUsage, EdgePayload, ProxyLog
from shared_sdk.sync_protocol import PayloadEnvelope, TelemetryBatchRaw, encode, up_subject

from .journal import Journal
from .spool import Spool, SpoolClosed, SpooledRecord

log = logging.getLogger("fjordgate.edge.telemetry")

MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_RECORDS_PER_BATCH = 500
KIND_ANALYTICS, KIND_BUDGET_USAGE, KIND_PROXY_LOG = 0, 1, 2
_KINDS: dict[type, int] = {AnalyticsRecord: KIND_ANALYTICS, BudgetUsage: KIND_BUDGET_USAGE, ProxyLog: KIND_PROXY_LOG}
_encode = msgspec.msgpack.Encoder().encode
_encode_as_text = msgspec.msgpack.Encoder(enc_hook=str).encode


def _encode_record(record: Any) -> bytes:
    """The record's msgpack; a value msgpack cannot encode is sent as its text, rather than the record dropped.

    Why: an in-process plugin's `context_updates` land in the request's `context.metadata` as they are, and one
    object msgpack does not know (a class of the plugin's own) made the whole record fail to encode: the request
    went unrecorded (no usage, no cost for its budgets) and the log did not say which value. An isolated plugin's
    values already arrive as their text (its wire encodes them so), so both ways now record the same thing.
    """
    try:
        return _encode(record)
    except (TypeError, msgspec.EncodeError) as exc:
        context = getattr(record, "context", None)
        metadata = getattr(context, "metadata", None) or {}
        keys = [key for key, value in metadata.items() if not _encodable(value)]
        log.warning(
            "telemetry record of request %s: metadata %s not encodable (%s), recorded as text; a plugin's "
            "context_updates should hold JSON-like values",
            getattr(record, "request_id", ""),
            ", ".join(map(repr, keys)) or "(a value)",
            exc,
        )
        return _encode_as_text(record)


def _encodable(value: Any) -> bool:
    try:
        _encode(value)
    except (TypeError, msgspec.EncodeError):
        return False
    return True


JOURNAL_DRAIN_S = 0.01
"""How long journaled records wait to go to the spool together (they are durable already: this is batching)."""
JOURNAL_DRAIN_AT = 256
"""Journaled records that go to the spool at once, without waiting for the drain timer."""


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

    `proxy_logs`: whether it takes `ProxyLog` records from the queue (`accepts`). The edge ships them only when they
    carry bodies (`EDGE_LOG_BODIES`): without, a proxy log repeats the analytics record of the same request but
    for its method and path, which the analytics record carries too, and was a third of every request's records to
    journal, spool and publish. Its batches then say `proxy_logs_from_analytics`, and the control plane stores each
    request's proxy log from its analytics record (a collector plugin at the edge still gets `ProxyLog` records).

    It never takes `BudgetUsage` records, for the same reason: a request's usage record repeats its analytics record's
    ids, tokens, cost and currency. Its batches say `budget_usage_from_analytics`, and the control plane stores each
    request's usage record from its analytics record. (Without a collector plugin that takes them, the edge then
    builds none: `TelemetryQueue.wants`.) Measured (`bench/deployed_overhead.py --rounds 4 --baseline <tree before>`,
    four runs): the deployed edge's CPU per request, medians, -6 %, -17 %, -14 % and -10 % against shipping both.
    """

    def __init__(
        self,
        *,
        namespace: str,
        edge_id: str,
        spool: Spool,
        linger_s: float = 0.05,
        journal: Journal | None = None,
        proxy_logs: bool = True,
    ) -> None:
        self.namespace = namespace
        self.edge_id = edge_id
        self.spool = spool
        self.journal = journal
        """Where a record is durable at once (`journal.py`); None, full or failed: the spool's own round trip."""
        self._journaled: list[tuple[int, bytes]] = []
        self._drain_timer: asyncio.TimerHandle | None = None
        self._drains: set[asyncio.Future[None]] = set()
        self._durable: asyncio.Future[None] | None = None
        """A resolved future: what `write` returns for a journaled record (nothing to wait for)."""
        self.unspooled = 0
        self.unspooled_bytes = 0
        """Records (and their bytes) durable in the journal and not yet committed to the spool: with the spool's
        own figures, what this edge holds for the control plane (`/ready`, heartbeats)."""
        self._linger_s = linger_s
        self._proxy_logs = proxy_logs
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

    def accepts(self, kind: type) -> bool:
        """The kinds `TelemetryQueue` hands this sink: analytics records, and proxy logs if `proxy_logs`."""
        return kind is AnalyticsRecord or (kind is ProxyLog and self._proxy_logs)

    def attach(self, nc: Client | None) -> None:
        self._nc = nc
        self._wake.set()

    # -- producers ----------------------------------------------------------------------------------------------

    def write(self, record: Any) -> asyncio.Future[None]:
        """DurableSink: spool one record; the future resolves once it is on disk. Raises SpoolFull/SpoolClosed.

        Records written in the same event-loop turn (the three of one request, or of several requests finishing
        together) go to the spool's writer thread as one operation: one thread hop and one INSERT batch.
        """
        body = _encode_record(record)
        kind = _KINDS[type(record)]
        self.spool.reserve(len(body), "record")
        journal = self.journal
        if journal is not None and self._durable is not None and not self.spool.queued:
            if journal.append(kind, body):
                self.unspooled += 1
                self.unspooled_bytes += len(body)
                journaled = self._journaled
                journaled.append((kind, body))
                if len(journaled) >= JOURNAL_DRAIN_AT:
                    self._drain_journal()
                elif self._drain_timer is None:
                    self._drain_timer = asyncio.get_running_loop().call_later(JOURNAL_DRAIN_S, self._drain_journal)
                    self._idle.clear()
                return self._durable
            self._drain_journal()  # the ring is full: what it holds goes first, this record the spool's way
        self._pending.append((kind, body))
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

    # -- the journal ---------------------------------------------------------------------------------------------

    async def open_journal(self) -> None:
        """Map the journal (after the spool opened) and spool again what a killed edge left only in it."""
        journal = self.journal
        if journal is None:
            return
        try:
            journal.open()
        except OSError as exc:  # a file system without shared mappings or preallocation: every record waits
            log.warning("telemetry journal %s not usable (%s); responses wait for the spool", journal.path, exc)
            self.journal = None
            return
        mark = await self.spool.journal_mark()
        committed = mark[1] if mark is not None and mark[0] == journal.journal_id else None
        left = journal.unreleased(committed)
        if left:
            try:
                self.spool.reserve(sum(len(body) for _, body in left), "journaled records")
                await self.spool.write_records(left, (journal.journal_id, journal.head))
            except Exception as exc:
                # Kept in the journal for the next start; until then no record is journaled, so nothing written
                # later can release the ring past them.
                log.error("%d journaled records found at start-up not spooled (%s); kept", len(left), exc)
                return
            log.info("%d telemetry records recovered from the journal", len(left))
        journal.release(journal.head)
        self._durable = asyncio.get_running_loop().create_future()
        self._durable.set_result(None)
        if left:
            self._idle.clear()
            self._wake.set()

    def _drain_journal(self) -> None:
        """Hand what the journal holds to the spool as one group; its ring space is released once committed."""
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        items, self._journaled = self._journaled, []
        journal = self.journal
        if not items or journal is None:
            return
        end = journal.head
        try:
            written = self.spool.write_records(items, (journal.journal_id, end))
        except SpoolClosed:
            return  # stopping: the records stay in the journal and are spooled at the next start
        self._drains.add(written)
        size = sum(len(body) for _, body in items)
        written.add_done_callback(lambda done: self._journal_drained(done, end, len(items), size))
        self._idle.clear()
        self._wake.set()

    def _journal_drained(self, done: asyncio.Future[None], end: int, count: int, size: int) -> None:
        self._drains.discard(done)
        journal = self.journal
        if journal is None:
            return
        error = "cancelled" if done.cancelled() else done.exception()
        if error is not None:
            # Kept in the journal (its mark did not move): spooled again at the next start. Until then records
            # take the spool's own round trip, so no later commit releases the ring past them.
            log.error("journaled telemetry not spooled (%s); kept in the journal for the next start", error)
            self._durable = None
            return
        self.unspooled -= count
        self.unspooled_bytes -= size
        if self._durable is not None:
            journal.release(end)

    async def flush_journal(self, timeout_s: float = 5.0) -> None:
        """Spool what the journal holds now and wait (bounded) until the spool committed it."""
        self._drain_journal()
        if self._drains:
            await asyncio.wait(set(self._drains), timeout=timeout_s)

    async def close_journal(self, timeout_s: float = 5.0) -> None:
        """Spool what the journal holds and unmap it (before the spool closes)."""
        if self.journal is None or not self.journal.is_open:
            return
        await self.flush_journal(timeout_s)
        self._durable = None
        self.journal.close()

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
            proxy_logs_from_analytics=not self._proxy_logs,
            budget_usage_from_analytics=True,
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
                if not self._wake.is_set() and not self._journaled and not self._drains:
                    self._idle.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("publishing telemetry failed (%s); %d messages spooled", exc, self.spool.records)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._wake.set()
