"""Config down: drain the outbox, build each changed namespace's snapshot once, publish it as manifest + chunks.

Bursts coalesce by construction: every poll takes all unpublished changes, groups them by namespace and builds
one snapshot per namespace at its newest version. A global change ("" namespace) republishes every namespace
an edge has announced or a snapshot was published for.

Publishing order makes a half-published snapshot invisible: chunks first (content-addressed, so chunks an
edge already holds are not re-sent), the manifest last. Chunks no longer referenced by the current or the
previous manifest are purged afterwards, so an edge in the middle of fetching the previous version finishes.

One namespace's failure never holds up the others (issue 13: one unpublishable row used to stop every
namespace). A failure that belongs to the change (its namespace cannot be a bucket, its snapshot cannot be
built or stored) is recorded on the namespace's outbox rows, which back off and, after `max_attempts`, are set
aside as dead letters; the pass goes on with the next namespace. An outage (PostgreSQL unreachable, NATS
disconnected) is not the change's fault: it is raised, the leader duty fails, the bridge's /health says so,
and nothing is counted against the rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import InterfaceError, OperationalError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import NoKeysError, NotFoundError
from nats.js.kv import KeyValue

from control_plane.edges.selectors import edge_namespaces
from control_plane.edges.services import published_config_record
from control_plane.sync.models import ConfigChange
from control_plane.sync.selectors import config_changes_unpublished, snapshot_build
from control_plane.sync.services import config_change_mark_failed, config_change_mark_published
from shared_sdk.snapshot import ConfigSnapshot
from shared_sdk.sync_protocol import (
    KEY_MANIFEST,
    SnapshotManifest,
    chunk_key,
    config_bucket,
    decode,
    encode,
    manifest_digests,
    snapshot_canonical,
    snapshot_split,
)

from .db import run_db

log = logging.getLogger("fjordgate.bridge")


@dataclass
class _NamespaceState:
    kv: KeyValue
    stored_chunks: set[str]
    manifest: SnapshotManifest | None = None
    previous_digests: set[str] = field(default_factory=set)
    snapshot: ConfigSnapshot | None = None


def _pending_work() -> dict[str, int]:
    """Namespace -> newest unpublished version; a global change fans out to every known namespace."""
    changes: list[ConfigChange] = list(config_changes_unpublished())
    if not changes:
        return {}
    work: dict[str, int] = {}
    global_version = max((c.version for c in changes if c.namespace == ""), default=0)
    for change in changes:
        work[change.namespace] = max(work.get(change.namespace, 0), change.version)
    if global_version:
        from control_plane.edges.models import PublishedConfig

        known = set(edge_namespaces()) | set(PublishedConfig.objects.values_list("namespace", flat=True)) | {""}
        for namespace in known:
            work[namespace] = max(work.get(namespace, 0), global_version)
    return work


def _build(namespace: str) -> ConfigSnapshot:
    return snapshot_canonical(snapshot_build(namespace=namespace))


def is_outage(exc: BaseException) -> bool:
    """True when PostgreSQL is unreachable (the NATS connection is checked by the caller): nobody's change is at
    fault, so no attempt is used up. Anything else while both are up, a JetStream error or timeout included, is
    counted against the namespace's changes: raising it would stop the pass and freeze every namespace behind
    this one again, while counting costs at most a dead letter that the next change or a retry makes good."""
    return isinstance(exc, (OperationalError, InterfaceError))


class ConfigPublisher:
    def __init__(
        self,
        js: JetStreamContext,
        *,
        connected: Callable[[], bool] = lambda: True,
        max_attempts: int = 8,
        backoff_s: float = 2.0,
    ) -> None:
        self._js = js
        self._connected = connected
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._namespaces: dict[str, _NamespaceState] = {}
        self.published = 0
        self.failures = 0
        """Namespace publications that failed for a reason of their own (metric)."""
        self.dead_lettered = 0
        """Outbox rows set aside after their last attempt (metric)."""

    async def bucket(self, namespace: str) -> _NamespaceState:
        state = self._namespaces.get(namespace)
        if state is None:
            kv = await self._js.create_key_value(
                KeyValueConfig(
                    bucket=config_bucket(namespace),
                    history=1,
                    storage=StorageType.FILE,
                    replicas=settings.NATS_REPLICAS,
                )
            )
            try:
                stored = {key.removeprefix("chunk.") for key in await kv.keys(filters=["chunk.>"])}
            except (NoKeysError, NotFoundError):
                stored = set()
            manifest = None
            try:
                entry = await kv.get(KEY_MANIFEST)
                manifest = decode(entry.value, SnapshotManifest)
            except NotFoundError:
                pass
            state = _NamespaceState(kv=kv, stored_chunks=stored, manifest=manifest)
            self._namespaces[namespace] = state
        return state

    async def publish_pending(self) -> int:
        """One pass over the outbox; returns how many namespaces were published."""
        work = await run_db(_pending_work)
        failed: list[str] = []
        # the global namespace last: its outbox rows are marked only once every namespace carries the change
        for namespace, version in sorted(work.items(), key=lambda item: (item[0] == "", item[0])):
            if namespace == "" and failed:
                await self._record_failure("", version, f"namespaces not published: {', '.join(failed)}")
                continue
            try:
                await self.publish_namespace(namespace)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_outage(exc) or not self._connected():
                    raise
                failed.append(repr(namespace))
                await self._record_failure(namespace, version, f"{type(exc).__name__}: {exc}")
                continue
            await run_db(config_change_mark_published, namespace=namespace, up_to_version=version)
        return len(work) - len(failed)

    async def _record_failure(self, namespace: str, version: int, error: str) -> None:
        self.failures += 1
        dead = await run_db(
            config_change_mark_failed,
            namespace=namespace,
            up_to_version=version,
            error=error,
            max_attempts=self._max_attempts,
            backoff_s=self._backoff_s,
        )
        self.dead_lettered += dead
        if dead:
            log.error(
                "config changes of namespace %r set aside after %d failed attempts (%s); retry them from the "
                "admin's config-change page once the cause is fixed",
                namespace,
                self._max_attempts,
                error,
            )
        else:
            log.warning("publishing namespace %r failed (%s); will retry with backoff", namespace, error)

    async def publish_namespace(self, namespace: str) -> SnapshotManifest:
        started = time.perf_counter()
        snapshot = await run_db(_build, namespace)
        state = await self.bucket(namespace)
        manifest, chunks = snapshot_split(snapshot)
        new_chunks = 0
        for digest, data in chunks.items():
            if digest not in state.stored_chunks:
                await state.kv.put(chunk_key(digest), data)
                state.stored_chunks.add(digest)
                new_chunks += 1
        await state.kv.put(KEY_MANIFEST, encode(manifest))
        keep = set(chunks) | (set(manifest_digests(state.manifest)) if state.manifest else set())
        for digest in state.stored_chunks - keep:
            await state.kv.purge(chunk_key(digest))
        state.stored_chunks &= keep
        state.manifest = manifest
        state.snapshot = snapshot
        await run_db(
            published_config_record,
            namespace=namespace,
            version=manifest.version,
            checksum=manifest.checksum,
            chunk_count=len(chunks),
            total_bytes=manifest.total_bytes,
        )
        self.published += 1
        log.info(
            "published config %s v%d (%d chunks, %d new, %d bytes) in %.0f ms",
            namespace or "(global)",
            manifest.version,
            len(chunks),
            new_chunks,
            manifest.total_bytes,
            (time.perf_counter() - started) * 1000,
        )
        return manifest

    def snapshot_of(self, namespace: str) -> ConfigSnapshot | None:
        state = self._namespaces.get(namespace)
        return state.snapshot if state else None
