"""Telemetry up: the edge's batched NATS shipper and the bounded on-disk spool it writes through."""

from .shipper import TelemetryShipper
from .spool import Spool, SpoolFull

__all__ = ["Spool", "SpoolFull", "TelemetryShipper"]
