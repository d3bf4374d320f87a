"""The upstream phase: the routed LLM, then the model's other healthy deployments (`deployments.py`), then the
routed LLM's fallbacks in order, each as a whole attempt, until one answers.

Bifrost's semantics: a fallback attempt re-runs the plugin chain, here the fallback LLM's own chain (global
plugins, then its bindings) on the request as the client sent it, and is checked again like a request of its
own (`edge_gateway.attempt`: the app's link to that LLM, its model allow-list, authentication as its chain
does it, its budget). A failed attempt's response hooks see its error and may recover it; when every attempt
failed, the caller gets the primary's error (after the primary's response hooks).

What moves on to the next target: an upstream failure that another vendor could fix (`may_fall_back`: the
retries ran out on a retryable error or a 5xx), and a plugin's short-circuit error whose `allow_fallbacks` is
not False. An explicit `allow_fallbacks: false` (on the error, or in the context) stops at once.
"""

from __future__ import annotations

import logging
import time

from shared_sdk import PluginError
from shared_sdk.attempt import prepare_attempt
from shared_sdk.pipeline import HookChain

from .attempt import Attempt, EdgeSteps
from .config_store import CompiledLLM
from .errors import GatewayError, UpstreamError
from .exchange import Exchange, Rejected
from .intake import Caller, injected_headers
from .providers import Provider
from .providers.base import MISSHAPEN, client_headers
from .providers.gemini import GEMINI_KINDS
from .providers.gemini_inbound import GeminiInbound
from .respond_full import (
    Executed,
    Outlet,
    Written,
    as_plugin_error,
    respond_error,
    respond_full,
    send_full,
    write_hooks,
)
from .respond_stream import respond_stream
from .runtime import EdgeRuntime
from .short_circuits import answer_short_circuit
from .upstream import UpstreamRequest
from .upstream_call import Attempted, FullResult, StreamResult, call_with_retries, fallback_targets, may_fall_back

__all__ = ["UpstreamPhase", "fallbacks_allowed"]

log = logging.getLogger("fjordgate.edge.pipeline")


class Untranslatable(Exception):
    """A provider's `build` refused the request (a `GatewayError`, e.g. 400 with its `param`): raised before any
    upstream call, so it is the client's error, not the edge's 500 nor an upstream failure to retry."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


def fallbacks_allowed(out: Outlet, attempt: Attempt) -> bool:
    """Whether this request may try the routed LLM's fallbacks at all (not native, not forbidden, any left)."""
    ex = out.ex
    if ex.kind == "native" or ex.ctx.metadata.get("allow_fallbacks") is False:
        return False
    return bool(attempt.llm.config.fallbacks)


class UpstreamPhase:
    """One request's upstream phase (see the module docstring)."""

    __slots__ = (
        "rt",
        "out",
        "caller",
        "attempted",
        "fallbacks",
        "primary",
        "previous",
        "answered",
        "group",
        "tried",
    )

    def __init__(self, rt: EdgeRuntime, out: Outlet, caller: Caller, first: Attempt) -> None:
        self.rt = rt
        self.out = out
        self.caller = caller
        self.attempted = Attempted(first.llm, first.model)
        self.fallbacks: list[tuple[CompiledLLM, str]] = []
        if fallbacks_allowed(out, first):
            self.fallbacks = fallback_targets(out.ex.cfg, first.llm, first.model)
        self.primary: tuple[Attempt, Written] | None = None
        self.previous = first.llm
        self.answered = False
        self.group = out.ex.group if _siblings_allowed(out) else None
        """The routed model's other deployments, tried (healthy ones) before the fallbacks."""
        self.tried: list[int] = [first.llm.id]

    async def run(self, attempt: Attempt | None) -> None:
        """Call `attempt` (with its retries), then the model's other healthy deployments, then the fallbacks,
        until one answers or none is left."""
        ex = self.out.ex
        while attempt is not None:
            try:
                await self._answer(attempt)
            except Untranslatable as refused:
                if await self._untranslatable(attempt, refused.error):
                    return
                attempt = await self._next_fallback()
                continue
            except UpstreamError as err:
                ex.upstream_s = self.attempted.upstream_s
                movable = may_fall_back(err)
                if await self._settle_failure(attempt, err, movable):
                    return
                attempt = await self._next_deployment() if movable else None
                if attempt is None:
                    attempt = await self._next_fallback()
                continue
            return
        if not self.answered:
            await self._send_primary_error()

    async def _answer(self, attempt: Attempt) -> None:
        """The attempt's upstream call and its response; raises `UpstreamError` when the call failed. The LLM's
        in-flight count (the balancer's tie-break) covers the call and the whole response, streams included."""
        ex = self.out.ex
        health = attempt.llm.health
        health.inflight += 1
        try:
            outcome = await self._call(attempt)
            ex.upstream_s = self.attempted.upstream_s
            ex.error_type = ""
            if isinstance(outcome, FullResult):
                ex.usage = outcome.usage
                content_type = outcome.headers.get("content-type")
                headers = {"content-type": content_type} if content_type else {}
                await respond_full(
                    self.out, attempt.hooks, attempt.executed, outcome.status_code, headers, outcome.body, None
                )
            else:
                await respond_stream(self.out, attempt.hooks, attempt.executed, outcome)
        finally:
            health.inflight -= 1

    async def run_after_refusal(self, refused: Attempt, error: PluginError) -> None:
        """The routed LLM's chain short-circuited with an error another LLM may fix: try the fallbacks."""
        if await self._settle_failure(refused, error, error.allow_fallbacks is not False):
            return
        await self.run(await self._next_fallback())

    async def _call(self, attempt: Attempt) -> FullResult | StreamResult:
        rt = self.rt
        provider = _responses_adapter(self.out, attempt)
        try:
            request = upstream_request(self.out, self.caller, attempt, provider)
        except GatewayError as err:  # the provider's translation refused the request: the client's error
            raise Untranslatable(err) from None
        return await call_with_retries(
            transport=rt.transport,
            target=attempt.llm,
            model=attempt.model,
            request=request,
            call=attempt.call,
            native=self.out.ex.kind == "native",
            backoff=rt.backoff,
            attempted=self.attempted,
            on_retry=lambda target: rt.metrics.retries.labels(target.slug).inc(),
            provider=provider,
            move_on=self._sibling_ready if self.group is not None else None,
            tracing=rt.tracing,
            kind=self.out.ex.kind,
        )

    async def _untranslatable(self, attempt: Attempt, error: GatewayError) -> bool:
        """The attempt's provider cannot express the request (embeddings on Anthropic, `n=2`, an unknown content
        part): the client's 400 when it is the routed LLM, answered at once; a fallback or another deployment
        that cannot take it is skipped like one refused by its checks (True: the request was answered)."""
        log.info("request %s: LLM %s cannot take the request: %s", self.out.ex.request_id, attempt.llm.slug, error)
        if self.primary is None:
            await respond_error(self.out, attempt.hooks, attempt.executed, error)
            return True
        await self._refused(attempt.hooks, attempt.executed, error)
        return self.answered

    async def _settle_failure(self, attempt: Attempt, err: UpstreamError | PluginError, movable: bool) -> bool:
        """An attempt failed: True when that ended the request (answered), False to move to the next target."""
        ex = self.out.ex
        can_fall_back = movable and (bool(self.fallbacks) or self._sibling_ready())
        if self.primary is None and not can_fall_back:
            await respond_error(self.out, attempt.hooks, attempt.executed, err)
            return True
        error = err if isinstance(err, PluginError) else as_plugin_error(err)
        ex.error_type = error.code or error.type
        written = await write_hooks(ex, attempt.hooks, attempt.executed, error.status_code, {}, b"", error)
        if written.recovered:
            ex.error_type = ""
            await send_full(self.out, written)
            return True
        if self.primary is None:
            self.primary = (attempt, written)
        if not can_fall_back:
            self.fallbacks = []
            self.group = None
        return False

    def _sibling_ready(self) -> bool:
        """Whether the routed model has another deployment, not tried yet, whose breaker lets a request in."""
        group, app = self.group, self.out.ex.app
        if group is None:
            return False
        app_ids = app.llm_ids if app is not None else None
        return group.best_priority(app_ids, time.monotonic(), self.tried) is not None

    async def _next_deployment(self) -> Attempt | None:
        """The model's next healthy deployment (balanced as routing does), as a whole attempt like a fallback's:
        its own chain and checks run. None: no healthy one is left (or one answered)."""
        group, ex = self.group, self.out.ex
        app_ids = ex.app.llm_ids if ex.app is not None else None
        while group is not None and not self.answered:
            target = group.pick(app_ids, self.tried, healthy_only=True)
            if target is None:
                return None
            log.info("request %s: deployment %s failed, trying %s", ex.request_id, self.previous.slug, target.slug)
            probe = group.probe
            self.tried.append(target.id)
            self.previous = target
            attempt = await self._prepare_fallback(target, self.caller.call.model)
            if attempt is not None:
                return attempt
            if probe is not None:  # refused before its call: the next request may probe
                probe[0].release(probe[1])
        return None

    async def _next_fallback(self) -> Attempt | None:
        """The next fallback target that is ready for its upstream call (None: none left, or one answered)."""
        while self.fallbacks and not self.answered:
            target, model = self.fallbacks.pop(0)
            if target.id in self.tried:
                continue  # a deployment of the model that failed already in this request
            self.tried.append(target.id)
            self.rt.metrics.fallbacks.labels(self.previous.slug, target.slug).inc()
            self.attempted.fallbacks.append(target.slug)
            self.previous = target
            attempt = await self._prepare_fallback(target, model)
            if attempt is not None:
                return attempt
        return None

    async def _prepare_fallback(self, target: CompiledLLM, model: str) -> Attempt | None:
        """Checks, then the target's own chain (`edge_gateway.attempt`). None skips the target."""
        ex = self.out.ex
        if not _usable(ex, target, model):
            return None
        ex.llm, ex.model, ex.call = target, model, self.caller.call
        ex.ctx.llm = target.message
        ex.ctx.metadata.pop("upstream_model", None)
        hooks = target.chain.hooks
        steps = EdgeSteps(ex, self.rt, self.caller, fallback=True)
        try:
            prepared = await prepare_attempt(hooks, ex.ctx, steps)
        except (Rejected, GatewayError) as refused:
            error = refused.error if isinstance(refused, Rejected) else refused
            log.info("request %s: fallback %s refused: %s", ex.request_id, target.slug, error.message)
            await self._refused(hooks, hooks.handles if hooks is not None else (), error)
            return None
        sc = prepared.short_circuit
        if sc is None:
            return Attempt(target, ex.model, hooks, prepared.executed, prepared.request, steps.call)
        if sc.error is None:
            await answer_short_circuit(
                self.out, hooks, prepared.executed, sc, prepared.short_circuited_by, self.caller.call.stream
            )
            self.answered = True
            return None
        if sc.error.allow_fallbacks is False:
            self.fallbacks = []
        await self._refused(hooks, prepared.executed, sc.error)
        return None

    async def _refused(self, hooks: HookChain | None, executed: Executed, error: GatewayError | PluginError) -> None:
        """A fallback refused before its upstream call: its response hooks see the error (they may recover it)."""
        plugin_error = error if isinstance(error, PluginError) else as_plugin_error(error)
        written = await write_hooks(self.out.ex, hooks, executed, plugin_error.status_code, {}, b"", plugin_error)
        if written.recovered:
            self.out.ex.error_type = ""
            await send_full(self.out, written)
            self.answered = True

    async def _send_primary_error(self) -> None:
        assert self.primary is not None
        failed, written = self.primary
        ex = self.out.ex
        ex.llm, ex.model = failed.llm, failed.model
        ex.ctx.llm = failed.llm.message
        if written.error is not None:
            ex.error_type = written.error.code or written.error.type
        await send_full(self.out, written)


def _responses_adapter(out: Outlet, attempt: Attempt) -> Provider | None:
    """For a Responses request, the attempt's LLM's provider wrapped by the request's session; for a Gemini-format
    request, wrapped by `GeminiInbound`; else None."""
    session = out.ex.responses
    provider = attempt.llm.provider
    if provider is not None and out.ex.kind in GEMINI_KINDS:
        return GeminiInbound(provider)
    if session is None or provider is None:
        return None
    return session.adapter(provider, attempt.llm.spec)


def _siblings_allowed(out: Outlet) -> bool:
    """Whether a failed deployment may hand the request to another deployment of its model: not for native
    pass-through (it names one LLM) nor when a plugin set `allow_fallbacks: false` (no other upstream)."""
    ex = out.ex
    group = ex.group
    if group is None or len(group.members) < 2 or ex.kind == "native":
        return False
    return ex.ctx.metadata.get("allow_fallbacks") is not False


def upstream_request(
    out: Outlet, caller: Caller, attempt: Attempt, provider: Provider | None = None
) -> UpstreamRequest:
    """The vendor request of an attempt: translated, or native pass-through; headers hooks added go along."""
    provider = provider or attempt.llm.provider
    assert provider is not None
    scope = caller.scope
    if out.ex.kind == "native":
        request = provider.native_request(
            attempt.llm.spec,
            out.ex.method,
            caller.native_path,
            scope.get("query_string", b"").decode("latin-1"),
            caller.headers,
            attempt.call.raw,
            attempt.call.stream,
        )
    else:
        try:
            request = provider.build(attempt.llm.spec, attempt.call, attempt.model)
        except MISSHAPEN as exc:  # was a 500; fields a translator checks raise a GatewayError naming the field
            raise _misshapen(exc) from None
        forwarded = client_headers(attempt.llm.spec, caller.headers)
        if forwarded:
            request.headers.update(forwarded)
    if attempt.req is not None:
        injected = injected_headers(caller.headers, attempt.req)
        if injected:
            request.headers.update(injected)
    return request


def _misshapen(exc: BaseException) -> GatewayError:
    return GatewayError.bad_request(
        f"the request does not have the shape its API defines ({type(exc).__name__}: {exc})", code="invalid_request"
    )


def _usable(ex: Exchange, target: CompiledLLM, model: str) -> bool:
    """Whether a fallback target can be tried here and by this app and user (why not is logged)."""
    app = ex.app
    assert app is not None
    if target.unavailable or target.provider is None or target.chain.broken:
        log.info("request %s: fallback %s skipped (unavailable here)", ex.request_id, target.slug)
        return False
    if target.id not in app.llm_ids or not target.allows(model) or not ex.cfg.user_may_use(target, app, ex.user_id):
        log.info(
            "request %s: fallback %s/%s skipped (not allowed for app %s)", ex.request_id, target.slug, model, app.id
        )
        return False
    return True
