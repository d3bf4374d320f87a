"""The local key-value store gateway-runtime plugins get as `ctx.services.kv`: SQLite on the edge's disk.

Why SQLite through aiosqlite: the store must survive a restart of the edge (a response cache, a plugin's own
token store), must not need a server, and must never block the event loop; aiosqlite runs every statement on
one dedicated thread. One database file per edge (`EDGE_STATE_DIR/kv.sqlite3`, which every worker of the edge opens:
WAL mode, one writer at a time, SQLite's busy wait between them), one row per (plugin, key);
`PluginKV` scopes a plugin to its own rows, so plugins cannot read each other's keys.

Writes are buffered, not executed one by one: `write` (and `delete` of a buffered key) only updates an
in-memory map, and one flush every `commit_delay_s` stores the whole map with one `executemany` and one commit
on the database thread. Why: a data collector writing a line per request (the request logger) would otherwise
cost a thread round-trip per write (a queue hand-off, a cross-thread wake-up of the event loop, GIL ping-pong),
which was ~6% of the edge's CPU per request under load (py-spy, `bench/bench_edge.py`). Reads, lists and
deletes consult the buffer first, so every caller sees its writes at once; a crash may lose at most the last
`commit_delay_s` of writes (as before, when commits were already grouped). A flush that fails (disk full) is
logged and its writes are lost; the next writes are tried again.

Expiry: a key with a TTL is invisible once `expires_at` has passed (every read and list filters on it), and
`purge_expired()` deletes such rows; the edge calls it periodically.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import time

import aiosqlite

from shared_sdk import KVStore
from shared_sdk.errors import ServiceError

__all__ = ["MAX_VALUE_BYTES", "EdgeKV", "PluginKV"]

log = logging.getLogger("fjordgate.edge.kv")

MAX_VALUE_BYTES = 5 * 1024 * 1024
OPEN_WAIT_S = 10.0
"""How long `open` keeps trying while another process holds the new database's lock (see `EdgeKV.open`)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    plugin TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    expires_at REAL,
    PRIMARY KEY (plugin, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires_at) WHERE expires_at IS NOT NULL;
"""


_UPSERT = (
    "INSERT INTO kv (plugin, key, value, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)
_DELETE = "DELETE FROM kv WHERE plugin = ? AND key = ?"

_Pending = tuple[bytes | None, float | None]
"""A buffered change: (value, expires_at); value None is a delete."""


class EdgeKV:
    """The edge's KV database; `for_plugin(slug)` hands out the per-plugin view."""

    def __init__(self, path: str, commit_delay_s: float = 0.05) -> None:
        self.path = path
        self.commit_delay_s = commit_delay_s
        self._db: aiosqlite.Connection | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self.pending: dict[tuple[str, str], _Pending] = {}

    async def open(self) -> None:
        """Open the database (WAL mode, the schema), however many workers of the edge open it at the same time.

        Two connections turning a new file to WAL together can be refused at once with "database is locked":
        SQLite does not wait (the busy timeout) where waiting could deadlock, and one of them must let go. That
        killed a worker of a freshly started `--workers N` edge (one pair of threads in eight, in a loop of
        fresh files), so the opening is tried again after a short pause until `OPEN_WAIT_S` has passed."""
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        deadline = time.monotonic() + OPEN_WAIT_S
        while True:
            db = await aiosqlite.connect(self.path)
            try:
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute("PRAGMA synchronous=NORMAL")
                await db.executescript(_SCHEMA)
                await db.commit()
            except sqlite3.OperationalError as exc:
                await db.close()
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(random.uniform(0.01, 0.05))
                continue
            except BaseException:
                await db.close()
                raise
            self._db = db
            return

    def buffer(self, plugin: str, key: str, value: bytes | None, expires_at: float | None) -> None:
        """Record a write (or, with `value` None, a delete) to be stored by the next flush."""
        self.pending[(plugin, key)] = (value, expires_at)
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        # Until nothing is left: writes buffered while a flush awaits the database thread found this task still
        # running and started none of their own.
        while True:
            await asyncio.sleep(self.commit_delay_s)
            await self.flush()
            if not self.pending or self._db is None:
                return

    async def flush(self) -> None:
        """Store every buffered change now (one executemany per kind of change, one commit)."""
        if self._db is None or not self.pending:
            return
        batch, self.pending = self.pending, {}
        # Submitted before this coroutine first suspends, so any statement issued after this point (a read that
        # no longer finds the key in `pending`) runs after the batch on the database thread.
        upserts = [(p, k, v, exp) for (p, k), (v, exp) in batch.items() if v is not None]
        deletes = [(p, k) for (p, k), (v, _) in batch.items() if v is None]
        try:
            if upserts:
                await self._db.executemany(_UPSERT, upserts)
            if deletes:
                await self._db.executemany(_DELETE, deletes)
            await self._db.commit()
        except Exception:
            log.exception("edge KV: storing %d buffered changes failed; they are lost", len(batch))

    async def close(self) -> None:
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_task.cancel()
        if self._db is not None:
            await self.flush()
            await self._db.commit()
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise ServiceError("the edge KV store is not open")
        return self._db

    def for_plugin(self, plugin_slug: str) -> PluginKV:
        return PluginKV(self, plugin_slug)

    async def purge_expired(self) -> int:
        await self.flush()
        cursor = await self.db.execute(
            "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (time.time(),)
        )
        await self.db.commit()
        return cursor.rowcount or 0


def _live(entry: _Pending, now: float) -> bool:
    value, expires_at = entry
    return value is not None and (expires_at is None or expires_at > now)


class PluginKV(KVStore):
    __slots__ = ("_kv", "plugin")

    def __init__(self, kv: EdgeKV, plugin: str) -> None:
        self._kv = kv
        self.plugin = plugin

    async def read(self, key: str) -> bytes | None:
        kv = self._kv
        entry = kv.pending.get((self.plugin, key))
        if entry is not None:
            return entry[0] if _live(entry, time.time()) else None
        async with kv.db.execute(
            "SELECT value FROM kv WHERE plugin = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)",
            (self.plugin, key, time.time()),
        ) as cursor:
            row = await cursor.fetchone()
        return bytes(row[0]) if row is not None else None

    async def write(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        if isinstance(value, str):
            value = value.encode()
        if len(value) > MAX_VALUE_BYTES:
            raise ServiceError(f"KV value for {key!r} is {len(value)} bytes; the limit is {MAX_VALUE_BYTES}")
        if ttl_s is not None and ttl_s <= 0:
            raise ServiceError("ttl_s must be positive")
        kv = self._kv
        kv.db  # noqa: B018  (raises when the store is closed, as a direct write would)
        kv.buffer(self.plugin, key, bytes(value), time.time() + ttl_s if ttl_s is not None else None)

    async def delete(self, key: str) -> bool:
        kv = self._kv
        entry = kv.pending.get((self.plugin, key))
        if entry is not None:
            existed = _live(entry, time.time())
        else:
            async with kv.db.execute(
                "SELECT 1 FROM kv WHERE plugin = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)",
                (self.plugin, key, time.time()),
            ) as cursor:
                existed = await cursor.fetchone() is not None
        kv.buffer(self.plugin, key, None, None)
        return existed

    async def list(self, prefix: str = "") -> list[str]:
        kv = self._kv
        # Range scan instead of LIKE so '%' and '_' in a prefix mean themselves.
        upper = prefix + "\U0010ffff"
        now = time.time()
        async with kv.db.execute(
            "SELECT key FROM kv WHERE plugin = ? AND key >= ? AND key < ? "
            "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
            (self.plugin, prefix, upper, now),
        ) as cursor:
            rows = await cursor.fetchall()
        keys = [row[0] for row in rows]
        if not kv.pending:
            return keys
        found = set(keys)
        for (plugin, key), entry in list(kv.pending.items()):
            if plugin == self.plugin and key.startswith(prefix):
                if _live(entry, now):
                    found.add(key)
                else:
                    found.discard(key)
        return sorted(found)
