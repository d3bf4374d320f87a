"""`PipelineRunner`: run plugins through the real host and `HookChain`, as the edge does, with a fake upstream.

    async with PipelineRunner(MyPlugin(), config={"my-plugin": {...}}) as runner:
        outcome = await runner.run(make_request("hi"), upstream=UpstreamResponse(body=b"..."))
        assert outcome.status_code == 200

The order is the edge's: pre-auth -> auth (plugins) -> post-auth -> upstream (unless short-circuited) ->
response headers -> body, or per chunk + stream-complete -> analytics to data collectors. Nothing here
re-implements a hook rule; it only feeds `shared_sdk.pipeline`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..attempt import AttemptRefused, prepare_attempt
from ..context import Context, Services
from ..host import PluginHandle, PluginHost, PluginSpec
from ..messages import (
    AnalyticsRecord,
    AuthRequest,
    EnrichedRequest,
    PluginError,
    ResponseWriteRequest,
    Runtime,
    ShortCircuit,
    StreamCompleteRequest,
    StreamCompleteResponse,
    UpstreamResponse,
)
from ..pipeline import AuthResult, ChunkRun, HookChain, HookTiming
from .builders import make_context
from .services import InMemoryEventHub, make_services

__all__ = ["PipelineOutcome", "PipelineRunner", "error_body"]

Upstream = (
    UpstreamResponse
    | list[bytes]
    | PluginError
    | Callable[[EnrichedRequest], Awaitable[UpstreamResponse | list[bytes] | PluginError]]
)


def error_body(error: PluginError) -> bytes:
    """An OpenAI-style JSON error body, as the edge renders a `PluginError`."""
    return msgspec.json.encode({"error": {"message": error.message, "type": error.type, "code": error.code}})


@dataclass
class PipelineOutcome:
    status_code: int
    headers: dict[str, str]
    body: bytes
    error: PluginError | None = None
    chunks: list[bytes] | None = None
    """The chunks the client received, for streamed responses."""
    upstream_request: EnrichedRequest | None = None
    """What the upstream saw; `None` when a plugin short-circuited."""
    short_circuited_by: str | None = None
    executed: list[str] = field(default_factory=list)
    timings: list[HookTiming] = field(default_factory=list)
    contained_errors: list[Any] = field(default_factory=list)
    stream_complete: list[tuple[str, StreamCompleteResponse]] = field(default_factory=list)
    analytics: AnalyticsRecord | None = None

    @property
    def upstream_called(self) -> bool:
        return self.upstream_request is not None

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


def _short_circuit_answer(sc: ShortCircuit) -> UpstreamResponse | list[bytes] | PluginError:
    if sc.error is not None:
        return sc.error
    if sc.stream_chunks is not None:
        return list(sc.stream_chunks)
    return sc.response or UpstreamResponse()


async def _upstream_answer(
    upstream: Upstream | None, req: EnrichedRequest
) -> UpstreamResponse | list[bytes] | PluginError:
    if upstream is None:
        return UpstreamResponse(headers={"content-type": "application/json"}, body=b"{}")
    if callable(upstream):
        return await upstream(req)
    return upstream


def _analytics(
    ctx: Context, req: EnrichedRequest, outcome: PipelineOutcome, started: float, info: Any
) -> AnalyticsRecord:
    """The analytics record the edge would write for this request (what data collectors receive)."""
    return AnalyticsRecord(
        request_id=ctx.request_id,
        app_id=ctx.app_id,
        user_id=ctx.user_id,
        llm_id=ctx.llm_id,
        model=req.model,
        status_code=outcome.status_code,
        latency_ms=(time.perf_counter() - started) * 1000,
        streamed=outcome.chunks is not None,
        request_bytes=len(req.body),
        response_bytes=len(outcome.body),
        error_type=outcome.error.type if outcome.error else "",
        context=info,
    )


class _RunnerSteps:
    """The testing kit's side of `prepare_attempt`: no built-in keys, no budgets (see `shared_sdk.attempt`)."""

    def __init__(self, request: EnrichedRequest, credential: str | None, ctx: Context) -> None:
        self._request = request
        self._credential = credential
        self._ctx = ctx

    def request(self) -> EnrichedRequest:
        return self._request

    def adopt(self, before: EnrichedRequest, after: EnrichedRequest) -> EnrichedRequest:
        return after

    def auth_request(self, req: EnrichedRequest) -> AuthRequest | None:
        if self._credential is None:
            return None
        return AuthRequest(credential=self._credential, request=req, context=self._ctx.info())

    async def accept(self, auth: AuthResult, req: EnrichedRequest | None) -> EnrichedRequest | None:
        if not auth.handled:
            return req
        if auth.error is not None or not auth.authenticated:
            raise AttemptRefused(auth.error or PluginError(status_code=401, message="invalid credential"), auth.plugin)
        ctx = self._ctx
        ctx.app, ctx.user = auth.app, auth.user
        base = req if req is not None else self._request
        return msgspec.structs.replace(
            base,
            authenticated=True,
            app_id=auth.app.id if auth.app else None,
            user_id=auth.user.id if auth.user else None,
            auth_claims=auth.response.claims if auth.response else {},
        )

    def authenticated(self, req: EnrichedRequest) -> EnrichedRequest:
        return req

    async def admit(self) -> None:
        return None


class PipelineRunner:
    """Loads plugins (instances or `PluginSpec`s, in this order = chain order) into a real `PluginHost`."""

    def __init__(
        self,
        *plugins: Any,
        runtime: Runtime | str = Runtime.GATEWAY,
        config: dict[str, dict[str, Any]] | None = None,
        failure_policy: dict[str, str] | str | None = None,
        timeout_s: float = 5.0,
        services_factory: Callable[[str], Services] | None = None,
    ) -> None:
        """`config` and a dict `failure_policy` are keyed by plugin slug (its `name`); a string policy applies to
        every plugin. A key that names no plugin given here is a `ValueError` at `start`: the plugin would
        otherwise run with its schema defaults and the test pass or fail for the wrong reason."""
        self.runtime = Runtime(runtime)
        self.hub = InMemoryEventHub()
        self.services: dict[str, Services] = {}
        self._factory = services_factory
        self._items = plugins
        self._config = config or {}
        self._policy: dict[str, str] | str = failure_policy or {}
        self._timeout_s = timeout_s
        self.host = PluginHost(self.runtime, self._services_for)
        self.handles: list[PluginHandle] = []
        self.chain: HookChain | None = None

    def _services_for(self, slug: str) -> Services:
        if slug not in self.services:
            self.services[slug] = (
                self._factory(slug) if self._factory else make_services(self.runtime, slug, hub=self.hub)
            )
        return self.services[slug]

    def _check_keys(self) -> None:
        slugs = [
            item.slug if isinstance(item, PluginSpec) else getattr(item, "name", "") or type(item).__name__
            for item in self._items
        ]
        specs = {item.slug for item in self._items if isinstance(item, PluginSpec)}
        if isinstance(self._policy, str) and self._policy not in ("open", "closed"):
            raise ValueError(f"failure_policy {self._policy!r}: give 'open', 'closed' or a dict of them by slug")
        for what, keyed in (("config", self._config), ("failure_policy", self._policy)):
            if not isinstance(keyed, dict):
                continue
            for key in keyed:
                if key in specs:
                    raise ValueError(f"{what}[{key!r}]: plugin {key!r} is a PluginSpec; set its {what} there")
                if key not in slugs:
                    hint = f" (write {what}={{{slugs[0]!r}: ...}})" if slugs else ""
                    raise ValueError(f"{what} is keyed by plugin slug, and {key!r} is none of {slugs}{hint}")

    async def start(self) -> PipelineRunner:
        self._check_keys()
        policy = self._policy
        for item in self._items:
            if isinstance(item, PluginSpec):
                self.handles.append(await self.host.load(item))
                continue
            slug = getattr(item, "name", "") or type(item).__name__
            spec = PluginSpec(
                slug=slug,
                import_path=f"{type(item).__module__}:{type(item).__qualname__}",
                config=self._config.get(slug, {}),
                failure_policy=policy if isinstance(policy, str) else policy.get(slug, "open"),  # type: ignore[arg-type]
                timeout_s=self._timeout_s,
            )
            self.handles.append(await self.host.load_instance(item, spec))
        self.chain = HookChain(self.handles)
        return self

    async def aclose(self) -> None:
        await self.host.aclose()

    async def __aenter__(self) -> PipelineRunner:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def context(self, **fields: Any) -> Context:
        """A request context for this runner's runtime (services are bound per plugin by the host)."""
        return make_context(self.runtime, services=make_services(self.runtime, "pipeline", hub=self.hub), **fields)

    async def run(
        self,
        request: EnrichedRequest,
        *,
        upstream: Upstream | None = None,
        ctx: Context | None = None,
        credential: str | None = None,
    ) -> PipelineOutcome:
        """One request through the chain. `upstream` is a response, a list of stream chunks, an error, or an
        async function of the final request returning one of those (default: an empty 200 JSON response)."""
        chain = self.chain
        if chain is None:
            raise RuntimeError("PipelineRunner not started: use `async with PipelineRunner(...)` or `await start()`")
        ctx = ctx or self.context(request_id=request.request_id)
        started = time.perf_counter()
        timings: list[HookTiming] = []
        contained: list[Any] = []

        prepared = await prepare_attempt(chain, ctx, _RunnerSteps(request, credential, ctx))
        timings += prepared.timings
        contained += prepared.errors
        req = prepared.request if prepared.request is not None else request
        sc, by, executed = prepared.short_circuit, prepared.short_circuited_by, prepared.executed

        outcome_request: EnrichedRequest | None = None
        result: UpstreamResponse | list[bytes] | PluginError
        if sc is not None:
            result = _short_circuit_answer(sc)
        else:
            outcome_request = req
            result = await _upstream_answer(upstream, req)

        info = ctx.info()
        if isinstance(result, list):
            outcome = await self._stream(chain, ctx, executed, result, req, timings, info)
        else:
            outcome = await self._complete(chain, ctx, executed, result, timings, info)
        outcome.upstream_request = outcome_request
        outcome.short_circuited_by = by
        outcome.executed = [h.slug for h in executed]
        outcome.timings = timings
        outcome.contained_errors = contained

        record = _analytics(ctx, req, outcome, started, info)
        outcome.analytics = record
        await chain.run_data_collection("handle_analytics", ctx, record)
        return outcome

    async def _complete(
        self,
        chain: HookChain,
        ctx: Context,
        executed: Sequence[PluginHandle],
        result: UpstreamResponse | PluginError,
        timings: list[HookTiming],
        info: Any,
    ) -> PipelineOutcome:
        if isinstance(result, PluginError):
            rw = ResponseWriteRequest(
                request_id=ctx.request_id,
                status_code=result.status_code,
                headers={"content-type": "application/json", **result.headers},
                error=result,
                context=info,
            )
        else:
            rw = ResponseWriteRequest(
                request_id=ctx.request_id,
                status_code=result.status_code,
                headers=dict(result.headers),
                body=result.body,
                context=info,
            )
        rw = await chain.run_response_headers(ctx, executed, rw, timings)
        rw = await chain.run_response_body(ctx, executed, rw, timings)
        body = error_body(rw.error) if rw.error is not None else rw.body
        return PipelineOutcome(status_code=rw.status_code, headers=rw.headers, body=body, error=rw.error)

    @staticmethod
    async def _chunks(
        run: ChunkRun,
        ctx: Context,
        head: ResponseWriteRequest,
        chunks: list[bytes],
        sent: list[bytes],
        info: Any,
    ) -> None:
        """Each chunk through the chunk hooks; what they pass is appended to `sent`."""
        for i, data in enumerate(chunks):
            chunk = ResponseWriteRequest(
                request_id=ctx.request_id,
                status_code=head.status_code,
                headers=head.headers,
                body=data,
                is_stream_chunk=True,
                chunk_index=i,
                is_final_chunk=i == len(chunks) - 1,
                context=info,
            )
            out = await run.run(chunk)
            if out is not None:
                sent.append(out.body)

    async def _stream(
        self,
        chain: HookChain,
        ctx: Context,
        executed: Sequence[PluginHandle],
        chunks: list[bytes],
        req: EnrichedRequest,
        timings: list[HookTiming],
        info: Any,
    ) -> PipelineOutcome:
        head = ResponseWriteRequest(
            request_id=ctx.request_id, status_code=200, headers={"content-type": "text/event-stream"}, context=info
        )
        head = await chain.run_response_headers(ctx, executed, head, timings)
        if head.error is not None:
            return PipelineOutcome(
                status_code=head.status_code, headers=head.headers, body=error_body(head.error), error=head.error
            )
        sent: list[bytes] = []
        run = chain.chunk_run(ctx, executed)  # the edge's way: one runner per stream, its timings summed per plugin
        run.timings = timings
        try:
            await self._chunks(run, ctx, head, chunks, sent, info)
        finally:
            run.finish()
        complete = await chain.run_stream_complete(
            ctx,
            executed,
            StreamCompleteRequest(
                request_id=ctx.request_id,
                accumulated_response=b"".join(sent),
                headers=head.headers,
                status_code=head.status_code,
                chunk_count=len(sent),
                request_body=req.body,
                context=info,
            ),
            timings,
        )
        return PipelineOutcome(
            status_code=head.status_code,
            headers=head.headers,
            body=b"".join(sent),
            chunks=sent,
            stream_complete=complete,
        )
