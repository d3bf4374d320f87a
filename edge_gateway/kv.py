"""The local key-value store gateway-runtime plugins get as `ctx.services.kv`: SQLite on the edge's disk.

Why SQLite through aiosqlite: the store must survive a restart of the edge (a response cache, a plugin's own
token store), must not need a server, and must never block the event loop; aiosqlite runs every statement on
one dedicated thread. One database file per edge (`EDGE_STATE_DIR/kv.sqlite3`), one row per (plugin, key);
`PluginKV` scopes a plugin to its own rows, so plugins cannot read each other's keys.

Writes are committed in groups (at most `commit_delay_s` after the first uncommitted write) instead of one
fsync-ish commit per write: a request logger writing a line per request would otherwise spend more CPU in
SQLite than the request itself. Reads use the same connection, so they see every write at once; a crash may
lose at most the last `commit_delay_s` of writes.

Expiry: a key with a TTL is invisible once `expires_at` has passed (every read and list filters on it), and
`purge_expired()` deletes such rows; the edge calls it periodically.
"""

from __future__ import annotations

import asyncio
import os
import time

import aiosqlite

from shared_sdk import KVStore
from shared_sdk.errors import ServiceError

__all__ = ["MAX_VALUE_BYTES", "EdgeKV", "PluginKV"]

MAX_VALUE_BYTES = 5 * 1024 * 1024

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


class EdgeKV:
    """The edge's KV database; `for_plugin(slug)` hands out the per-plugin view."""

    def __init__(self, path: str, commit_delay_s: float = 0.05) -> None:
        self.path = path
        self.commit_delay_s = commit_delay_s
        self._db: aiosqlite.Connection | None = None
        self._commit_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.executescript(_SCHEMA)
        await self._db.commit()

    def schedule_commit(self) -> None:
        if self._commit_task is None or self._commit_task.done():
            self._commit_task = asyncio.get_running_loop().create_task(self._commit_later())

    async def _commit_later(self) -> None:
        await asyncio.sleep(self.commit_delay_s)
        if self._db is not None:
            await self._db.commit()

    async def close(self) -> None:
        if self._commit_task is not None and not self._commit_task.done():
            self._commit_task.cancel()
        if self._db is not None:
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
        cursor = await self.db.execute(
            "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (time.time(),)
        )
        await self.db.commit()
        return cursor.rowcount or 0


class PluginKV(KVStore):
    __slots__ = ("_kv", "plugin")

    def __init__(self, kv: EdgeKV, plugin: str) -> None:
        self._kv = kv
        self.plugin = plugin

    async def read(self, key: str) -> bytes | None:
        async with self._kv.db.execute(
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
        expires_at = time.time() + ttl_s if ttl_s is not None else None
        await self._kv.db.execute(
            "INSERT INTO kv (plugin, key, value, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            (self.plugin, key, value, expires_at),
        )
        self._kv.schedule_commit()

    async def delete(self, key: str) -> bool:
        cursor = await self._kv.db.execute(
            "DELETE FROM kv WHERE plugin = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)",
            (self.plugin, key, time.time()),
        )
        self._kv.schedule_commit()
        return (cursor.rowcount or 0) > 0

    async def list(self, prefix: str = "") -> list[str]:
        # Range scan instead of LIKE so '%' and '_' in a prefix mean themselves.
        upper = prefix + "\U0010ffff"
        async with self._kv.db.execute(
            "SELECT key FROM kv WHERE plugin = ? AND key >= ? AND key < ? "
            "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
            (self.plugin, prefix, upper, time.time()),
        ) as cursor:
            rows = await cursor.fetchall()
        return [row[0] for row in rows]
