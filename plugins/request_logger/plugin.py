"""Request logger: a data collector that keeps a compact line per request in the edge's KV.

Each `AnalyticsRecord` becomes a JSON entry, and `GET /plugins/request-logger/recent?limit=N` (authenticated with an
app key) lists the newest entries of the caller's app, newest first.

Why entries are stored in windows, not one KV row per request: a row per request cost the edge more than any other
bundled plugin (its own KV upsert, index entries and the row's key, ~36,000 instructions of the gate's ~730,000 for
a chat request, `python -m bench.gate`), a database write for what is read only when somebody asks. Records are kept
in memory as they come and written every `window_s` (default 1 s), one row per app holding that window's entries
(`logs:<app>:<newest ts>:<oldest ts>:<instance>:<n>`, TTL `retention_s`): a row per second per app instead of one
per request, and the entry itself is built only then.

What that changes for a reader: `/recent` answered by this process includes what it holds in memory, so its own
entries show at once; entries another worker of the edge holds show once it writes them (at most `window_s`
later). A crash loses at most the last window, as the edge's KV already loses its last `commit_delay_s` of writes;
a clean stop (`shutdown`) writes it. Memory stays bounded: what is held of a record is a small tuple (its model
name cut to `_MODEL_CHARS`), a window is written early once it holds `_MAX_HELD` lines, and a row holds at most
`_ROW_ENTRIES` entries (the KV takes values up to 5 MiB).

Rows of 1.0.x (`log:<app>:<ts>:<request id>`, one entry each) are still read, until their TTL ends them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any
from urllib.parse import parse_qs

import orjson

from shared_sdk import (
    AnalyticsRecord,
    BasePlugin,
    Context,
    DataCollectionResponse,
    EndpointRegistration,
    EndpointRequest,
    EndpointResponse,
    KVStore,
)

NAME = "request-logger"

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "retention_s": {"type": "number", "exclusiveMinimum": 0, "default": 86400},
        "window_s": {
            "type": "number",
            "minimum": 0.01,
            "maximum": 60,
            "default": 1.0,
            "description": "how long entries are held in memory before they are written, as one row per app",
        },
    },
    "additionalProperties": False,
}

log = logging.getLogger("fjordgate.plugins.request_logger")

_MAX_HELD = 20_000
"""Lines held before the window is written early: what a burst can hold (a line is ~0.5 KB at most)."""
_MODEL_CHARS = 256
"""A client's model name has no length limit where an LLM's allow-list is a pattern: a line keeps this much."""
_ROW_ENTRIES = 2_000
"""Entries per KV row: with request ids of at most 128 characters and models cut to 256, a row stays ~2 MB at
most, under the KV's 5 MiB per value."""
_MAX_LIMIT = 500


_Line = tuple[Any, float, bytes]
"""What is held of a record until its window is written: (app id, timestamp, its entry as JSON). Not the record: a
record is ~1-2 KB with its context, and a second of a busy edge's records made its RSS ~6 MB larger
(`bench_edge.py`). The entry is encoded when the record arrives, in the collector's batch, not when the window is
written: encoding a whole window at once held the event loop 4.0-4.6 ms a second at ~3,400 requests/s (the
requests that came meanwhile waited); joining encoded entries holds it 0.8-1.6 ms."""


def _line(record: AnalyticsRecord) -> _Line:
    entry = {
        "request_id": record.request_id,
        "app_id": record.app_id,
        "user_id": record.user_id,
        "llm": record.llm_slug,
        "model": record.model[:_MODEL_CHARS],
        "status": record.status_code,
        "tokens": record.total_tokens,
        "cost": str(record.cost),
        "latency_ms": round(record.latency_ms, 3),
        "streamed": record.streamed,
        "timestamp": record.timestamp,
    }
    return record.app_id, record.timestamp, orjson.dumps(entry)


def _row(lines: list[_Line]) -> bytes:
    """The JSON array of the lines' entries (what `orjson.dumps` of their dicts gives, without decoding them)."""
    return b"[" + b",".join([line[2] for line in lines]) + b"]"


def _timestamp(line: _Line) -> float:
    return line[1]


def _newest_in_row(key: str) -> float:
    """The newest entry's timestamp a row's key names (`logs:<app>:<newest>:...`)."""
    return float(key.split(":", 3)[2])


class RequestLogger(BasePlugin):
    name = NAME
    version = "1.1.2"
    description = "Keeps a per-request log line in the edge's store and serves the recent ones."

    def __init__(self) -> None:
        super().__init__()
        # Set here, not in `initialize`: a host describing the plugin (the control plane, at registration) shuts
        # down an instance it never initialized.
        self.retention_s = 86400.0
        self.window_s = 1.0
        self._kv: KVStore | None = None
        # Every worker of an edge shares its KV file: the instance in each row's key keeps two workers' rows apart.
        self._instance = secrets.token_hex(4)
        self._rows = 0
        self._held: list[_Line] = []
        self._writing: list[list[_Line]] = []  # windows taken from `_held` whose rows are still being written
        self._timer: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()

    def get_config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        self.retention_s = float(config.get("retention_s", 86400))
        self.window_s = float(config.get("window_s", 1.0))
        self._kv = ctx.services.kv if ctx.services is not None else None

    async def handle_analytics(self, ctx: Context, record: AnalyticsRecord) -> DataCollectionResponse:
        if self._kv is None:
            self._kv = ctx.services.kv  # type: ignore[union-attr]
        held = self._held
        held.append(_line(record))
        if len(held) >= _MAX_HELD:
            await self.write_held()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window_s, self._window_due)
        return DataCollectionResponse(success=True, handled=True)

    def _window_due(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.write_held())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def write_held(self) -> None:
        """Write what is held now: one row per app (or several, `_ROW_ENTRIES` each). The window's timer, a full
        window and `shutdown` call it; so does CI's performance gate at the end of each measured block, where the
        timer must not fire at a moment that depends on valgrind's speed. A failed write is logged and its entries
        are lost, as the edge's KV loses a failed flush."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = self._held, []
        if not held or self._kv is None:
            return
        self._writing.append(held)  # `/recent` still lists them while their rows are on the way
        try:
            await self._write_rows(self._kv, held)
        finally:
            self._writing.remove(held)

    async def _write_rows(self, kv: KVStore, held: list[_Line]) -> None:
        by_app: dict[Any, list[_Line]] = {}
        for line in held:
            by_app.setdefault(line[0], []).append(line)
        for app_id, lines in by_app.items():
            lines.sort(key=_timestamp)
            for start in range(0, len(lines), _ROW_ENTRIES):
                part = lines[start : start + _ROW_ENTRIES]
                self._rows += 1
                newest, oldest = part[-1][1], part[0][1]
                key = f"logs:{app_id}:{newest:017.6f}:{oldest:017.6f}:{self._instance}:{self._rows}"
                try:
                    await kv.write(key, _row(part), ttl_s=self.retention_s)
                except Exception:
                    log.exception("request-logger: storing %d entries of app %s failed; lost", len(part), app_id)

    async def shutdown(self, ctx: Context) -> None:
        await self.write_held()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def get_endpoint_registrations(self) -> list[EndpointRegistration]:
        return [
            EndpointRegistration(
                path="/recent", methods=["GET"], description="newest log entries of your app", require_auth=True
            )
        ]

    async def handle_endpoint_request(self, ctx: Context, req: EndpointRequest) -> EndpointResponse:
        try:
            limit = max(1, min(_MAX_LIMIT, int(parse_qs(req.query_string).get("limit", ["50"])[0])))
        except ValueError:
            return EndpointResponse(status_code=400, body=b'{"error":{"message":"limit must be an integer"}}')
        app_id = req.app.id if req.app is not None else None
        kv = ctx.services.kv  # type: ignore[union-attr]
        lines = [line for window in (*self._writing, self._held) for line in window if line[0] == app_id]
        entries = [orjson.loads(line[2]) for line in lines]
        # While the store is read, a window may be written: its entries, taken above as held, are then read again
        # from its row. One entry per request.
        entries += await self._stored(kv, app_id, limit)
        entries = list({entry.get("request_id") or id(entry): entry for entry in entries}.values())
        entries.sort(key=lambda e: e["timestamp"], reverse=True)
        return EndpointResponse(
            status_code=200,
            headers={"content-type": "application/json"},
            body=orjson.dumps({"object": "list", "data": entries[:limit]}),
        )

    async def _stored(self, kv: KVStore, app_id: Any, limit: int) -> list[dict[str, Any]]:
        """At least the `limit` newest stored entries of an app (fewer when it has fewer). Rows are read newest
        first by the newest entry their key names, until the next row's newest is older than the `limit`-th entry
        read so far: no row left could hold one of the `limit` newest."""
        entries: list[dict[str, Any]] = []
        # Listed in key order: by the newest entry each row holds (fixed-width timestamps), oldest first.
        for key in reversed(await kv.list(f"logs:{app_id}:")):
            if len(entries) >= limit:
                entries.sort(key=lambda e: e["timestamp"], reverse=True)
                if _newest_in_row(key) < entries[limit - 1]["timestamp"]:
                    break
            value = await kv.read(key)
            if value is not None:
                entries += orjson.loads(value)
        # Rows of 1.0.x: one entry each, keyed by its timestamp.
        for key in (await kv.list(f"log:{app_id}:"))[-limit:]:
            value = await kv.read(key)
            if value is not None:
                entries.append(orjson.loads(value))
        return entries


def create_plugin() -> RequestLogger:
    return RequestLogger()
