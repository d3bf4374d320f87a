"""Config down at the edge: the NATS sync client, heartbeats, and the service that wires them with telemetry."""

from .client import ConfigSync
from .service import EdgeSyncService

__all__ = ["ConfigSync", "EdgeSyncService"]
