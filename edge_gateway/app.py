"""The app factory: one function builds the runtime, the explicit route list, and the lifespan.

Start-up order (lifespan): open the local KV -> start telemetry -> load config (the snapshot file when
`EDGE_SNAPSHOT_FILE` is set, else the last snapshot this edge persisted) -> start the sync client when
`NATS_URL` is set -> start housekeeping. Shutdown runs it backwards and flushes telemetry.

With `NATS_URL` set, the sync service (`edge_gateway.sync.EdgeSyncService`, the sync helper's) is built with
the config store and registered as a durable telemetry sink (its shipper writes each record to the on-disk
spool; the pipeline's last step, accounting, returns the spool writes and the response's last message waits for
them, so a response completes only once its records are on disk) and as the event hub's uplink; it uses only the interfaces documented on `ConfigStore`,
`TelemetryQueue` and `EdgeEventHub`. Without it, the edge runs from the snapshot file (a supported mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared_sdk import Runtime
from shared_sdk.host import PluginHost

from .azure_routes import azure_routes
from .collectors import PluginCollectorSink
from .config_store import ConfigRejected, ConfigStore
from .cors import Cors
from .deployments import DeploymentStates, open_breakers
from .endpoints import (
    BearerGuard,
    GeminiEndpoint,
    Health,
    LLMEndpoint,
    MetricsEndpoint,
    ModelEndpoint,
    NativeEndpoint,
    PluginEndpoint,
    Ready,
)
from .errors import dialect_of, error_for
from .kv import EdgeKV
from .metrics import EdgeMetrics, MetricsSink, hook_observer
from .pipeline import Pipeline
from .plugin_loading import plain_chain
from .ratelimit import RateLimiter
from .response_store import ResponseStore
from .responses_endpoint import StoredResponsesEndpoint
from .runtime import EdgeRuntime
from .services import EdgeEventHub, EdgeGatewayServices, services_factory
from .settings import EdgeSettings
from .telemetry_queue import TelemetryQueue
from .upstream import AiohttpTransport, UpstreamTransport
from .upstream_call import Backoff
from .upstream_h1 import H1Transport

if TYPE_CHECKING:  # imported at run time only when tracing is configured (`_tracing`)
    from .tracing import EdgeTracing

__all__ = ["Edge", "create_app"]

log = logging.getLogger("fjordgate.edge")

_HOUSEKEEPING_INTERVAL_S = 60.0
GC_YOUNG_THRESHOLD = 10_000
"""Net container allocations before the collector's youngest generation is collected (CPython's default: 700).

Why: each request makes many short-lived objects (scope, headers, futures, coroutines, the exchange). Under load,
with tens of requests in flight, the default collected every few requests, walking the objects of requests still in
flight and promoting them to older generations, where later collections walked them again. With 10,000, most of a
request's objects are freed by reference counting before a collection comes: `bench/deployed_overhead.py
--baseline`, CPU per request -3 % (chat) and -2 % (streams), three rounds of three each. Cyclic garbage waits a
little longer, and one collection takes longer (0.10-0.17 ms when all 10,000 objects are still alive, ~0.01 ms
for 700)."""
_HOT_PATHS = {
    "/v1/chat/completions": "chat",
    "/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens",
    "/v1/responses": "responses",
}
"""The LLM routes `_HotRoutes` serves for POST, with the pipeline's kind of each (the same as their `Route`s')."""


@dataclass(slots=True)
class Edge:
    """Everything one edge process holds; `app.state.edge` in the Starlette app."""

    settings: EdgeSettings
    store: ConfigStore
    telemetry: TelemetryQueue
    metrics: EdgeMetrics
    kv: EdgeKV
    hub: EdgeEventHub
    runtime: EdgeRuntime
    pipeline: Pipeline
    in_flight: list[int]
    """LLM requests being served now (one-element list, shared with the counting wrapper; for heartbeats)."""
    sync: Any = None
    """The running `EdgeSyncService` when NATS_URL is set."""
    worker_metrics: Any = None
    """A worker of a multi-worker edge: its `WorkerMetrics` (shared `/metrics`, `worker_metrics.py`)."""


def upstream_transport(settings: EdgeSettings) -> UpstreamTransport:
    """The HTTP client the edge calls vendors with (`EDGE_UPSTREAM_CLIENT`)."""
    if settings.upstream_client == "aiohttp":
        return AiohttpTransport(deadline_s=settings.upstream_deadline_s)
    return H1Transport(deadline_s=settings.upstream_deadline_s)


def _tracing(settings: EdgeSettings) -> EdgeTracing | None:
    """The edge's `EdgeTracing` when `EDGE_OTEL_ENDPOINT` is set; None (and the SDK never imported) otherwise."""
    if not settings.otel_endpoint:
        return None
    from .tracing import EdgeTracing

    return EdgeTracing(
        endpoint=settings.otel_endpoint,
        sample_ratio=settings.otel_sample_ratio,
        edge_id=settings.edge_id,
        namespace=settings.namespace,
        worker=settings.worker,
    )


def build_edge(settings: EdgeSettings, transport: UpstreamTransport | None = None) -> Edge:
    metrics = EdgeMetrics()
    tracing = _tracing(settings)
    # One plugin KV for the edge, shared by its workers (SQLite in WAL mode, one writer at a time): a plugin reads
    # what it wrote while another worker served the request (a worker's buffered writes are stored within 50 ms).
    kv = EdgeKV(os.path.join(settings.edge_state_dir, "kv.sqlite3"))
    hub = EdgeEventHub()
    holder: list[ConfigStore] = []
    host = PluginHost(
        Runtime.GATEWAY,
        services_factory(kv, hub, lambda: EdgeGatewayServices(holder[0])),
        on_loop_stall=lambda stall: metrics.loop_stalls.labels(stall.plugin, stall.method).inc(),
        sources=settings.plugin_sources(),  # the operator's allow-list, applied before any snapshot plugin loads
    )
    store = ConfigStore(
        host=host,
        namespace=settings.namespace or None,
        edge_secret=settings.edge_secret,
        state_dir=settings.state_dir,
        hook_observer=hook_observer(metrics),
        breaker_failures=settings.breaker_failures,
        breaker_cooldown_s=settings.breaker_cooldown_s,
        chain_factory=tracing.chain if tracing is not None else plain_chain,
        max_body_bytes=settings.max_body_bytes,
    )
    holder.append(store)
    metrics.registry.register(DeploymentStates(lambda: store.current.llms_by_id.values() if store.current else ()))
    store.add_listener(lambda cfg: metrics.config_version.set(cfg.version))
    telemetry = TelemetryQueue(
        maxsize=settings.telemetry_queue_size,
        batch_size=settings.telemetry_batch_size,
        flush_interval_s=settings.telemetry_flush_interval_s,
        on_drop=lambda sink: metrics.telemetry_dropped.labels(sink).inc(),
    )
    metrics_sink = MetricsSink(metrics)
    store.add_listener(metrics_sink.configure)
    telemetry.add_sink(metrics_sink, name="metrics")
    telemetry.add_sink(PluginCollectorSink(store, settings.edge_id), name="plugins")
    runtime = EdgeRuntime(
        settings=settings,
        store=store,
        transport=transport or upstream_transport(settings),
        limiter=RateLimiter(),
        telemetry=telemetry,
        metrics=metrics,
        backoff=Backoff(settings.retry_initial_backoff_s, settings.retry_max_backoff_s),
        responses=_response_store(settings, kv),
        tracing=tracing,
    )
    return Edge(settings, store, telemetry, metrics, kv, hub, runtime, Pipeline(runtime), [0])


def _response_store(settings: EdgeSettings, kv: EdgeKV) -> ResponseStore:
    """One worker keeps stored responses in its KV; several share one store (a follow-up may land on any)."""
    if settings.workers > 1:
        return ResponseStore.for_workers(
            settings.edge_state_dir, settings.responses_ttl_s, settings.responses_max_bytes
        )
    return ResponseStore(kv, settings.responses_ttl_s, settings.responses_max_bytes)


class _SyncAwareReady:
    """`GET /ready`: the edge's Ready answer plus, with NATS configured, where the config came from
    (`config_source`: nats | disk) and whether NATS is reachable, so an operator sees an edge serving from its
    last snapshot; and, as `Ready`, the plugins it could not load (`plugins_not_loaded`)."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.ready = Ready(edge.store)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        sync = self.edge.sync
        cfg = self.edge.store.current
        if sync is None and not self.edge.settings.worker:
            await self.ready(scope, receive, send)
            return
        body = {
            "status": "ready" if cfg is not None else "waiting for config",
            **(sync.status() if sync is not None else {}),
            **_worker_status(self.edge.settings),
        }
        if cfg is not None:
            body.update(namespace=cfg.snapshot.namespace, version=cfg.version, checksum=cfg.checksum)
            body["open_breakers"] = open_breakers(cfg.llms_by_id.values())
            body["plugins_not_loaded"] = cfg.plugins_not_loaded
        response = JSONResponse(body, status_code=200 if cfg is not None else 503)
        await response(scope, receive, send)


def _worker_status(settings: EdgeSettings) -> dict[str, Any]:
    """Which process answered: with several workers on one port, the operator (and the tests) can tell."""
    return {"worker": settings.worker, "workers": settings.workers, "pid": os.getpid()}


class _InFlight:
    """ASGI wrapper counting requests in progress (reported in the edge's heartbeat)."""

    def __init__(self, app: Any, counter: list[int]) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.counter[0] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.counter[0] -= 1


class _HotRoutes:
    """Plain ASGI front for the LLM routes: an exact POST to one of `_HOT_PATHS` goes straight to the pipeline
    (counted in flight, as `_InFlight` counts it on the Starlette route); everything else goes to the Starlette app.

    Why: Starlette's stack (error and exception middleware, the router's regex match over every route, the
    exception-handler wrapper around `send`) cost ~8% of the edge's CPU per request under load and does nothing
    for these endpoints, which answer every error themselves (`Pipeline.serve` never raises). And the pipeline is
    awaited here, not through `_InFlight` and `LLMEndpoint`: each coroutine level of a request is crossed again on
    every resumption of the request (each upstream read, each stream event), ~8,000 instructions a chat request.
    """

    def __init__(self, app: Starlette, pipeline: Pipeline, in_flight: list[int]) -> None:
        self.app = app
        self.pipeline = pipeline
        self.in_flight = in_flight
        self.hot = {("POST", path): kind for path, kind in _HOT_PATHS.items()}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            kind = self.hot.get((scope["method"], scope["path"]))
            if kind is not None:
                in_flight = self.in_flight
                in_flight[0] += 1
                try:
                    await self.pipeline.serve(scope, receive, send, kind)
                finally:
                    in_flight[0] -= 1
                return
        await self.app(scope, receive, send)

    @property
    def state(self) -> Any:
        return self.app.state

    @property
    def router(self) -> Any:
        return self.app.router


async def _not_found(request: Request, exc: Exception) -> Response:
    """No route (404), a method the route does not take (405), or an error no endpoint caught (500): in the shape
    of the SDK the caller speaks (an Anthropic client's `messages.batches` reads Anthropic's `not_found_error`)."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    path = request.url.path
    if status == 404:
        message, type, code = f"no route for {request.method} {path}", "invalid_request_error", "route_not_found"
    elif status == 405:
        message, type, code = (
            f"method {request.method} not allowed on {path}",
            "invalid_request_error",
            "method_not_allowed",
        )
    else:
        message, type, code = "internal error in the edge gateway", "internal_error", "internal_error"
    status, body = error_for(_route_dialect(request.headers, path), status, message, type, code)
    return Response(body, status_code=status, media_type="application/json")


def _route_dialect(headers: Any, path: str) -> str:
    """The caller's dialect without a route's kind: Anthropic's paths or version header, Google's or its key."""
    if path.startswith("/v1/messages/"):
        return "anthropic"
    return dialect_of("models", headers, path)


def _routes(edge: Edge) -> list[Route]:
    pipeline = edge.pipeline

    def counted(endpoint: Any) -> _InFlight:
        return _InFlight(endpoint, edge.in_flight)

    chat = counted(LLMEndpoint(pipeline, "chat"))
    completions = counted(LLMEndpoint(pipeline, "completions"))
    embeddings = counted(LLMEndpoint(pipeline, "embeddings"))
    messages = counted(LLMEndpoint(pipeline, "messages"))
    count_tokens = counted(LLMEndpoint(pipeline, "count_tokens"))
    responses = counted(LLMEndpoint(pipeline, "responses"))
    assert edge.runtime.responses is not None
    stored = StoredResponsesEndpoint(edge.store, edge.runtime.responses)
    models = LLMEndpoint(pipeline, "models")
    native = counted(NativeEndpoint(pipeline))
    gemini = counted(GeminiEndpoint(pipeline))
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/responses/{response_id}", stored.handle, methods=["GET", "DELETE"]),
        Route("/v1/responses/{response_id}/input_items", stored.input_items, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", ModelEndpoint(pipeline), methods=["GET"]),
        Route("/v1beta/models", models, methods=["GET"]),
        Route("/v1beta/models/{model_id:path}", ModelEndpoint(pipeline), methods=["GET"]),
        Route("/v1beta/models/{target:path}", gemini, methods=["POST"]),
        Route("/v1/models/{target:path}", gemini, methods=["POST"]),
        Route("/llm/call/{llm_slug}/{path:path}", native, methods=methods),
        Route(
            "/plugins/{slug}/{path:path}",
            PluginEndpoint(edge.store, edge.settings.max_body_bytes, edge.settings.edge_id),
            methods=methods,
        ),
        *azure_routes(
            pipeline,
            counted,
            {
                "chat": chat,
                "completions": completions,
                "embeddings": embeddings,
                "responses": responses,
                "models": models,
            },
            stored,
        ),
        Route("/health", Health(), methods=["GET"]),
        Route("/ready", _SyncAwareReady(edge), methods=["GET"]),
        Route("/metrics", _metrics_endpoint(edge), methods=["GET"]),
    ]


def _metrics_endpoint(edge: Edge) -> Any:
    token = edge.settings.metrics_token
    endpoint = _metrics_exposition(edge)
    return BearerGuard(endpoint, token) if token else endpoint


def _metrics_exposition(edge: Edge) -> Any:
    """This process's metrics, or, in a worker, the edge's: every worker's summed (`worker_metrics.py`)."""
    if not edge.settings.worker:
        return MetricsEndpoint(edge.metrics)
    from .worker_metrics import WorkerMetrics
    from .workers import metrics_dir

    edge.worker_metrics = WorkerMetrics(
        edge.metrics, metrics_dir(edge.settings), edge.settings.worker, edge.settings.workers
    )
    return edge.worker_metrics


def _start_sync_service(edge: Edge) -> Any:
    from .sync import EdgeSyncService  # imported only when NATS is configured

    settings = edge.settings
    service = EdgeSyncService(
        store=edge.store,
        namespace=settings.namespace,
        edge_id=settings.edge_id,
        nats_url=settings.nats_url,
        state_dir=settings.state_dir,
        host=settings.host,
        port=settings.port,
        registry=edge.metrics.registry,
        in_flight=lambda: edge.in_flight[0],
        limiter=edge.runtime.limiter,
        worker=settings.worker,
        workers=settings.workers,
        log_bodies=settings.log_bodies,
    )
    edge.telemetry.add_durable_sink(service.shipper, name="nats")
    edge.hub.uplink = service.events.publish_up
    edge.hub.payload_sink = service.shipper.submit_payload
    service.events.deliver = edge.hub.deliver_from_remote
    return service


async def _housekeeping(edge: Edge) -> None:
    while True:
        await asyncio.sleep(_HOUSEKEEPING_INTERVAL_S)
        try:
            await edge.kv.purge_expired()
            if edge.runtime.responses is not None:
                await edge.runtime.responses.housekeep()
            edge.runtime.limiter.prune()
            prune_idle = getattr(edge.runtime.transport, "prune_idle", None)
            if prune_idle is not None:
                prune_idle()
        except Exception:
            log.exception("housekeeping failed")


def create_app(settings: EdgeSettings, *, transport: UpstreamTransport | None = None) -> Any:
    """The edge's ASGI app: a Starlette app (`.state.edge`, `.router`) behind the hot-route front, and that behind
    the CORS front when `EDGE_CORS_ALLOW_ORIGINS` is set."""
    edge = build_edge(settings, transport)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        thresholds = gc.get_threshold()
        await edge.kv.open()
        if edge.runtime.responses is not None:
            await edge.runtime.responses.open()
        await edge.telemetry.start()
        sync: Any = None
        try:
            if settings.snapshot_file:
                await edge.store.apply_file(settings.snapshot_file)
            else:
                try:
                    await edge.store.load_persisted()
                except ConfigRejected as exc:
                    log.error("the persisted snapshot is unusable (%s); waiting for the control plane", exc)
            if settings.nats_url:
                sync = _start_sync_service(edge)
                await sync.start()
                edge.sync = sync
            housekeeping = asyncio.create_task(_housekeeping(edge), name="edge-housekeeping")
            dump = edge.worker_metrics and asyncio.create_task(edge.worker_metrics.run(), name="worker-metrics")
            # What start-up made (modules, plugins, the compiled config) lives as long as the process: moved out of
            # the collector's generations, full collections no longer walk it (fewer instructions per request).
            gc.freeze()
            gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
            log.info("edge %s ready to serve namespace %r", settings.edge_id, settings.namespace)
            yield
            housekeeping.cancel()
            if dump:
                dump.cancel()
        finally:
            gc.set_threshold(*thresholds)  # the process's own again (an edge run inside another program, tests)
            if sync is not None:
                await sync.stop()
            await edge.telemetry.stop()
            await edge.store.aclose()
            await edge.runtime.transport.aclose()
            await edge.kv.close()
            if edge.runtime.responses is not None:
                await edge.runtime.responses.close()
            if edge.runtime.tracing is not None:
                await asyncio.to_thread(edge.runtime.tracing.shutdown)  # exports what is queued

    routes = _routes(edge)
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _not_found, Exception: _not_found}
    )
    app.state.edge = edge
    front = _HotRoutes(app, edge.pipeline, edge.in_flight)
    if settings.cors_allow_origins:  # off: not built, nothing on the request path (`cors.py`)
        return Cors(front, settings.cors_allow_origins)
    return front
