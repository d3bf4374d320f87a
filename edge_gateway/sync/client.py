"""The edge's config sync client: watch the namespace's KV bucket, fetch changed chunks, apply atomically.

The manifest key is watched (push, so a change lands within milliseconds) and also polled every
`reconcile_every_s` (so a missed watch update after a NATS restart is caught anyway). Chunks are
content-addressed: the client keeps the chunks of the config it applied and fetches only digests it does not
hold, which makes a one-credential change in a 100,000-key namespace a single small fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from shared_sdk.snapshot import ConfigSnapshot
from shared_sdk.sync_protocol import (
    KEY_BUDGETS,
    KEY_MANIFEST,
    BudgetUpdate,
    ReloadRequest,
    SnapshotManifest,
    chunk_key,
    config_bucket,
    decode,
    down_subject,
    manifest_digests,
    snapshot_assemble,
    snapshot_split,
)

log = logging.getLogger("fjordgate.edge.sync")

_ZERO = Decimal("0")


class SnapshotStore(Protocol):
    """What the sync client needs of `edge_gateway.config_store.ConfigStore`."""

    current: Any
    budgets: Any
    """`edge_gateway.budgets.BudgetTracker`: each budget's `own_spent`, this edge's spend in its period."""

    async def apply(self, snapshot: ConfigSnapshot, *, restart_isolated: bool = False) -> Any: ...

    def update_budget_spend(self, budget_id: int, spent: Decimal, period_start: float) -> None: ...


class ConfigSync:
    def __init__(
        self,
        *,
        store: SnapshotStore,
        namespace: str,
        edge_id: str,
        reconcile_every_s: float = 5.0,
        on_applied: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self.namespace = namespace
        self.edge_id = edge_id
        self._reconcile_every_s = reconcile_every_s
        self._on_applied = on_applied
        self._chunks: dict[str, bytes] = {}
        self._lock = asyncio.Lock()
        self._kv: KeyValue | None = None
        self._nc: Client | None = None
        self.config_source = "none"
        self.applied_version = 0
        self.applied_checksum = ""
        self.last_applied_at = 0.0
        self.last_error = ""

    def adopt(self, snapshot: ConfigSnapshot, source: str) -> None:
        """Note a snapshot applied by someone else (the last one from disk at start-up) and index its chunks."""
        self.config_source = source
        self.applied_version = snapshot.version
        self.applied_checksum = snapshot.checksum
        self._chunks = snapshot_split(snapshot)[1]

    async def run(self, nc: Client) -> None:
        """Sync for ever over `nc` (watch + reconcile + reload requests)."""
        self._nc = nc
        await nc.subscribe(down_subject(self.namespace, "reload"), cb=self._on_reload)
        watcher = asyncio.create_task(self._watch_loop(), name="config-watch")
        try:
            while True:
                try:
                    await self.reconcile()
                except Exception as exc:  # NATS down or bucket not created yet: keep serving what we have
                    self.last_error = str(exc) or type(exc).__name__
                    log.debug("config reconcile failed: %s", self.last_error)
                await asyncio.sleep(self._reconcile_every_s)
        finally:
            watcher.cancel()

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            assert self._nc is not None
            self._kv = await self._nc.jetstream(timeout=5).key_value(config_bucket(self.namespace))
        return self._kv

    async def reconcile(self, *, force: bool = False) -> bool:
        """Fetch the manifest and apply it if it differs from what we hold; returns whether it applied."""
        kv = await self._bucket()
        try:
            manifest = decode((await kv.get(KEY_MANIFEST)).value or b"", SnapshotManifest)
        except NotFoundError:
            return False
        applied = await self.apply_manifest(manifest, force=force)
        try:
            budgets = decode((await kv.get(KEY_BUDGETS)).value or b"", BudgetUpdate)
            self.apply_budgets(budgets)
        except NotFoundError:
            pass
        return applied

    async def apply_manifest(self, manifest: SnapshotManifest, *, force: bool = False) -> bool:
        async with self._lock:
            if not force and manifest.checksum == self.applied_checksum and self.config_source == "nats":
                return False
            if manifest.namespace != self.namespace:
                log.error("manifest for namespace %r in our bucket; ignored", manifest.namespace)
                return False
            kv = await self._bucket()
            chunks: dict[str, bytes] = {}
            fetched = 0
            for digest in manifest_digests(manifest):
                data = self._chunks.get(digest)
                if data is None:
                    data = (await kv.get(chunk_key(digest))).value or b""  # empty fails the digest check
                    fetched += 1
                chunks[digest] = data
            snapshot = snapshot_assemble(manifest, chunks)  # verifies every chunk digest and the checksum
            await self._store.apply(snapshot, restart_isolated=force)  # a reload request picks up new plugin code
            self._chunks = chunks
            self.config_source = "nats"
            self.applied_version = snapshot.version
            self.applied_checksum = snapshot.checksum
            self.last_applied_at = time.time()
            self.last_error = ""
            log.info("applied config v%d from NATS (%d of %d chunks fetched)", snapshot.version, fetched, len(chunks))
        if self._on_applied is not None:
            self._on_applied()
        return True

    def apply_budgets(self, update: BudgetUpdate) -> None:
        """Enforce the control plane's figure plus this edge's spend it has not ingested yet (each budget's
        `own_spent`, counted as requests settle: `BudgetTracker.settle`)."""
        budgets = self._store.budgets
        for spend in update.budgets:
            state = budgets.state(spend.budget_id)
            own = state.own_spent if state is not None and state.own_period == spend.period_start else _ZERO
            unreflected = own - spend.by_edge.get(self.edge_id, _ZERO)
            self._store.update_budget_spend(spend.budget_id, spend.spent + max(_ZERO, unreflected), spend.period_start)

    async def _watch_loop(self) -> None:
        while True:
            try:
                kv = await self._bucket()
                watcher = await kv.watch("ctl.>")
                async for entry in watcher:
                    if entry is None or entry.value is None or entry.operation is not None:
                        continue
                    if entry.key == KEY_MANIFEST:
                        await self.apply_manifest(decode(entry.value, SnapshotManifest))
                    elif entry.key == KEY_BUDGETS:
                        self.apply_budgets(decode(entry.value, BudgetUpdate))
            except asyncio.CancelledError:
                raise
            except BucketNotFoundError:
                self._kv = None
                await asyncio.sleep(1)
            except Exception as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.warning("config watch interrupted (%s); restarting it", self.last_error)
                self._kv = None
                await asyncio.sleep(1)

    async def _on_reload(self, message: Msg) -> None:
        try:
            request = decode(message.data, ReloadRequest)
        except Exception as exc:
            log.warning("ignoring malformed reload request: %s", exc)
            return
        if request.edge_id and request.edge_id != self.edge_id:
            return
        log.info("reload requested (%s)", request.request_id)
        try:
            await self.reconcile(force=True)
        except Exception as exc:
            log.warning("reload %s failed: %s", request.request_id, exc)
