"""A bounded, ordered, on-disk queue of outgoing NATS messages (SQLite in WAL mode).

Why a spool in front of NATS at all: telemetry and plugin payloads must survive NATS being down and the edge
being killed, so every message is written here first and deleted only once JetStream acknowledged it. Replay
is in insertion order (`seq`), so the control plane sees an edge's records in the order they happened.

The bound is in bytes (EDGE_SPOOL_MAX_BYTES). At 80 % a warning is logged and the `fjordgate_edge_spool_*`
gauges show it; at 100 % new messages are refused (counted in `fjordgate_edge_spool_dropped_total` and logged
as an error) rather than evicting older ones, so what is kept stays a gap-free prefix of what happened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger("fjordgate.edge.spool")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    body BLOB NOT NULL,
    size INTEGER NOT NULL
)
"""
WARN_FRACTION = 0.8


class SpoolFull(Exception):
    """The spool is at its bound; the message was not stored."""


@dataclass(frozen=True)
class SpooledMessage:
    seq: int
    subject: str
    msg_id: str
    body: bytes


class Spool:
    def __init__(self, path: str | Path, *, max_bytes: int, registry: CollectorRegistry | None = None) -> None:
        self._path = Path(path)
        self.max_bytes = max_bytes
        self._db: aiosqlite.Connection | None = None
        self.records = 0
        self.bytes = 0
        self._warned = False
        self._records_gauge = Gauge(
            "fjordgate_edge_spool_records", "Messages waiting in the on-disk spool", registry=registry
        )
        self._bytes_gauge = Gauge("fjordgate_edge_spool_bytes", "Bytes waiting in the on-disk spool", registry=registry)
        self._limit_gauge = Gauge("fjordgate_edge_spool_max_bytes", "Bound of the on-disk spool", registry=registry)
        self._dropped = Counter(
            "fjordgate_edge_spool_dropped", "Messages refused because the spool was full", registry=registry
        )
        self._limit_gauge.set(max_bytes)

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self._path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process kill
        await self._db.execute(_SCHEMA)
        await self._db.commit()
        async with self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox") as cursor:
            self.records, self.bytes = await cursor.fetchone()
        self._update_gauges()
        if self.records:
            log.info("spool holds %d messages (%d bytes) from a previous run; replaying", self.records, self.bytes)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    def _update_gauges(self) -> None:
        self._records_gauge.set(self.records)
        self._bytes_gauge.set(self.bytes)
        near = self.bytes >= self.max_bytes * WARN_FRACTION
        if near and not self._warned:
            log.warning(
                "telemetry spool is %.0f%% full (%d of %d bytes): NATS has been unreachable for a while",
                100 * self.bytes / self.max_bytes,
                self.bytes,
                self.max_bytes,
            )
        self._warned = near

    async def append(self, subject: str, msg_id: str, body: bytes) -> int:
        """Store one message durably; raises SpoolFull when it would exceed the bound."""
        assert self._db is not None, "spool not opened"
        if self.bytes + len(body) > self.max_bytes:
            self._dropped.inc()
            log.error("telemetry spool full (%d bytes): message %s on %s refused", self.bytes, msg_id, subject)
            raise SpoolFull(msg_id)
        cursor = await self._db.execute(
            "INSERT INTO outbox (subject, msg_id, body, size) VALUES (?, ?, ?, ?)", (subject, msg_id, body, len(body))
        )
        await self._db.commit()
        self.records += 1
        self.bytes += len(body)
        self._update_gauges()
        return cursor.lastrowid

    async def head(self, limit: int = 100) -> list[SpooledMessage]:
        """The oldest messages, in order."""
        assert self._db is not None, "spool not opened"
        async with self._db.execute(
            "SELECT seq, subject, msg_id, body FROM outbox ORDER BY seq LIMIT ?", (limit,)
        ) as cursor:
            return [SpooledMessage(*row) for row in await cursor.fetchall()]

    async def remove(self, seqs: list[int]) -> None:
        """Forget messages NATS acknowledged."""
        assert self._db is not None, "spool not opened"
        if not seqs:
            return
        marks = ",".join("?" * len(seqs))
        async with self._db.execute(
            f"SELECT COALESCE(SUM(size), 0), COUNT(*) FROM outbox WHERE seq IN ({marks})", seqs
        ) as c:
            size, count = await c.fetchone()
        await self._db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", seqs)
        await self._db.commit()
        self.records -= count
        self.bytes -= size
        self._update_gauges()
