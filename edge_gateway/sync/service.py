"""Everything the edge does over NATS, started and stopped as one unit by the edge's lifespan.

Start-up order is what makes an edge useful without the control plane: the last snapshot on disk is applied
first (the edge is ready and says `config_source="disk"`), telemetry is spooled from the first request, and
NATS is connected in the background; once it is, the current manifest replaces the disk copy and the spool
drains. Rate-limit counts are shared with the namespace's other edges from the start (`RateLimitShare`;
dropped while NATS is not connected).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from fjordgate.env import env_float, env_int
from shared_sdk.sync_protocol import EdgeHeartbeat, bound_plugins_not_loaded, encode, lease_holder, up_subject
from shared_sdk.tasks import cancel_and_wait

from ..ratelimit import RateLimiter
from ..telemetry.journal import Journal
from ..telemetry.shipper import TelemetryShipper
from ..telemetry.spool import Spool
from .client import ConfigSync, SnapshotStore
from .connection import connect_forever, nats_auth_options
from .events import EdgeEventLink
from .leases import LeaseClient
from .ratelimit_share import RateLimitShare

log = logging.getLogger("fjordgate.edge.sync")

BUILD = "fjordgate-edge/0.1.0"


class EdgeSyncService:
    def __init__(
        self,
        *,
        store: SnapshotStore,
        namespace: str,
        edge_id: str,
        nats_url: str | None,
        state_dir: str,
        host: str = "",
        port: int = 0,
        in_flight: Callable[[], int] = lambda: 0,
        registry: CollectorRegistry | None = None,
        limiter: RateLimiter | None = None,
        environ: Any = None,
        worker: str = "",
        workers: int = 1,
        log_bodies: bool = False,
    ) -> None:
        """`log_bodies` (`EDGE_LOG_BODIES`): proxy logs, which carry the bodies, are shipped only then."""
        self.namespace = namespace
        self.edge_id = edge_id
        self.worker = worker
        """This worker's index when the edge runs several (`EDGE_WORKERS`), else "": every worker speaks for the
        same edge id on the edge's subjects and says which worker it is where it matters (heartbeat, leases,
        rate-limit reports)."""
        self.workers = workers
        self._environ = environ
        self._nats_url = nats_url
        self._store = store
        self._host = host
        self._port = port
        self._in_flight = in_flight
        self._heartbeat_s = env_float("EDGE_HEARTBEAT_S", 10.0, minimum=0.1, environ=environ)
        spool_max = env_int("EDGE_SPOOL_MAX_BYTES", 256 * 1024 * 1024, minimum=1024, environ=environ)
        self.spool = Spool(os.path.join(state_dir, "spool.sqlite3"), max_bytes=spool_max, registry=registry)
        # at most 1 GiB: the file is preallocated whole, and a ring holds seconds of records, not hours
        journal_bytes = env_int("EDGE_JOURNAL_BYTES", 8 * 1024 * 1024, minimum=0, maximum=1 << 30, environ=environ)
        self.shipper = TelemetryShipper(
            namespace=namespace,
            edge_id=edge_id,
            spool=self.spool,
            journal=Journal(os.path.join(state_dir, "spool.journal"), size=journal_bytes) if journal_bytes else None,
            proxy_logs=log_bodies,
        )
        self.config = ConfigSync(store=store, namespace=namespace, edge_id=edge_id, on_applied=self._beat_soon)
        self.events = EdgeEventLink(namespace=namespace, edge_id=edge_id)
        share_s = env_float("EDGE_RATELIMIT_SHARE_S", 0.5, minimum=0.0, environ=environ)
        self.ratelimit: RateLimitShare | None = None
        """Shares `limiter`'s counts with the namespace's other edges; None without a limiter or with
        EDGE_RATELIMIT_SHARE_S=0 (each edge then enforces the limits on its own traffic only)."""
        if limiter is not None and share_s > 0:
            self.ratelimit = RateLimitShare(
                limiter, namespace=namespace, edge_id=edge_id, interval_s=share_s, worker=worker
            )
        self.leases: LeaseClient | None = None
        """Fills the leases of blocking budgets from the control plane's ledger (docs/governance.md)."""
        tracker = getattr(store, "budgets", None)
        if tracker is not None and nats_url:
            self.leases = LeaseClient(
                tracker,
                limiter,
                namespace=namespace,
                edge_id=edge_id,
                timeout_s=env_float("EDGE_LEASE_TIMEOUT_S", 2.0, minimum=0.05, environ=environ),
                renew_every_s=env_float("EDGE_LEASE_RENEW_S", 10.0, minimum=0.1, environ=environ),
                registry=registry,
            )
            # a worker holds its own leases (`<edge>/<worker>`, on the edge's subject): the ledger scopes them under
            # the edge and sums them against the edge's spend (control_plane/budgets/leasing.py)
            self.leases.edge_id = lease_holder(edge_id, worker)
            tracker.enable_leasing(self.leases)
        self.nats_connected = False
        self.started_at = time.time()
        self._nc: Client | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._beat_now = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool, adopt the config already applied from disk (if any), connect NATS in the background."""
        await self.spool.open()
        await self.shipper.open_journal()
        current = getattr(self._store, "current", None)
        snapshot = getattr(current, "snapshot", None)
        if snapshot is not None:
            self.config.adopt(snapshot, "disk")
        self._tasks.append(asyncio.create_task(self.shipper.run(), name="telemetry-shipper"))
        if self.ratelimit is not None:
            self._tasks.append(asyncio.create_task(self.ratelimit.run(), name="ratelimit-share"))
        if self.leases is not None:
            self._tasks.append(asyncio.create_task(self.leases.run(), name="lease-renewal"))
        if self._nats_url:
            self._tasks.append(asyncio.create_task(self._connect_and_sync(), name="nats-sync"))

    async def stop(self, drain_timeout_s: float = 2.0) -> None:
        if self.nats_connected:
            await self.shipper.drained(drain_timeout_s)
        await cancel_and_wait(self._tasks)  # a shipper or lease renewal may drop one cancellation (shared_sdk.tasks)
        if self._nc is not None:
            with suppress(Exception):
                await self._nc.close()
        await self.shipper.close_journal()
        await self.spool.close()

    # -- status ---------------------------------------------------------------------------------------------

    @property
    def held_records(self) -> int:
        """Telemetry records this edge still owes the control plane: in the spool, or only in the journal."""
        return self.spool.records + self.shipper.unspooled

    @property
    def held_bytes(self) -> int:
        return self.spool.bytes + self.shipper.unspooled_bytes

    def status(self) -> dict[str, Any]:
        """For `/ready` and `/health`: where the config came from and whether NATS is reachable."""
        return {
            "config_source": self.config.config_source,
            "config_version": self.config.applied_version,
            "config_checksum": self.config.applied_checksum,
            "nats_connected": self.nats_connected,
            "spool_records": self.held_records,
            "spool_bytes": self.held_bytes,
            **self._ratelimit_status(),
            "governance": self.leases.status() if self.leases is not None else {"leasing": False},
        }

    def _ratelimit_status(self) -> dict[str, Any]:
        share = self.ratelimit
        return {
            "ratelimit_share_s": share.interval_s if share is not None else 0.0,
            "ratelimit_reports_sent": share.reports_sent if share is not None else 0,
            "ratelimit_reports_received": share.reports_received if share is not None else 0,
        }

    def heartbeat(self) -> EdgeHeartbeat:
        now = time.time()
        failures = self._plugin_load_errors()
        return EdgeHeartbeat(
            edge_id=self.edge_id,
            namespace=self.namespace,
            version=self.config.applied_version,
            checksum=self.config.applied_checksum,
            started_at=self.started_at,
            uptime_s=round(now - self.started_at, 3),
            in_flight=self._in_flight(),
            build=BUILD,
            host=self._host,
            port=self._port,
            config_source=self.config.config_source,
            nats_connected=self.nats_connected,
            spool_records=self.held_records,
            spool_bytes=self.held_bytes,
            sent_at=now,
            worker=self.worker,
            workers=self.workers,
            plugins_not_loaded=bound_plugins_not_loaded(failures) if failures else {},
            plugins_not_loaded_total=len(failures),
        )

    def _plugin_load_errors(self) -> dict[str, str]:
        """The applied config's plugins this edge could not load, and why (fixed phrases); the wire takes a bounded
        part of them, and how many there are."""
        current = getattr(self._store, "current", None)
        return getattr(current, "plugin_load_errors", None) or {}

    # -- internals ------------------------------------------------------------------------------------------

    def _set_connected(self, connected: bool) -> None:
        self.nats_connected = connected
        if connected:
            self.shipper.attach(self._nc)
            self._beat_soon()

    def _beat_soon(self) -> None:
        self._beat_now.set()

    async def _connect_and_sync(self) -> None:
        async def connected(nc: Client) -> None:
            self._nc = nc
            self.shipper.attach(nc)

        nc = await connect_forever(
            self._nats_url or "",
            name=f"fjordgate-edge-{self.edge_id}" + (f"-{self.worker}" if self.worker else ""),
            on_connected=connected,
            on_state=self._set_connected,
            auth=nats_auth_options(self._environ),
            inbox_prefix=f"_INBOX.{self.edge_id}",
        )
        self._nc = nc
        self.shipper.attach(nc)
        if self.leases is not None:
            self.leases.attach(nc)
        await self.events.attach(nc)
        if self.ratelimit is not None:
            await self.ratelimit.attach(nc)
        heartbeats = asyncio.create_task(self._heartbeat_loop(nc), name="heartbeat")
        try:
            await self.config.run(nc)
        finally:
            heartbeats.cancel()

    async def _heartbeat_loop(self, nc: Client) -> None:
        subject = up_subject(self.namespace, self.edge_id, "heartbeat")
        while True:
            if nc.is_connected:
                try:
                    await nc.publish(subject, encode(self.heartbeat()))
                except Exception as exc:
                    log.debug("heartbeat not sent: %s", exc)
            self._beat_now.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._beat_now.wait(), self._heartbeat_s)
