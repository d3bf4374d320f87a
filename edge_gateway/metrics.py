"""Prometheus metrics for `/metrics`: requests, latency, upstream latency, tokens, cost, TTFT, plugin time, errors.

Most series are updated from the analytics records by `MetricsSink` (a `TelemetrySink`), so the request path
pays nothing for them; the few that have no record (requests rejected before authentication, plugin hook
timings, retries and fallbacks) are cheap updates on cached children.

Why our own series types instead of `prometheus_client.Counter` / `Histogram`: those are thread-safe, so every
`inc()` and `observe()` takes a lock (and an observe updates two locked values), and the edge makes ~16 such
updates per request; under load that was ~10% of the edge's CPU (py-spy, `bench/bench_edge.py`). The edge
updates metrics only from its event loop thread, so plain numbers in dicts do. `prometheus_client` still does
the exposition: `_Families` is a registered collector that turns the series into metric families when
`/metrics` is scraped. Each app instance owns a `CollectorRegistry`, so several edges in one process (tests) do
not collide.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

from shared_sdk import AnalyticsRecord

from .config_store import literal_text

__all__ = ["CONTENT_TYPE_LATEST", "CounterSeries", "EdgeMetrics", "HistogramSeries", "MetricsSink"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_PLUGIN_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30)


class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


OTHER = "other"
"""The label value standing for anything not configured (an unknown model name, an error code over the bound)."""

MAX_CHILDREN = 10_000
"""Children per series at most: past it, new label tuples are counted under `other` in every label, so no input
can grow `/metrics` (and the edge's memory) without bound even if a label slipped past `MetricsSink`'s checks."""


class _Series:
    """A metric name with label names and one child per label-value tuple (created on first use by
    `new_child`; values are strings, as in prometheus_client)."""

    def __init__(
        self, name: str, documentation: str, labelnames: tuple[str, ...], new_child: Callable[[], Any]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.children: dict[tuple[str, ...], Any] = {}
        self._new_child = new_child

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            if len(self.children) >= MAX_CHILDREN:
                values = (OTHER,) * len(values)
                child = self.children.get(values)
                if child is not None:
                    return child
            child = self.children[values] = self._new_child()
        return child


class CounterSeries(_Series):
    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> None:
        super().__init__(name, documentation, labelnames, _CounterChild)

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            family.add_metric([str(v) for v in values], child.value)
        return family


class HistogramSeries(_Series):
    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self.buckets = tuple(float(b) for b in buckets)
        super().__init__(name, documentation, labelnames, lambda: _HistogramChild(self.buckets))

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            cumulative = []
            running = 0
            for bound, count in zip((*self.buckets, float("inf")), child.counts, strict=True):
                running += count
                cumulative.append(("+Inf" if bound == float("inf") else _fmt(bound), running))
            family.add_metric([str(v) for v in values], cumulative, child.sum)
        return family


def _fmt(bound: float) -> str:
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped


class _Families:
    """The registry's view of our series (a prometheus_client custom collector)."""

    def __init__(self, series: list[CounterSeries | HistogramSeries]) -> None:
        self.series = series

    def collect(self) -> Iterator[Metric]:
        for s in self.series:
            yield s.family()

    def describe(self) -> Iterator[Metric]:
        return iter(())


class EdgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("app", "llm", "model", "status")
        self.requests = CounterSeries("fjordgate_edge_requests", "Accepted LLM requests", labels)
        self.rejected = CounterSeries(
            "fjordgate_edge_rejected_requests", "Requests rejected before an app was known", ("status", "reason")
        )
        self.latency = HistogramSeries(
            "fjordgate_edge_request_duration_seconds", "Edge request latency", ("app", "llm", "model"), _LATENCY_BUCKETS
        )
        self.upstream_latency = HistogramSeries(
            "fjordgate_edge_upstream_duration_seconds", "Upstream call latency", ("llm", "model"), _LATENCY_BUCKETS
        )
        self.ttft = HistogramSeries(
            "fjordgate_edge_time_to_first_token_seconds",
            "Streams: time to the first chunk",
            ("llm", "model"),
            _LATENCY_BUCKETS,
        )
        self.tokens = CounterSeries("fjordgate_edge_tokens", "Tokens by kind", ("app", "llm", "model", "kind"))
        self.cost = CounterSeries(
            "fjordgate_edge_cost", "Cost in the price's currency", ("app", "llm", "model", "currency")
        )
        self.errors = CounterSeries("fjordgate_edge_errors", "Error responses by type", ("app", "llm", "type"))
        self.plugin_time = HistogramSeries(
            "fjordgate_edge_plugin_duration_seconds", "Plugin hook call time", ("plugin", "hook"), _PLUGIN_BUCKETS
        )
        self.plugin_failures = CounterSeries(
            "fjordgate_edge_plugin_failures", "Plugin calls that failed", ("plugin", "hook", "kind")
        )
        self.loop_stalls = CounterSeries(
            "fjordgate_edge_loop_stalls",
            "Event-loop stalls over the plugin host's watchdog threshold, by the plugin hook that blocked (plugin "
            "empty: outside any plugin)",
            ("plugin", "hook"),
        )
        self.retries = CounterSeries("fjordgate_edge_upstream_retries", "Upstream retries", ("llm",))
        self.fallbacks = CounterSeries("fjordgate_edge_fallbacks", "Fallbacks taken", ("from_llm", "to_llm"))
        self.telemetry_dropped = CounterSeries(
            "fjordgate_edge_telemetry_dropped", "Telemetry records dropped", ("sink",)
        )
        self.registry.register(
            _Families(
                [
                    self.requests,
                    self.rejected,
                    self.latency,
                    self.upstream_latency,
                    self.ttft,
                    self.tokens,
                    self.cost,
                    self.errors,
                    self.plugin_time,
                    self.plugin_failures,
                    self.loop_stalls,
                    self.retries,
                    self.fallbacks,
                    self.telemetry_dropped,
                ]
            )
        )
        self.config_version = Gauge(
            "fjordgate_edge_config_version", "Version of the loaded config", registry=self.registry
        )
        self._plugin_children = self.plugin_time.children

    def observe_plugin(self, plugin: str, hook: str, seconds: float) -> None:
        child = self._plugin_children.get((plugin, hook))
        if child is None:
            child = self.plugin_time.labels(plugin, hook)
        child.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SeriesOf:
    """The children one (app, LLM, model) updates, looked up once instead of per record."""

    __slots__ = ("requests", "latency", "upstream", "ttft", "prompt", "completion", "cache_read", "cost", "labels")

    def __init__(self, m: EdgeMetrics, app: str, llm: str, model: str) -> None:
        self.labels = (app, llm, model)
        self.requests: dict[int, Any] = {}
        self.latency = m.latency.labels(app, llm, model)
        self.upstream = m.upstream_latency.labels(llm, model)
        self.ttft = m.ttft.labels(llm, model)
        self.prompt = m.tokens.labels(app, llm, model, "prompt")
        self.completion = m.tokens.labels(app, llm, model, "completion")
        self.cache_read = m.tokens.labels(app, llm, model, "cache_read")
        self.cost: dict[str, Any] = {}


_ERROR_LABEL = re.compile(r"[a-z0-9_]{1,48}")


class MetricsSink:
    """Turns analytics records into series, in the telemetry drain task (off the request path).

    Label values come only from configured objects: a model is labelled by name only when an LLM or price of the
    loaded config names it (default model, literal allow-list entry, price list), anything else is `other`; an
    error label must look like an error code. A client that sends 2,000 random model names to an LLM whose
    allow-list is a pattern adds one series, not 2,000. `configure` is a config-store listener.
    """

    def __init__(self, metrics: EdgeMetrics) -> None:
        self.metrics = metrics
        self._series: dict[tuple[int | None, str, str], _SeriesOf] = {}
        self._models: frozenset[str] = frozenset()

    def configure(self, cfg: Any) -> None:
        snapshot = cfg.snapshot
        models = {price.model for price in snapshot.prices}
        for llm in snapshot.llms:
            if llm.default_model:
                models.add(llm.default_model)
            models.update(text for text in map(literal_text, llm.allowed_models) if text)
        self._models = frozenset(models)
        self._series.clear()  # labels are re-decided under the new config

    @staticmethod
    def accepts(kind: type) -> bool:
        """Only analytics records make series (`TelemetryQueue.wants`)."""
        return kind is AnalyticsRecord or issubclass(kind, AnalyticsRecord)

    async def submit_batch(self, records: list[Any]) -> None:
        for record in records:
            if isinstance(record, AnalyticsRecord):
                s = self._series_of(record)
                self._count_request(s, record)
                _observe_times(s, record)
                _count_tokens(s, record)
                self._count_cost(s, record)
                self._count_error(s, record)

    def _series_of(self, record: AnalyticsRecord) -> _SeriesOf:
        """The record's series (app, LLM, model), made on first sight; all dropped past `MAX_CHILDREN`."""
        series = self._series
        key = (record.app_id, record.llm_slug, record.model)
        s = series.get(key)
        if s is None:
            app = str(record.app_id) if record.app_id is not None else ""
            model = record.model if record.model in self._models else OTHER
            s = series[key] = _SeriesOf(self.metrics, app, record.llm_slug, model)
            if len(series) > MAX_CHILDREN:
                series.clear()
        return s

    def _count_request(self, s: _SeriesOf, record: AnalyticsRecord) -> None:
        status = record.status_code
        child = s.requests.get(status)
        if child is None:
            child = s.requests[status] = self.metrics.requests.labels(*s.labels, str(status))
        child.inc()

    def _count_cost(self, s: _SeriesOf, record: AnalyticsRecord) -> None:
        if record.cost:
            cost = s.cost.get(record.currency)
            if cost is None:
                cost = s.cost[record.currency] = self.metrics.cost.labels(*s.labels, record.currency)
            cost.inc(float(record.cost))

    def _count_error(self, s: _SeriesOf, record: AnalyticsRecord) -> None:
        """A failed request by its error code, or `other` when the code is not label-shaped (hostile input)."""
        if record.status_code >= 400 or record.error_type:
            app, llm, _ = s.labels
            kind = record.error_type or str(record.status_code)
            self.metrics.errors.labels(app, llm, kind if _ERROR_LABEL.fullmatch(kind) else OTHER).inc()


def _observe_times(s: _SeriesOf, record: AnalyticsRecord) -> None:
    s.latency.observe(record.latency_ms / 1000.0)
    if record.upstream_latency_ms:
        s.upstream.observe(record.upstream_latency_ms / 1000.0)
    if record.ttft_ms is not None:
        s.ttft.observe(record.ttft_ms / 1000.0)


def _count_tokens(s: _SeriesOf, record: AnalyticsRecord) -> None:
    if record.prompt_tokens:
        s.prompt.inc(record.prompt_tokens)
    if record.completion_tokens:
        s.completion.inc(record.completion_tokens)
    if record.cache_read_tokens:
        s.cache_read.inc(record.cache_read_tokens)


STREAM_CHUNK_HOOK = "on_before_write_stream"
"""The `hook` label of a stream's chunk-hook time, summed per plugin and stream."""


def hook_observer(metrics: EdgeMetrics) -> Callable[[Any], None]:
    """A `HookChain` observer recording each hook call's time and failures.

    A stream's chunk hooks are timed per stream (`HookTiming.chunks` > 0: the sum of a plugin's calls over the
    stream), and go to their own `hook` label, `on_before_write_stream`: one observation per stream, which mixed
    with the per-call times of full responses' `on_before_write` would make that histogram mean neither."""

    def observe(timing: Any) -> None:
        hook = STREAM_CHUNK_HOOK if timing.chunks else timing.method
        metrics.observe_plugin(timing.slug, hook, timing.duration_s)
        if timing.outcome in ("skipped", "failed"):
            metrics.plugin_failures.labels(timing.slug, timing.method, timing.outcome).inc()

    return observe
