"""Prometheus metrics for `/metrics`: requests, latency, upstream latency, tokens, cost, TTFT, plugin time, errors.

Most series are updated from the analytics records by `MetricsSink` (a `TelemetrySink`), so the request path
pays nothing for them; the few that have no record (requests rejected before authentication, plugin hook
timings, retries and fallbacks) are cheap counter/histogram updates on cached children.
Each app instance owns a `CollectorRegistry`, so several edges in one process (tests) do not collide.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shared_sdk import AnalyticsRecord

__all__ = ["CONTENT_TYPE_LATEST", "EdgeMetrics", "MetricsSink"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_PLUGIN_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30)


class EdgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        labels = ("app", "llm", "model", "status")
        self.requests = Counter("fjordgate_edge_requests", "Accepted LLM requests", labels, registry=r)
        self.rejected = Counter(
            "fjordgate_edge_rejected_requests",
            "Requests rejected before an app was known",
            ("status", "reason"),
            registry=r,
        )
        self.latency = Histogram(
            "fjordgate_edge_request_duration_seconds",
            "Edge request latency",
            ("app", "llm", "model"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_latency = Histogram(
            "fjordgate_edge_upstream_duration_seconds",
            "Upstream call latency",
            ("llm", "model"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "fjordgate_edge_time_to_first_token_seconds",
            "Streams: time to the first chunk",
            ("llm", "model"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("fjordgate_edge_tokens", "Tokens by kind", ("app", "llm", "model", "kind"), registry=r)
        self.cost = Counter(
            "fjordgate_edge_cost", "Cost in the price's currency", ("app", "llm", "model", "currency"), registry=r
        )
        self.errors = Counter("fjordgate_edge_errors", "Error responses by type", ("app", "llm", "type"), registry=r)
        self.plugin_time = Histogram(
            "fjordgate_edge_plugin_duration_seconds",
            "Plugin hook call time",
            ("plugin", "hook"),
            buckets=_PLUGIN_BUCKETS,
            registry=r,
        )
        self.plugin_failures = Counter(
            "fjordgate_edge_plugin_failures", "Plugin calls that failed", ("plugin", "hook", "kind"), registry=r
        )
        self.retries = Counter("fjordgate_edge_upstream_retries", "Upstream retries", ("llm",), registry=r)
        self.fallbacks = Counter("fjordgate_edge_fallbacks", "Fallbacks taken", ("from_llm", "to_llm"), registry=r)
        self.telemetry_dropped = Counter(
            "fjordgate_edge_telemetry_dropped", "Telemetry records dropped", ("sink",), registry=r
        )
        self.config_version = Gauge("fjordgate_edge_config_version", "Version of the loaded config", registry=r)
        self._plugin_children: dict[tuple[str, str], Any] = {}

    def observe_plugin(self, plugin: str, hook: str, seconds: float) -> None:
        child = self._plugin_children.get((plugin, hook))
        if child is None:
            child = self._plugin_children[(plugin, hook)] = self.plugin_time.labels(plugin, hook)
        child.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsSink:
    """Turns analytics records into series, in the telemetry drain task (off the request path)."""

    def __init__(self, metrics: EdgeMetrics, app_names: Any = None) -> None:
        self.metrics = metrics
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once per series: `labels()` validates and locks on every call."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    async def submit_batch(self, records: list[Any]) -> None:
        m = self.metrics
        child = self._child
        for record in records:
            if not isinstance(record, AnalyticsRecord):
                continue
            app = str(record.app_id) if record.app_id is not None else ""
            llm = record.llm_slug
            model = record.model
            child(m.requests, app, llm, model, str(record.status_code)).inc()
            child(m.latency, app, llm, model).observe(record.latency_ms / 1000.0)
            if record.upstream_latency_ms:
                child(m.upstream_latency, llm, model).observe(record.upstream_latency_ms / 1000.0)
            if record.ttft_ms is not None:
                child(m.ttft, llm, model).observe(record.ttft_ms / 1000.0)
            if record.prompt_tokens:
                child(m.tokens, app, llm, model, "prompt").inc(record.prompt_tokens)
            if record.completion_tokens:
                child(m.tokens, app, llm, model, "completion").inc(record.completion_tokens)
            if record.cache_read_tokens:
                child(m.tokens, app, llm, model, "cache_read").inc(record.cache_read_tokens)
            if record.cost:
                child(m.cost, app, llm, model, record.currency).inc(float(record.cost))
            if record.status_code >= 400 or record.error_type:
                child(m.errors, app, llm, record.error_type or str(record.status_code)).inc()


def hook_observer(metrics: EdgeMetrics):
    """A `HookChain` observer recording each hook call's time and failures."""

    def observe(timing: Any) -> None:
        metrics.observe_plugin(timing.slug, timing.method, timing.duration_s)
        if timing.outcome in ("skipped", "failed"):
            metrics.plugin_failures.labels(timing.slug, timing.method, timing.outcome).inc()

    return observe
