"""usage_summary: per-user usage counted at the edge, sent up as payloads, kept and shown in the control plane.

One class, both runtimes (the SDK loads the same plugin at the edge and in the studio):

- gateway half (`handle_analytics`, a data collector): counts requests, tokens and cost per (app, user) in
  memory; a task started when its session is ready sends the counts since the last summary every
  `flush_interval_s` as one edge payload (`ctx.services.gateway.send_payload`), and once more when the session
  closes. The edge persists payloads until the control plane acknowledged them, so a summary survives NATS being down or
  the edge being killed after it was sent. Counts not yet sent live in memory: a SIGKILL loses at most one
  window of *summary* (the analytics rows themselves are stored exactly once by the edge, whatever happens).
- studio half (`accept_edge_payload`): stores each summary in the studio KV under `summary:<correlation id>`
  (idempotent: a re-delivered payload overwrites itself), for `keep_days`. The admin page
  Analytics -> Edge payloads -> "Usage summaries" (`control_plane/analytics/usage_summaries.py`) reads them from
  the KV and adds them up per namespace, app and user; `summaries(kv)` below reads them for other callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from shared_sdk import (
    BasePlugin,
    ConfigProvider,
    Context,
    DataCollector,
    EdgePayloadReceiver,
    ManifestProvider,
    Runtime,
    ServiceError,
    SessionAware,
)
from shared_sdk.context import KVStore
from shared_sdk.messages import AnalyticsRecord, EdgePayload, ManifestPermissions, PluginManifest

# The stored format (key prefix, JSON fields) is read by the control plane's admin page: keep it compatible.
SUMMARY_PREFIX = "summary:"
SCHEMA_VERSION = 1
log = logging.getLogger("fjordgate.plugins.usage_summary")


@dataclass
class _UserCounts:
    """What one (app, user) used since the last summary."""

    currency: str
    requests: int = 0
    tokens: int = 0
    cost: Decimal = field(default_factory=lambda: Decimal("0"))


class UsageSummary(BasePlugin, DataCollector, EdgePayloadReceiver, ConfigProvider, ManifestProvider, SessionAware):
    name = "usage-summary"
    version = "1.1.0"
    description = "Per-user usage counted at each edge, summarised up to the control plane every few seconds."

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}
        self._counts: dict[tuple[int | None, int | None], _UserCounts] = {}
        self._window_start = time.time()
        self._flusher: asyncio.Task[None] | None = None

    def get_config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "flush_interval_s": {"type": "number", "minimum": 0.1, "maximum": 3600, "default": 10},
                "keep_days": {"type": "integer", "minimum": 1, "maximum": 3650, "default": 30},
            },
            "additionalProperties": False,
        }

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(
            id="usage-summary",
            version=self.version,
            name="Usage summary",
            description=self.description,
            # control.send: the edge half sends its summaries up with gateway.send_payload
            permissions=ManifestPermissions(kv=True, services=["control.send", "kv.readwrite"]),
        )

    # -- gateway half ---------------------------------------------------------------------------------------------

    async def on_session_ready(self, ctx: Context) -> None:
        if ctx.runtime == Runtime.GATEWAY and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_every(ctx))

    async def on_session_closing(self, ctx: Context) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
            await self._send(ctx)

    async def _flush_every(self, ctx: Context) -> None:
        warned = False
        while True:
            await asyncio.sleep(float(self.config.get("flush_interval_s", 10)))
            try:
                await self._send(ctx)
            except ServiceError as exc:  # e.g. an edge without a control plane: say so once, not every window
                if not warned:
                    log.warning("usage summaries not sent: %s", exc)
                    warned = True
            except Exception:
                log.exception("usage summary not sent")

    async def handle_analytics(self, ctx: Context, record: AnalyticsRecord) -> None:
        counts = self._counts.setdefault((record.app_id, record.user_id), _UserCounts(currency=record.currency))
        counts.requests += 1
        counts.tokens += record.total_tokens
        counts.cost += Decimal(record.cost)

    async def _send(self, ctx: Context) -> None:
        counts, self._counts = self._counts, {}
        started, self._window_start = self._window_start, time.time()
        if not counts:
            return
        summary = {
            "schema": SCHEMA_VERSION,
            "window_start": started,
            "window_end": self._window_start,
            "users": [
                {
                    "app_id": app_id,
                    "user_id": user_id,
                    "requests": c.requests,
                    "tokens": c.tokens,
                    "cost": str(c.cost),
                    "currency": c.currency,
                }
                for (app_id, user_id), c in sorted(counts.items(), key=lambda item: (item[0][0] or 0, item[0][1] or 0))
            ],
        }
        await ctx.services.gateway.send_payload(  # type: ignore[union-attr]
            json.dumps(summary).encode(), correlation_id=uuid.uuid4().hex, metadata={"kind": "usage-summary"}
        )

    # -- studio half ----------------------------------------------------------------------------------------------

    async def accept_edge_payload(self, ctx: Context, payload: EdgePayload) -> bool:
        if payload.metadata.get("kind") != "usage-summary":
            return False
        summary = json.loads(payload.payload)
        record = {
            "edge_id": payload.edge_id,
            "namespace": payload.edge_namespace,
            "edge_timestamp": payload.edge_timestamp,
            "received_timestamp": payload.received_timestamp,
            **summary,
        }
        ttl = int(self.config.get("keep_days", 30)) * 86400
        await ctx.services.kv.write(  # type: ignore[union-attr]
            f"{SUMMARY_PREFIX}{payload.correlation_id}", json.dumps(record).encode(), ttl
        )
        return True


async def summaries(kv: KVStore) -> list[dict[str, Any]]:
    """Every stored summary (studio KV of this plugin), oldest first."""
    out: list[dict[str, Any]] = []
    for key in await kv.list(SUMMARY_PREFIX):
        value = await kv.read(key)
        if value is not None:
            out.append(json.loads(value))
    return sorted(out, key=lambda s: s.get("window_start", 0))
