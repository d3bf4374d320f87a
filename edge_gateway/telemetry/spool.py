"""A bounded, ordered, on-disk queue of what the edge owes the control plane (SQLite in WAL mode).

Why a spool at all: a request whose client got its response must have its analytics row, whatever happens
next (NATS down, the edge SIGKILLed). So every telemetry record is written here *before* the response
completes, and deleted only once JetStream acknowledged the batch that carried it.

Why one writer thread with group commit: the request path must not do blocking I/O, and one SQLite
transaction per record would cap throughput. Every operation (append a record, append a payload, read the
head, delete what was acknowledged) is queued to a single thread that owns the connection; it takes whatever
has queued up, runs it in ONE transaction and resolves every waiter after the commit. Under load a commit
carries hundreds of records; alone, a record waits for one commit (tens of microseconds: WAL with
`synchronous=NORMAL` does not fsync on commit). A committed transaction is in the OS page cache, so it
survives a SIGKILL of the process; only a power loss can cost the last commits (fsync would be needed for
that, at a cost every request would pay).

The journal (`journal.py`) spares an idle edge's requests this round trip: their records are durable in a shared
memory mapping at once and come here in groups; `write_records` stores with each group how far in the journal it
reached (`meta.journal`), so a restart spools again only what no commit took.

Two tables: `records` holds single telemetry records (replayed in `seq` order, batched by the shipper);
`outbox` holds ready-made messages (plugin payloads). The bound is in bytes over both (EDGE_SPOOL_MAX_BYTES):
at 80 % a warning is logged and the `fjordgate_edge_spool_*` gauges show it; at 100 % new messages are
refused (counted in `fjordgate_edge_spool_dropped_total`, logged as an error) rather than evicting older
ones, so what is kept stays a gap-free prefix of what happened.

`records` and `bytes` (and the gauges, and the edge's `/ready`) count what is *committed*: a message counts
only once a SIGKILL can no longer lose it. Bytes queued but not yet committed are held apart (`pending_bytes`)
so the bound still covers them, and are released if their transaction fails.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger("fjordgate.edge.spool")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        subject TEXT NOT NULL,
        msg_id TEXT NOT NULL,
        body BLOB NOT NULL,
        size INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS records (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind INTEGER NOT NULL,
        body BLOB NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
WARN_FRACTION = 0.8
MAX_GROUP = 2000
"""Most operations one transaction carries (bounds the time a waiter spends behind others)."""


class SpoolFull(Exception):
    """The spool is at its bound; the message was not stored."""


class SpoolClosed(Exception):
    """The spool is not open (before start-up or after shutdown)."""


@dataclass(frozen=True)
class SpooledMessage:
    seq: int
    subject: str
    msg_id: str
    body: bytes


@dataclass(frozen=True)
class SpooledRecord:
    seq: int
    kind: int
    body: bytes


_OnCommit = Callable[[Any], None]
"""Runs on the event loop with the operation's result, in commit order, before its waiter is resolved."""
_OnFail = Callable[[], None]
_Op = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any] | None", _OnCommit | None, _OnFail | None]
_Outcome = tuple["asyncio.Future[Any] | None", Any, "BaseException | None", _OnCommit | None, _OnFail | None]
_T = TypeVar("_T")
_ROWS_PER_INSERT = 100
"""Rows per INSERT statement: one sqlite3 call (one GIL release and re-take by the writer thread, each a possible
forced switch of the event loop's thread on a busy core) for a whole group instead of one per row."""


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_rows(count: int) -> str:
    return "INSERT INTO records (kind, body) VALUES " + ",".join(["(?, ?)"] * count)


_STOP = object()


class Spool:
    def __init__(self, path: str | Path, *, max_bytes: int, registry: CollectorRegistry | None = None) -> None:
        self._path = Path(path)
        self.max_bytes = max_bytes
        self.records = 0
        """Committed messages not yet acknowledged by JetStream."""
        self.bytes = 0
        """Their size in bytes."""
        self.messages = 0
        """Of `records`, the ready-made messages (plugin payloads) in the outbox. Nearly always none: the shipper asks
        for them before each batch of records, and an empty outbox is answered here instead of by a transaction on the
        writer thread and two thread hops (at 25 requests a second, one context switch in six of the edge's)."""
        self.pending_bytes = 0
        """Bytes reserved for messages queued to the writer thread but not yet committed."""
        self.spool_id = ""
        """Random id of this spool file: message ids built from row numbers stay unique if the file is replaced."""
        self.commits = 0
        self.queued = 0
        """Operations queued to the writer thread and not yet settled on the loop: a transaction is under way."""
        self._ops: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
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

    # -- lifecycle ----------------------------------------------------------------------------------------------

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        ready: asyncio.Future[tuple[int, int, str, int]] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="edge-spool", daemon=True)
        self._thread.start()
        self.records, self.bytes, self.spool_id, self.messages = await ready
        self._update_gauges()
        if self.records:
            log.info("spool holds %d messages (%d bytes) from a previous run; replaying", self.records, self.bytes)

    async def close(self) -> None:
        """Finish every queued operation, then close the connection."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._ops.put(_STOP)
        await asyncio.get_running_loop().run_in_executor(None, thread.join)

    @property
    def is_open(self) -> bool:
        return self._thread is not None

    # -- writes -------------------------------------------------------------------------------------------------

    def reserve(self, size: int, what: str) -> None:
        """Count `size` bytes against the bound before queuing them; raises SpoolFull / SpoolClosed at once, so a
        producer on the request path learns of the loss synchronously and can count it."""
        self._reserve(size, what)

    def write_records(
        self, items: list[tuple[int, bytes]], journal_mark: tuple[str, int] | None = None
    ) -> asyncio.Future[None]:
        """Queue reserved telemetry records (kind, body); the future resolves once they are committed.

        `journal_mark` (journal id, position): the records came from the journal up to that position, which is
        stored in the same transaction, so a restart replays from the journal only what no commit took."""
        if self._thread is None or self._loop is None:
            raise SpoolClosed("records")
        future: asyncio.Future[None] = self._loop.create_future()
        size = sum(len(body) for _, body in items)

        def insert(db: sqlite3.Connection) -> None:
            for start in range(0, len(items), _ROWS_PER_INSERT):
                chunk = items[start : start + _ROWS_PER_INSERT]
                db.execute(_insert_rows(len(chunk)), [value for row in chunk for value in row])
            if journal_mark is not None:
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('journal', ?)",
                    (f"{journal_mark[0]}:{journal_mark[1]}",),
                )

        self.queued += 1
        self._ops.put((insert, future, lambda _: self._committed(len(items), size), lambda: self._release(size)))
        return future

    def write_record(self, kind: int, body: bytes) -> asyncio.Future[None]:
        """Reserve and queue one record (see `write_records`)."""
        self._reserve(len(body), "record")
        return self.write_records([(kind, body)])

    async def append(self, subject: str, msg_id: str, body: bytes) -> int:
        """Store one ready-made message durably (plugin payloads); raises SpoolFull at the bound."""
        self._reserve(len(body), msg_id)

        def insert(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO outbox (subject, msg_id, body, size) VALUES (?, ?, ?, ?)",
                (subject, msg_id, body, len(body)),
            )
            return int(cursor.lastrowid or 0)

        size = len(body)
        return await self._submit(insert, lambda _: self._committed(1, size, outbox=True), lambda: self._release(size))

    def _reserve(self, size: int, what: str) -> None:
        if self._thread is None or self._loop is None:
            raise SpoolClosed(what)
        if self.bytes + self.pending_bytes + size > self.max_bytes:
            self._dropped.inc()
            log.error("telemetry spool full (%d bytes): %s refused", self.bytes + self.pending_bytes, what)
            raise SpoolFull(what)
        self.pending_bytes += size

    def _committed(self, count: int, size: int, *, outbox: bool = False) -> None:
        """`outbox`: the rows are ready-made messages (`messages` counts them too)."""
        self.pending_bytes = max(0, self.pending_bytes - size)
        self.records += count
        if outbox:
            self.messages += count
        self.bytes += size
        self._update_gauges()

    def _release(self, size: int) -> None:
        """A reservation whose transaction failed: its bytes no longer count against the bound."""
        self.pending_bytes = max(0, self.pending_bytes - size)

    async def journal_mark(self) -> tuple[str, int] | None:
        """(journal id, position) of the last journal records committed here, if any (see `write_records`)."""

        def read(db: sqlite3.Connection) -> tuple[str, int] | None:
            row = db.execute("SELECT value FROM meta WHERE key = 'journal'").fetchone()
            if row is None:
                return None
            journal_id, _, position = str(row[0]).partition(":")
            return (journal_id, int(position)) if position.isdigit() else None

        return await self._submit(read)

    # -- reads and acknowledgements (the shipper) ---------------------------------------------------------------

    async def head(self, limit: int = 100) -> list[SpooledMessage]:
        """The oldest ready-made messages, in order."""
        if not self.messages:
            return []

        def read(db: sqlite3.Connection) -> list[SpooledMessage]:
            rows = db.execute("SELECT seq, subject, msg_id, body FROM outbox ORDER BY seq LIMIT ?", (limit,))
            return [SpooledMessage(*row) for row in rows]

        return await self._submit(read)

    async def head_records(self, limit: int = 500) -> list[SpooledRecord]:
        """The oldest telemetry records, in order."""

        def read(db: sqlite3.Connection) -> list[SpooledRecord]:
            rows = db.execute("SELECT seq, kind, body FROM records ORDER BY seq LIMIT ?", (limit,))
            return [SpooledRecord(*row) for row in rows]

        return await self._submit(read)

    async def remove(self, seqs: list[int]) -> None:
        """Forget outbox messages NATS acknowledged."""
        if not seqs:
            return
        marks = ",".join("?" * len(seqs))

        def delete(db: sqlite3.Connection) -> tuple[int, int]:
            count, size = db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox WHERE seq IN ({marks})", seqs
            ).fetchone()
            db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", seqs)
            return count, size

        await self._submit(delete, lambda counted: self._forget(counted[0], counted[1], outbox=True))

    async def remove_records(self, up_to_seq: int) -> None:
        """Forget every record up to `up_to_seq` (they went out, in order, in acknowledged batches)."""

        def delete(db: sqlite3.Connection) -> tuple[int, int]:
            count, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM records WHERE seq <= ?", (up_to_seq,)
            ).fetchone()
            db.execute("DELETE FROM records WHERE seq <= ?", (up_to_seq,))
            return count, size

        await self._submit(delete, lambda counted: self._forget(*counted))

    def _forget(self, count: int, size: int, *, outbox: bool = False) -> None:
        if outbox:
            self.messages = max(0, self.messages - count)
        self.records = max(0, self.records - count)
        self.bytes = max(0, self.bytes - size)
        self._update_gauges()

    def _update_gauges(self) -> None:
        self._records_gauge.set(self.records)
        self._bytes_gauge.set(self.bytes)
        near = self.bytes + self.pending_bytes >= self.max_bytes * WARN_FRACTION
        if near and not self._warned:
            log.warning(
                "telemetry spool is %.0f%% full (%d of %d bytes): NATS has been unreachable for a while",
                100 * self.bytes / self.max_bytes,
                self.bytes,
                self.max_bytes,
            )
        self._warned = near

    async def _submit(
        self, fn: Callable[[sqlite3.Connection], _T], on_commit: _OnCommit | None = None, on_fail: _OnFail | None = None
    ) -> _T:
        if self._thread is None or self._loop is None:
            raise SpoolClosed(getattr(fn, "__name__", "operation"))
        future: asyncio.Future[_T] = self._loop.create_future()
        self.queued += 1
        self._ops.put((fn, future, on_commit, on_fail))
        return await future

    # -- the writer thread --------------------------------------------------------------------------------------

    def _run(self, ready: asyncio.Future[Any]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # One connection, this thread's, ever uses the file: holding its lock for good spares each commit the
            # lock calls (11 fcntl per request at c=1, strace) and keeps the WAL index in memory; a second process
            # pointed at the same state directory fails to write instead of interleaving its records.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a process kill
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'spool_id'").fetchone()
            spool_id = row[0] if row else uuid.uuid4().hex[:12]
            if row is None:
                db.execute("INSERT INTO meta (key, value) VALUES ('spool_id', ?)", (spool_id,))
            outbox = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox").fetchone()
            records = db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM records").fetchone()
        except Exception as exc:
            failed: list[_Outcome] = [(ready, None, exc, None, None)]
            loop.call_soon_threadsafe(_settle, failed)
            return
        counts = (outbox[0] + records[0], outbox[1] + records[1], spool_id, outbox[0])
        opened: list[_Outcome] = [(ready, counts, None, None, None)]
        loop.call_soon_threadsafe(_settle, opened)
        try:
            self._serve(db, loop)
        finally:
            db.close()

    def _serve(self, db: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        stopping = False
        while not stopping:
            group: list[_Op] = []
            item = self._ops.get()
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    group.append(item)
                if len(group) >= MAX_GROUP:
                    break
                try:
                    item = self._ops.get_nowait()
                except queue.Empty:
                    break
            if not group:
                continue
            outcomes: list[_Outcome] = []
            try:
                db.execute("BEGIN IMMEDIATE")
                for fn, future, on_commit, on_fail in group:
                    outcomes.append((future, fn(db), None, on_commit, on_fail))
                db.execute("COMMIT")
                self.commits += 1
            except Exception as exc:
                log.error("spool transaction of %d operations failed: %s", len(group), exc)
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                outcomes = [(future, None, exc, None, on_fail) for _, future, _, on_fail in group]
            if loop.is_closed():
                return
            loop.call_soon_threadsafe(self._settle_group, outcomes)

    def _settle_group(self, outcomes: list[_Outcome]) -> None:
        self.queued -= len(outcomes)
        _settle(outcomes)


def _settle(outcomes: list[_Outcome]) -> None:
    """On the event loop: resolve every waiter of one committed group (one thread hop for the whole group).

    The counters are updated here, in commit order, whether or not anyone still waits for the result."""
    for future, result, error, on_commit, on_fail in outcomes:
        if error is None and on_commit is not None:
            on_commit(result)
        elif error is not None and on_fail is not None:
            on_fail()
        if future is None or future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
