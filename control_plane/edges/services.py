"""Writes of the edges domain: heartbeats, status, published config, reload requests."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from fjordgate.env import env_int
from shared_sdk.sync_protocol import bound_plugins_not_loaded, bound_plugins_not_loaded_total

from .models import EdgeInstance, EdgeReloadRequest, EdgeStatus, PublishedConfig

OFFLINE_AFTER_S = env_int("FJORDGATE_EDGE_OFFLINE_AFTER_S", 90, minimum=5)
"""No heartbeat for this long (nine missed at the edge's default 10 s interval) means the edge is offline."""
STALE_AFTER_S = env_int("FJORDGATE_EDGE_STALE_AFTER_S", 120, minimum=1)
"""An edge still behind the published config this long after publication is stale rather than pending."""


def _from_ts(value: float) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, tz=dt.UTC) if value else None


def edge_status_compute(
    edge: EdgeInstance, published: PublishedConfig | None, *, now: dt.datetime | None = None
) -> str:
    """in_sync when the edge holds the published checksum; pending while it may still be applying; stale after."""
    now = now or timezone.now()
    if (now - edge.last_heartbeat).total_seconds() > OFFLINE_AFTER_S:
        return EdgeStatus.OFFLINE
    if published is None:
        return EdgeStatus.PENDING
    if edge.checksum_applied == published.checksum:
        return EdgeStatus.IN_SYNC
    if edge.version_applied > published.version:
        return EdgeStatus.PENDING  # the edge saw a newer version than the one we recorded: we are about to catch up
    if (now - published.published_at).total_seconds() > STALE_AFTER_S:
        return EdgeStatus.STALE
    return EdgeStatus.PENDING


@transaction.atomic
def edge_record_heartbeat(
    *,
    edge_id: str,
    namespace: str,
    version: int,
    checksum: str,
    started_at: float = 0.0,
    uptime_s: float = 0.0,
    in_flight: int = 0,
    build: str = "",
    host: str = "",
    port: int = 0,
    config_source: str = "none",
    nats_connected: bool = True,
    spool_records: int = 0,
    spool_bytes: int = 0,
    worker: str = "",
    workers: int = 1,
    plugins_not_loaded: dict[str, str] | None = None,
    plugins_not_loaded_total: int = 0,
) -> EdgeInstance:
    """Create or update the edge from its heartbeat and recompute its status.

    A worker of a multi-worker edge (`worker` its index) updates the same edge: its figures are kept per worker
    and the edge shows their sums (in flight, spool) and how many workers were heard within OFFLINE_AFTER_S."""
    now = timezone.now()
    edge, _ = EdgeInstance.objects.select_for_update().get_or_create(
        edge_id=edge_id, defaults={"namespace": namespace, "last_heartbeat": now}
    )
    edge.namespace = namespace
    edge.version_applied = version
    edge.checksum_applied = checksum
    edge.started_at = _from_ts(started_at)
    edge.uptime_s = uptime_s
    edge.in_flight = max(0, in_flight)
    edge.spool_records = max(0, spool_records)
    edge.spool_bytes = max(0, spool_bytes)
    _record_worker(edge, worker, workers, now)
    edge.build = build[:64]
    edge.host = host[:255]
    edge.port = max(0, port)
    edge.config_source = config_source[:16]
    edge.nats_connected = nats_connected
    # bounded again here: the heartbeat's body is the edge's (a hostile one could send 10,000 slugs or 1 MB of text)
    edge.plugins_not_loaded = bound_plugins_not_loaded(plugins_not_loaded or {})
    # and how many in all, which the list may cut: at least those listed (an older edge sends 0), at most a bound
    edge.plugins_not_loaded_total = bound_plugins_not_loaded_total(
        plugins_not_loaded_total, len(edge.plugins_not_loaded)
    )
    edge.last_heartbeat = now
    edge.status = edge_status_compute(edge, PublishedConfig.objects.filter(namespace=namespace).first(), now=now)
    edge.save()
    return edge


def _record_worker(edge: EdgeInstance, worker: str, workers: int, now: dt.datetime) -> None:
    """Fold one worker's beat into the edge: per-worker figures, their sums, the live worker count."""
    if not worker:
        edge.worker_beats = {}
        edge.workers = 1
        return
    at = now.timestamp()
    beats = {
        index: beat
        for index, beat in (edge.worker_beats or {}).items()
        if at - beat.get("at", 0) <= OFFLINE_AFTER_S and int(index) < workers
    }
    beats[worker] = {
        "at": at,
        "in_flight": edge.in_flight,
        "spool_records": edge.spool_records,
        "spool_bytes": edge.spool_bytes,
    }
    edge.worker_beats = dict(sorted(beats.items(), key=lambda item: int(item[0])))
    edge.workers = len(beats)
    edge.in_flight = sum(beat["in_flight"] for beat in beats.values())
    edge.spool_records = sum(beat["spool_records"] for beat in beats.values())
    edge.spool_bytes = sum(beat["spool_bytes"] for beat in beats.values())


def edge_mark_stale() -> int:
    """Periodic job: recompute every edge's status (offline / stale / pending / in sync); returns how many changed."""
    now = timezone.now()
    published = {config.namespace: config for config in PublishedConfig.objects.all()}
    changed = 0
    for edge in EdgeInstance.objects.all():
        status = edge_status_compute(edge, published.get(edge.namespace), now=now)
        if status != edge.status:
            EdgeInstance.objects.filter(pk=edge.pk).update(status=status)
            changed += 1
    return changed


@transaction.atomic
def published_config_record(
    *, namespace: str, version: int, checksum: str, chunk_count: int, total_bytes: int
) -> PublishedConfig:
    """Remember what the bridge published for a namespace and re-derive its edges' status against it."""
    config, _ = PublishedConfig.objects.update_or_create(
        namespace=namespace,
        defaults={
            "version": version,
            "checksum": checksum,
            "chunk_count": chunk_count,
            "total_bytes": total_bytes,
            "published_at": timezone.now(),
        },
    )
    for edge in EdgeInstance.objects.filter(namespace=namespace):
        status = edge_status_compute(edge, config)
        if status != edge.status:
            EdgeInstance.objects.filter(pk=edge.pk).update(status=status)
    return config


def edge_reload_request(*, namespace: str, edge_id: str = "", requested_by: str = "") -> EdgeReloadRequest:
    """Ask one edge (or, with edge_id "", every edge of the namespace) to re-apply its config; the bridge sends it."""
    return EdgeReloadRequest.objects.create(namespace=namespace, edge_id=edge_id, requested_by=requested_by)


def edge_reload_mark_published(*, request_ids: list[int]) -> int:
    return EdgeReloadRequest.objects.filter(pk__in=request_ids, published_at__isnull=True).update(
        published_at=timezone.now()
    )
