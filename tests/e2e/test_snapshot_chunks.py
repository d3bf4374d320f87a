"""A 100,000-app, 100,000-key snapshot travels through a real JetStream KV bucket despite NATS's 1 MB limit,
and rotating one key makes the edge fetch at most two chunks, not the namespace."""

from __future__ import annotations

import time
from decimal import Decimal

import msgspec
import nats
import pytest

from edge_gateway.sync.client import ConfigSync
from shared_sdk.snapshot import AppConfig, ConfigSnapshot, CredentialConfig, hash_credential
from shared_sdk.sync_protocol import (
    CHUNK_MAX_BYTES,
    KEY_MANIFEST,
    chunk_key,
    config_bucket,
    encode,
    snapshot_canonical,
    snapshot_split,
)

N = 100_000


class RecordingStore:
    """Stands in for the edge's ConfigStore: keeps what it was asked to apply."""

    def __init__(self) -> None:
        self.current = None
        self.applied: list[ConfigSnapshot] = []
        self.restarts: list[bool] = []  # per apply: whether isolated plugins were to be restarted (a reload request)
        self.spend: dict[int, Decimal] = {}

    async def apply(self, snapshot: ConfigSnapshot, *, restart_isolated: bool = False) -> None:
        self.applied.append(snapshot)
        self.restarts.append(restart_isolated)

    def update_budget_spend(self, budget_id: int, spent: Decimal, period_start: float) -> None:
        self.spend[budget_id] = spent


def big_snapshot(version: int, rotated: int | None = None) -> ConfigSnapshot:
    credentials = [
        CredentialConfig(
            key_hash=hash_credential(f"key-{i}-{'rotated' if i == rotated else 'v1'}"),
            app_id=i,
            credential_id=i,
            prefix=f"fj-{i:06d}",
        )
        for i in range(N)
    ]
    apps = [AppConfig(id=i, name=f"app {i}", namespace="bulk", llm_ids=[1]) for i in range(N)]
    return snapshot_canonical(
        ConfigSnapshot(namespace="bulk", version=version, generated_at=time.time(), apps=apps, credentials=credentials)
    )


async def publish(kv, snapshot: ConfigSnapshot, stored: set[str]) -> int:
    manifest, chunks = snapshot_split(snapshot)
    new = 0
    for digest, data in chunks.items():
        if digest not in stored:
            await kv.put(chunk_key(digest), data)
            stored.add(digest)
            new += 1
    await kv.put(KEY_MANIFEST, encode(manifest))
    return new


@pytest.mark.timeout(120)
async def test_hundred_thousand_keys_round_trip_and_incremental_change(nats_server):
    first = big_snapshot(1)
    assert len(msgspec.json.encode(first)) > 10 * 1024 * 1024  # far beyond one NATS message
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream(timeout=10)
        kv = await js.create_key_value(bucket=config_bucket("bulk"), history=1)
        stored: set[str] = set()
        await publish(kv, first, stored)
        sizes = [len((await kv.get(chunk_key(digest))).value) for digest in stored]
        assert len(sizes) > 20 and max(sizes) <= CHUNK_MAX_BYTES

        store = RecordingStore()
        sync = ConfigSync(store=store, namespace="bulk", edge_id="edge-bulk")
        sync._nc = nc
        assert await sync.reconcile()
        got = store.applied[-1]
        assert got.checksum == first.checksum and len(got.credentials) == N and len(got.apps) == N
        assert got == first

        fetched_before = len(sync._chunks)
        second = big_snapshot(2, rotated=4242)
        new_chunks = await publish(kv, second, stored)
        gets = 0
        original_get = kv.get

        async def counting_get(key, *args, **kwargs):
            nonlocal gets
            if key.startswith("chunk."):
                gets += 1
            return await original_get(key, *args, **kwargs)

        sync._kv = kv
        kv.get = counting_get
        assert await sync.reconcile()
        assert store.applied[-1].checksum == second.checksum
        assert hash_credential("key-4242-rotated") in {c.key_hash for c in store.applied[-1].credentials}
        # the old hash leaves its shard and the new one joins another: at most two of the chunks change
        assert 1 <= new_chunks <= 2 and gets == new_chunks, f"rotated one key: {new_chunks} new, {gets} fetched"
        assert fetched_before > 20
        # the same manifest again is a no-op
        assert not await sync.reconcile()
    finally:
        await nc.close()


def test_tampered_chunk_is_refused():
    from shared_sdk.sync_protocol import snapshot_assemble

    snapshot = snapshot_canonical(
        ConfigSnapshot(namespace="n", version=3, apps=[AppConfig(id=1, name="a")], credentials=[])
    )
    manifest, chunks = snapshot_split(snapshot)
    digest = manifest.sections["apps"][0]
    chunks[digest] = chunks[digest].replace(b'"a"', b'"b"')
    with pytest.raises(ValueError, match="corrupt"):
        snapshot_assemble(manifest, chunks)
