"""`EdgeRuntime`: what outlives configs and requests, handed to every phase of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .budgets import BudgetTracker
from .config_store import ConfigStore
from .metrics import EdgeMetrics
from .ratelimit import RateLimiter
from .response_store import ResponseStore
from .settings import EdgeSettings
from .telemetry_queue import TelemetryQueue
from .upstream import UpstreamTransport
from .upstream_call import Backoff

if TYPE_CHECKING:  # imported at run time only when tracing is configured (`app.build_edge`)
    from .tracing import EdgeTracing

__all__ = ["EdgeRuntime"]


@dataclass(slots=True)
class EdgeRuntime:
    """Settings, config store, upstream transport, limits, budgets, telemetry, metrics."""

    settings: EdgeSettings
    store: ConfigStore
    transport: UpstreamTransport
    limiter: RateLimiter
    telemetry: TelemetryQueue
    metrics: EdgeMetrics
    backoff: Backoff
    responses: ResponseStore | None = None
    """Responses the edge created (translated `/v1/responses` calls), for `previous_response_id`."""
    tracing: EdgeTracing | None = None
    """OpenTelemetry spans (`EDGE_OTEL_ENDPOINT`); None, and never imported, when tracing is off."""

    @property
    def budgets(self) -> BudgetTracker:
        return self.store.budgets
