"""OpenTelemetry traces of the edge (`EDGE_OTEL_ENDPOINT`): what an operator follows one request through.

Imported only when `EDGE_OTEL_ENDPOINT` is set (`app.build_edge`): an edge without it never imports the SDK and
builds no span objects; every call site holds `EdgeRuntime.tracing`, None then, and tests it first.

Spans (GenAI semantic conventions where they apply; never prompt or response content, never keys):

    {operation} {model}             SERVER, one per request; honours an incoming W3C `traceparent`
      plugins {phase}               one per plugin phase that has hooks (pre_auth, auth, post_auth,
                                    response_headers, response_body, stream_complete); per-chunk hooks are not
                                    spanned (one span per event would cost more than the event)
      {operation} {model}           CLIENT, one per upstream attempt: retries and fallbacks each get their own,
                                    with `error.type` when it failed; a stream's ends at its first chunk
      telemetry hand-off            accounting's records queued, and the wait until the spool has them

Sampling is parent-based: a caller's sampled `traceparent` is followed, else a ratio of new traces
(`EDGE_OTEL_SAMPLE_RATIO`, default 0.01). An unsampled request gets a non-recording span that is never made
current, so the phases below find no recording parent and build nothing (one `get_current_span()` each).
Spans leave in batches from the SDK's exporter thread over OTLP/HTTP (protobuf).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared_sdk import Context
from shared_sdk.host import PluginHandle
from shared_sdk.messages import (
    AuthRequest,
    EnrichedRequest,
    ResponseWriteRequest,
    StreamCompleteRequest,
    StreamCompleteResponse,
)
from shared_sdk.pipeline import AuthResult, HookChain, HookTiming, RequestPhaseResult

from .providers.base import UpstreamSpec

__all__ = [
    "AttemptSpan",
    "EdgeTracing",
    "RequestSpan",
    "TracedHookChain",
    "gen_ai_operation",
    "gen_ai_system",
    "traces_url",
]

_OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "gemini": "generate_content",
    "gemini_stream": "generate_content",
    "gemini_embed": "embeddings",
    "gemini_batch_embed": "embeddings",
}
_SYSTEMS = {
    "azure": "az.ai.openai",
    "bedrock": "aws.bedrock",
    "google": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
}
_T = TypeVar("_T")
_SAMPLED: ContextVar[bool] = ContextVar("fjordgate_edge_sampled", default=False)
"""True inside a sampled request: what the phases test before building a span (a tenth of the cost of asking
OpenTelemetry's context for the current span, on every unsampled request)."""
_PROPAGATOR = TraceContextTextMapPropagator()
_ROOT = otel_context.Context()
"""The parent of a new trace: none, whatever happens to be current."""


def gen_ai_operation(kind: str) -> str:
    """`gen_ai.operation.name` of an edge request kind (the kind itself where GenAI has no name for it)."""
    return _OPERATIONS.get(kind, kind)


def gen_ai_system(vendor: str) -> str:
    """`gen_ai.system` (and `gen_ai.provider.name`) of a vendor: the semantic conventions' names where they differ."""
    return _SYSTEMS.get(vendor, vendor)


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of `EDGE_OTEL_ENDPOINT`: a collector's base URL gets `/v1/traces`, as the
    SDK's own `OTEL_EXPORTER_OTLP_ENDPOINT` does; a URL already ending in it is used as is."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class EdgeTracing:
    """One edge process's tracer provider (sampler, resource, batch exporter) and the span helpers the pipeline
    calls. Not the global provider: several edges in one process (the tests) each keep their own."""

    def __init__(
        self,
        *,
        endpoint: str,
        sample_ratio: float,
        edge_id: str,
        namespace: str,
        worker: str = "",
        exporter: SpanExporter | None = None,
    ) -> None:
        attributes: dict[str, Any] = {
            "service.name": "fjordgate-edge",
            "service.namespace": namespace or "default",
            "service.instance.id": f"{edge_id}/{worker}" if worker else edge_id,
            "fjordgate.edge.id": edge_id,
            "fjordgate.namespace": namespace,
        }
        if worker:
            attributes["fjordgate.edge.worker"] = worker
        self.ratio = TraceIdRatioBased(sample_ratio)
        self.ids = _DrawnIds()
        self.provider = TracerProvider(
            sampler=ParentBased(self.ratio),
            resource=Resource.create(attributes),
            id_generator=self.ids,
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=traces_url(endpoint)))
        )
        self.tracer = self.provider.get_tracer("fjordgate.edge")

    def chain(self, handles: Sequence[PluginHandle], observer: Callable[[HookTiming], None] | None) -> HookChain:
        """A plugin chain whose phases are spanned (`plugin_loading` builds every chain with this)."""
        return TracedHookChain(handles, observer=observer, tracer=self.tracer)

    def shutdown(self) -> None:
        """Export what is queued and stop the exporter thread (the edge's shutdown)."""
        self.provider.shutdown()

    # -- the request -------------------------------------------------------------------------------------------

    def start_request(self, headers: Mapping[str, str], kind: str) -> RequestSpan | None:
        """The request's server span, made current; None when it is not sampled (nothing made current, so no
        child span is built either)."""
        if "traceparent" in headers:
            parent = _PROPAGATOR.extract(headers)
        else:
            # A new trace: draw its id and apply the ratio sampler's own test here, so the ~99 % of requests it
            # drops cost a random number instead of a non-recording span (the SDK's sampler, handed the same id,
            # then agrees).
            trace_id = self.ids.draw()
            if trace_id & TraceIdRatioBased.TRACE_ID_LIMIT >= self.ratio.bound:
                return None
            parent = _ROOT
        span = self.tracer.start_span(gen_ai_operation(kind), context=parent, kind=SpanKind.SERVER)
        if not span.is_recording():
            return None
        return RequestSpan(span, otel_context.attach(trace.set_span_in_context(span)), _SAMPLED.set(True))

    def end_request(self, started: RequestSpan, ex: Any) -> None:
        """Name and describe the request's span from the finished `Exchange`, then end it."""
        span = started.span
        _SAMPLED.reset(started.sampled)
        otel_context.detach(started.token)
        attributes = _request_attributes(ex)
        span.update_name(
            f"{attributes['gen_ai.operation.name']} {ex.model or attributes.get('gen_ai.request.model', '')}".rstrip()
        )
        span.set_attributes(attributes)
        if ex.status_code >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    # -- upstream attempts ---------------------------------------------------------------------------------------

    def start_attempt(
        self, spec: UpstreamSpec, model: str, kind: str, attempt: int, retry: int, url: str
    ) -> AttemptSpan | None:
        """One upstream attempt's client span (None when the request is not sampled)."""
        if not _SAMPLED.get():
            return None
        operation = gen_ai_operation(kind)
        system = gen_ai_system(spec.vendor)
        span = self.tracer.start_span(
            f"{operation} {model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.system": system,
                "gen_ai.provider.name": system,
                "gen_ai.request.model": model,
                **_server_of(url),
                "fjordgate.llm.slug": spec.slug,
                "fjordgate.attempt": attempt,
                "fjordgate.retry": retry,
            },
        )
        return AttemptSpan(span)

    # -- telemetry hand-off --------------------------------------------------------------------------------------

    def start_handoff(self) -> Span | None:
        """The telemetry hand-off's span (None when the request is not sampled)."""
        if not _SAMPLED.get():
            return None
        return self.tracer.start_span("telemetry hand-off", kind=SpanKind.INTERNAL)


def _request_attributes(ex: Any) -> dict[str, Any]:
    """A finished request's span attributes (GenAI and HTTP conventions, the edge's own under `fjordgate.`)."""
    operation = gen_ai_operation(ex.kind)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "http.request.method": ex.method,
        "url.path": ex.path,
        "http.response.status_code": ex.status_code,
        "fjordgate.request_id": ex.request_id,
        "fjordgate.request.kind": ex.kind,
    }
    request_model = ex.call.model if ex.call is not None and ex.call.model else ex.model
    if request_model:
        attributes["gen_ai.request.model"] = request_model
    if ex.llm is not None:
        system = gen_ai_system(ex.llm.spec.vendor)
        attributes.update(
            {
                "gen_ai.system": system,
                "gen_ai.provider.name": system,
                "gen_ai.response.model": ex.model,
                "fjordgate.llm.slug": ex.llm.slug,
            }
        )
    if ex.app is not None:
        attributes.update({"fjordgate.app.id": ex.app.id, "fjordgate.app.name": ex.app.config.name})
    if ex.user_id is not None:
        attributes["fjordgate.user.id"] = ex.user_id
    usage = ex.usage
    if usage.prompt_tokens or usage.completion_tokens:
        attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
    for flag in ("streamed", "short_circuited", "client_disconnected"):
        if getattr(ex, flag):
            attributes["fjordgate." + flag] = True
    if ex.status_code >= 400:
        attributes["error.type"] = ex.error_type or str(ex.status_code)
    return attributes


@dataclass(slots=True)
class RequestSpan:
    """A sampled request's span and what `end_request` undoes (the context made current, the sampled flag)."""

    span: Span
    token: Token[otel_context.Context]
    sampled: Token[bool]


class _DrawnIds(RandomIdGenerator):
    """Random ids, except that the next trace id is the one `draw` returned (the edge samples new traces on it
    before asking the SDK for a span; one event loop per edge process, so nothing draws in between)."""

    def __init__(self) -> None:
        self.drawn = 0

    def draw(self) -> int:
        self.drawn = super().generate_trace_id()
        return self.drawn

    def generate_trace_id(self) -> int:
        drawn, self.drawn = self.drawn, 0
        return drawn or super().generate_trace_id()


class AttemptSpan:
    """An upstream attempt's span, ended by how the attempt came out."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    async def around(self, call: Awaitable[_T]) -> _T:
        """Await the attempt and end the span by its outcome (a failed attempt's `UpstreamError` carries the
        vendor's status and the error's code)."""
        try:
            result = await call
        except asyncio.CancelledError:
            self.failed(0, "cancelled")
            raise
        except Exception as exc:
            self.failed(getattr(exc, "upstream_status", 0), getattr(exc, "code", None) or type(exc).__qualname__)
            raise
        self.succeeded(getattr(result, "status_code", 0))
        return result

    def succeeded(self, status: int) -> None:
        self.span.set_attribute("http.response.status_code", status)
        self.span.end()

    def failed(self, status: int, error_type: str) -> None:
        """`status`: the vendor's (0 when it never answered: timeout, connection refused, cancelled)."""
        if status:
            self.span.set_attribute("http.response.status_code", status)
        self.span.set_attribute("error.type", error_type)
        self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()


def _server_of(url: str) -> dict[str, Any]:
    """`server.address` and `server.port` of a vendor URL (never its path or query, which may carry a key)."""
    parts = urlsplit(url)
    server: dict[str, Any] = {"server.address": parts.hostname or ""}
    if parts.port is not None:
        server["server.port"] = parts.port
    return server


class TracedHookChain(HookChain):
    """A `HookChain` that puts one span around each plugin phase of a sampled request (the hook rules are the
    base class's, untouched). Chains are built with it only when tracing is on (`EdgeTracing.chain`)."""

    def __init__(
        self,
        handles: Sequence[PluginHandle],
        *,
        observer: Callable[[HookTiming], None] | None = None,
        tracer: trace.Tracer,
    ) -> None:
        super().__init__(handles, observer=observer)
        self.tracer = tracer

    def _phase_span(self, method: str, phase: str) -> Span | None:
        if not _SAMPLED.get():
            return None
        hooks = self.hooks(method)
        if not hooks:
            return None
        return self.tracer.start_span(
            f"plugins {phase}",
            attributes={"fjordgate.plugin.phase": phase, "fjordgate.plugins": [h.slug for h in hooks]},
        )

    async def run_request_phase(self, phase: str, ctx: Context, req: EnrichedRequest) -> RequestPhaseResult:
        span = self._phase_span("handle_" + phase, phase)
        if span is None:
            return await super().run_request_phase(phase, ctx, req)
        try:
            result = await super().run_request_phase(phase, ctx, req)
            _outcomes(span, result.timings)
            if result.short_circuited_by is not None:
                span.set_attribute("fjordgate.plugin.short_circuited_by", result.short_circuited_by)
            return result
        finally:
            span.end()

    async def run_auth(self, ctx: Context, req: AuthRequest) -> AuthResult:
        span = self._phase_span("handle_auth", "auth")
        if span is None:
            return await super().run_auth(ctx, req)
        try:
            result = await super().run_auth(ctx, req)
            span.set_attribute("fjordgate.plugin.auth_handled", result.handled)
            if result.plugin:
                span.set_attribute("fjordgate.plugin.auth_plugin", result.plugin)
            return result
        finally:
            span.end()

    async def run_response_headers(
        self,
        ctx: Context,
        executed: Sequence[PluginHandle],
        resp: ResponseWriteRequest,
        timings: list[HookTiming] | None = None,
    ) -> ResponseWriteRequest:
        span = self._phase_span("on_before_write_headers", "response_headers")
        if span is None:
            return await super().run_response_headers(ctx, executed, resp, timings)
        mine: list[HookTiming] = []
        try:
            return await super().run_response_headers(ctx, executed, resp, mine)
        finally:
            _end_phase(span, mine, timings)

    async def run_response_body(
        self,
        ctx: Context,
        executed: Sequence[PluginHandle],
        resp: ResponseWriteRequest,
        timings: list[HookTiming] | None = None,
    ) -> ResponseWriteRequest:
        span = self._phase_span("on_before_write", "response_body")
        if span is None:
            return await super().run_response_body(ctx, executed, resp, timings)
        mine: list[HookTiming] = []
        try:
            return await super().run_response_body(ctx, executed, resp, mine)
        finally:
            _end_phase(span, mine, timings)

    async def run_stream_complete(
        self,
        ctx: Context,
        executed: Sequence[PluginHandle],
        req: StreamCompleteRequest,
        timings: list[HookTiming] | None = None,
    ) -> list[tuple[str, StreamCompleteResponse]]:
        span = self._phase_span("on_stream_complete", "stream_complete")
        if span is None:
            return await super().run_stream_complete(ctx, executed, req, timings)
        mine: list[HookTiming] = []
        try:
            return await super().run_stream_complete(ctx, executed, req, mine)
        finally:
            _end_phase(span, mine, timings)


def _end_phase(span: Span, mine: list[HookTiming], timings: list[HookTiming] | None) -> None:
    """End a response phase's span with its outcomes, and hand the phase's timings on to the caller's list."""
    _outcomes(span, mine)
    span.end()
    if timings is not None:
        timings += mine


def _outcomes(span: Span, timings: list[HookTiming]) -> None:
    """Which plugins ran in the phase and what came of each (`slug=outcome`, chain order as run)."""
    if timings:
        span.set_attribute("fjordgate.plugin.outcomes", [f"{t.slug}={t.outcome}" for t in timings])
