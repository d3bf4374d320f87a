"""Budgets down: per-budget spend of the current period, recomputed after ingest and pushed to the namespace.

The figure goes into the namespace's KV bucket under `ctl.budgets`; edges watch that key, so they see a change
within the ingest-to-put latency (well under a second) and an edge that starts later reads the last value.
Recomputation is debounced per namespace so a stream of batches costs one query per budget per interval.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from django.conf import settings
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from control_plane.analytics.selectors import budget_spend_for_snapshot
from shared_sdk.snapshot import BudgetConfig, ConfigSnapshot, UserConfig
from shared_sdk.sync_protocol import (
    KEY_BUDGETS,
    KEY_MANIFEST,
    BudgetUpdate,
    SnapshotManifest,
    config_bucket,
    decode,
    encode,
)

from .db import run_db

log = logging.getLogger("fjordgate.bridge")

_budget_list = msgspec.json.Decoder(list[BudgetConfig])
_user_list = msgspec.json.Decoder(list[UserConfig])


class BudgetPublisher:
    def __init__(self, js: JetStreamContext, *, interval_s: float = 0.25) -> None:
        self._js = js
        self._interval_s = interval_s
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()

    async def mark_dirty(self, namespaces: set[str]) -> None:
        self._dirty |= namespaces
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._interval_s)  # debounce: batches arriving meanwhile join this round
            dirty, self._dirty = self._dirty, set()
            for namespace in dirty:
                try:
                    await self.publish(namespace)
                except Exception as exc:
                    log.warning("budget publish for %s failed: %s", namespace or "(global)", exc)
                    self._dirty.add(namespace)

    async def _budget_view(self, namespace: str) -> ConfigSnapshot | None:
        """Budgets (and users, for group budgets) of the namespace, read back from its published chunks."""
        kv = await self._js.key_value(config_bucket(namespace))
        try:
            manifest = decode(_value(await kv.get(KEY_MANIFEST)), SnapshotManifest)
        except NotFoundError:
            return None
        budgets: list[BudgetConfig] = []
        for digest in manifest.sections.get("budgets", []):
            budgets.extend(_budget_list.decode(_value(await kv.get(f"chunk.{digest}"))))
        if not budgets:
            return None
        users: list[UserConfig] = []
        if any(budget.scope == "group" for budget in budgets):
            for digest in manifest.sections.get("users", []):
                users.extend(_user_list.decode(_value(await kv.get(f"chunk.{digest}"))))
        return ConfigSnapshot(namespace=namespace, version=manifest.version, budgets=budgets, users=users)

    async def publish(self, namespace: str) -> BudgetUpdate | None:
        view = await self._budget_view(namespace)
        if view is None:
            return None
        spends = await run_db(budget_spend_for_snapshot, snapshot=view)
        update = BudgetUpdate(namespace=namespace, generated_at=time.time(), budgets=spends)
        kv = await self._js.create_key_value(
            KeyValueConfig(
                bucket=config_bucket(namespace), history=1, storage=StorageType.FILE, replicas=settings.NATS_REPLICAS
            )
        )
        await kv.put(KEY_BUDGETS, encode(update))
        return update


def _value(entry: KeyValue.Entry) -> bytes:
    """An entry's value: nats-py types it optional, but an entry `get` returned (it raises when none) has one."""
    if entry.value is None:
        raise NotFoundError
    return entry.value
