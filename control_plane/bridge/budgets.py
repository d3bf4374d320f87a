"""Budgets down: per-budget spend of the current period, recomputed after ingest and pushed to the namespace.

The figure goes into the namespace's KV bucket under `ctl.budgets`; edges watch that key, so they see a change
within the ingest-to-put latency (well under a second) and an edge that starts later reads the last value.
Recomputation is debounced per namespace so a stream of batches costs one query per budget per interval.
The same figures are stored on the budgets (total and per edge, `budgets.spend.budget_spend_record`), which fires
the threshold alerts they crossed, so the API and the admin show what the edges enforce: at once after a quiet
spell, then at most once every `STORE_INTERVAL_S` per namespace while usage flows, always the newest figures.
Storing them (locks, per-edge rows, the ledger's reserved figures, alert checks) each quarter second was a fifth
of the bridge's CPU beside one edge at c=1 (py-spy `--gil`); the edges' figures are not delayed by it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

import msgspec
from django.conf import settings
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from control_plane.analytics.selectors import budget_spend_for_snapshot
from control_plane.budgets.spend import budget_spend_record
from shared_sdk.snapshot import BudgetConfig, ConfigSnapshot, UserConfig
from shared_sdk.sync_protocol import (
    KEY_BUDGETS,
    KEY_MANIFEST,
    BudgetSpend,
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


STORE_INTERVAL_S = 1.0
"""How often, at most, a namespace's spend figures are stored on its budgets while usage flows."""


class BudgetPublisher:
    def __init__(
        self, js: JetStreamContext, *, interval_s: float = 0.25, store_interval_s: float = STORE_INTERVAL_S
    ) -> None:
        self._js = js
        self._interval_s = interval_s
        self._store_interval_s = store_interval_s
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._unstored: dict[str, list[BudgetSpend]] = {}
        """Namespace -> the newest figures published to its edges and not yet stored on its budgets."""
        self._store_at = 0.0

    async def mark_dirty(self, namespaces: set[str]) -> None:
        self._dirty |= namespaces
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._until_work()
            if self._wake.is_set():
                self._wake.clear()
                await asyncio.sleep(self._interval_s)  # debounce: batches arriving meanwhile join this round
                dirty, self._dirty = self._dirty, set()
                for namespace in dirty:
                    try:
                        await self.publish(namespace)
                    except Exception as exc:
                        log.warning("budget publish for %s failed: %s", namespace or "(global)", exc)
                        self._dirty.add(namespace)
            if self._unstored and time.monotonic() >= self._store_at:
                await self.store()

    async def _until_work(self) -> None:
        """Until usage is ingested, or until figures that wait to be stored are due."""
        if not self._unstored:
            await self._wake.wait()
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, self._store_at - time.monotonic()))

    async def store(self) -> None:
        """Store the newest figures of each namespace published since the last store."""
        unstored, self._unstored = self._unstored, {}
        self._store_at = time.monotonic() + self._store_interval_s
        for namespace, spends in unstored.items():
            try:
                await run_db(budget_spend_record, spends=spends)
            except Exception as exc:  # the edges have their figures; stored again with the next ones
                log.warning("storing budget spend for %s failed: %s", namespace or "(global)", exc)
                self._unstored.setdefault(namespace, spends)

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
        self._unstored[namespace] = spends  # stored by `run`, at once or within STORE_INTERVAL_S
        return update


def _value(entry: KeyValue.Entry) -> bytes:
    """An entry's value: nats-py types it optional, but an entry `get` returned (it raises when none) has one."""
    if entry.value is None:
        raise NotFoundError
    return entry.value
