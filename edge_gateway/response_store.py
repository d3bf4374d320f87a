"""Responses the edge created itself (translated calls), kept for `previous_response_id`, retrieve and delete.

Where: the edge's local KV (`EDGE_STATE_DIR/kv.sqlite3`, `edge_gateway.kv`), under its own scope
(`fjordgate:responses`, a name no plugin slug can take), key `<app id>:<response id>`, so an app never sees
another app's responses. How long: `EDGE_RESPONSES_TTL_S` (default 30 days, as OpenAI keeps them); expired rows
are invisible at once and purged by the edge's housekeeping. Bounded: one entry holds the whole conversation
(earlier items, this input, this output) and is at most the KV's value limit (5 MiB); a longer conversation is
answered but not stored (a later `previous_response_id` to it is refused). All entries together are kept under
`EDGE_RESPONSES_MAX_BYTES` (default 1 GiB) by `trim`, which the edge's housekeeping runs every minute: the
oldest go first. Writes go through the KV's write buffer (no I/O on the request path); a read happens only for
a request that names a `previous_response_id`.

Vendors with their own Responses API keep their own state: those requests pass through and are not stored here.

An edge with several workers (`EDGE_WORKERS`): a follow-up lands on whichever worker the kernel hands its connection
to, so the workers share one store, its own database next to theirs (`EDGE_STATE_DIR/responses.sqlite3`; SQLite
in WAL mode takes writers from several processes, one at a time, and readers beside them). Shared, a save and a
delete are committed before the caller hears of them (the pipeline holds the response's last message until then),
so a `previous_response_id`, retrieve or delete sent the moment the answer arrived finds it on any worker; the
bound (`EDGE_RESPONSES_MAX_BYTES`) is then the whole edge's. One worker keeps them in its own KV, as before.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import orjson

from shared_sdk.errors import ServiceError

from .kv import EdgeKV, PluginKV

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_TTL_S", "KV_SCOPE", "ResponseStore"]

log = logging.getLogger("fjordgate.edge.responses")

KV_SCOPE = "fjordgate:responses"
DEFAULT_TTL_S = 30 * 24 * 3600.0
DEFAULT_MAX_BYTES = 1024**3
SHARED_FILE = "responses.sqlite3"

# Every entry is written with the same TTL, so a later expiry is a newer entry: keep the newest up to the bound.
_TRIM = """
DELETE FROM kv WHERE plugin = ?1 AND key IN (
    SELECT key FROM (
        SELECT key, SUM(length(value)) OVER (ORDER BY expires_at DESC, key) AS kept FROM kv WHERE plugin = ?1
    ) WHERE kept > ?2
)
"""


class ResponseStore:
    def __init__(
        self, kv: EdgeKV, ttl_s: float = DEFAULT_TTL_S, max_bytes: int = DEFAULT_MAX_BYTES, *, shared: bool = False
    ) -> None:
        self._root = kv
        self._kv: PluginKV = kv.for_plugin(KV_SCOPE)
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.shared = shared
        """The workers of one edge share this store (its own database, opened and closed by `open`/`close`):
        saves and deletes are committed before they return."""

    @classmethod
    def for_workers(cls, edge_state_dir: str, ttl_s: float, max_bytes: int) -> ResponseStore:
        """The store every worker of an edge opens: `responses.sqlite3` in the edge's state directory (the parent
        of the workers' own)."""
        return cls(EdgeKV(os.path.join(edge_state_dir, SHARED_FILE)), ttl_s, max_bytes, shared=True)

    async def open(self) -> None:
        if self.shared:
            await self._root.open()

    async def close(self) -> None:
        if self.shared:
            await self._root.close()

    async def load(self, app_id: int, response_id: str) -> dict[str, Any] | None:
        """{"response": ..., "items": [...]} for one of the app's stored responses, else None."""
        raw = await self._kv.read(f"{app_id}:{response_id}")
        return orjson.loads(raw) if raw is not None else None

    async def save(self, app_id: int, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
        value = orjson.dumps({"response": response, "items": items})
        try:
            await self._kv.write(f"{app_id}:{response['id']}", value, self.ttl_s)
        except ServiceError as err:  # past the value bound: answered, not kept
            log.warning("response %s not stored: %s", response["id"], err)
            return
        if self.shared:
            await self._root.flush()

    async def delete(self, app_id: int, response_id: str) -> bool:
        existed = await self._kv.delete(f"{app_id}:{response_id}")
        if self.shared:
            await self._root.flush()
        return existed

    async def housekeep(self) -> int:
        """The edge's periodic upkeep (every minute): expired entries of a shared store purged, then `trim`."""
        if self.shared:
            await self._root.purge_expired()
        return await self.trim()

    async def trim(self) -> int:
        """Delete the oldest entries until all of them hold at most `max_bytes`; how many were deleted."""
        await self._root.flush()
        cursor = await self._root.db.execute(_TRIM, (KV_SCOPE, self.max_bytes))
        await self._root.db.commit()
        return cursor.rowcount or 0
