"""Models of the edges domain: the registry of edge gateways, what each namespace was last sent, reload requests.

The bridge is the only process that talks to NATS, so everything the web process wants to tell edges (reload)
goes through a table the bridge drains, and everything edges tell the control plane (heartbeats) lands here.
"""

from __future__ import annotations

from django.db import models

from control_plane.sync.namespaces import namespace_check, validate_namespace


class EdgeStatus(models.TextChoices):
    IN_SYNC = "in_sync", "In sync"
    PENDING = "pending", "Pending"
    STALE = "stale", "Stale"
    OFFLINE = "offline", "Offline"


class EdgeInstance(models.Model):
    """One edge gateway as last heard from. Status is recomputed on each heartbeat and by `edge_mark_stale`."""

    edge_id = models.CharField(max_length=63, unique=True)
    namespace = models.CharField(max_length=63, blank=True, default="", db_index=True, validators=[validate_namespace])
    status = models.CharField(max_length=16, choices=EdgeStatus.choices, default=EdgeStatus.PENDING, db_index=True)
    version_applied = models.BigIntegerField(default=0)
    checksum_applied = models.CharField(max_length=64, blank=True, default="")
    config_source = models.CharField(
        max_length=16, blank=True, default="none", help_text="nats, disk (serving its last snapshot), file or none"
    )
    nats_connected = models.BooleanField(default=True)
    build = models.CharField(max_length=64, blank=True, default="")
    host = models.CharField(max_length=255, blank=True, default="")
    port = models.PositiveIntegerField(default=0)
    uptime_s = models.FloatField(default=0)
    in_flight = models.PositiveIntegerField(default=0)
    spool_records = models.PositiveIntegerField(default=0)
    spool_bytes = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    workers = models.PositiveIntegerField(
        default=1, help_text="worker processes of the edge heard from recently (EDGE_WORKERS; 1: a single process)"
    )
    worker_beats = models.JSONField(
        default=dict,
        blank=True,
        help_text="a multi-worker edge's last heartbeat per worker index: at, in_flight, spool_records, spool_bytes",
    )
    plugins_not_loaded = models.JSONField(
        default=dict,
        blank=True,
        help_text="plugins of its config the edge could not load -> why (a fixed phrase; its log has the error)",
    )
    plugins_not_loaded_total = models.PositiveIntegerField(
        default=0,
        help_text="how many plugins the edge could not load in all; plugins_not_loaded lists at most 64 of them",
    )
    first_seen = models.DateTimeField(auto_now_add=True)
    last_heartbeat = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [namespace_check("edges_edgeinstance")]
        ordering = ["namespace", "edge_id"]

    def __str__(self) -> str:
        return f"{self.edge_id} ({self.namespace or 'global'})"


class PublishedConfig(models.Model):
    """The snapshot the bridge last published for a namespace: what an in-sync edge must hold."""

    namespace = models.CharField(max_length=63, unique=True, blank=True, default="", validators=[validate_namespace])
    version = models.BigIntegerField()
    checksum = models.CharField(max_length=64)
    chunk_count = models.PositiveIntegerField(default=0)
    total_bytes = models.BigIntegerField(default=0)
    published_at = models.DateTimeField()

    class Meta:
        constraints = [namespace_check("edges_publishedconfig")]
        ordering = ["namespace"]

    def __str__(self) -> str:
        return f"{self.namespace or 'global'} v{self.version}"


class EdgeReloadRequest(models.Model):
    """An operator's request that one edge (edge_id set) or every edge of a namespace re-apply its config."""

    namespace = models.CharField(max_length=63, blank=True, default="", validators=[validate_namespace])
    edge_id = models.CharField(max_length=63, blank=True, default="")
    requested_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        constraints = [namespace_check("edges_edgereloadrequest")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"reload {self.edge_id or 'all'} in {self.namespace or 'global'}"
