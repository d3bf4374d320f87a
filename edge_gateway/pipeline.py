"""The edge's request pipeline: the HTTP, policy, upstream and accounting phases around the SDK's hook chain.

    read body (413) -> decode (400) -> route (model -> LLM, before auth so the LLM's chain can run)
    -> pre_auth hooks -> auth (auth plugins, else the app credential; 401) -> client IP and app-LLM link (403)
    -> post_auth hooks -> policy (429 rate limits, 402 budget) -> upstream (retries, fallbacks; 502/504)
    -> response hooks (reverse, only plugins whose request phase ran; per chunk for streams)
    -> accounting (analytics, budget usage, proxy log; also for clients that went away)

Hook semantics (order, short-circuits, failure policy, timeouts, timing) are `shared_sdk.pipeline.HookChain`'s
and are not re-implemented here: this module decides *when* each phase runs and what it is fed. The chain is
the namespace's global plugins followed by the routed LLM's chain. A short-circuit is a returned value:
a full response (e.g. a cache hit, no upstream call), a stream (replayed as SSE), or an error; response hooks
then run for the plugins up to and including the one that short-circuited.

Errors the gateway raises itself (`GatewayError`) are never retried and never fall back; errors after
authentication pass through the response hooks (which may recover them) and are accounted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from shared_sdk import (
    AuthRequest,
    Context,
    EnrichedRequest,
    PluginCallError,
    PluginError,
    ResponseWriteRequest,
    Runtime,
    StreamCompleteRequest,
)
from shared_sdk.pipeline import HookChain
from shared_sdk.snapshot import CredentialConfig

from .accounting import TelemetryQueue
from .auth import authenticate_key, credential_from_headers, find_credential
from .budgets import BudgetTracker
from .config_store import CompiledApp, CompiledConfig, CompiledLLM, ConfigStore
from .disconnects import DisconnectWatch, DisconnectWatches
from .errors import GatewayError, UpstreamError, error_body
from .exchange import Exchange
from .ids import new_id
from .metrics import EdgeMetrics
from .policy import admit, release_budget, reserve_budget
from .providers import OpenAIRequest, Usage
from .ratelimit import RateLimiter
from .resilience import (
    Attempted,
    Backoff,
    FullResult,
    StreamResult,
    call_with_retries,
    fallback_targets,
    may_fall_back,
)
from .settings import EdgeSettings
from .upstream import UpstreamRequest, UpstreamTransport

__all__ = ["EdgeRuntime", "Pipeline"]

log = logging.getLogger("fjordgate.edge.pipeline")

_REDACTED_HEADERS = frozenset({"authorization", "x-api-key"})
_NOT_FORWARDED = frozenset(
    {
        "authorization",
        "x-api-key",
        "host",
        "content-length",
        "content-type",
        "connection",
        "transfer-encoding",
        "accept-encoding",
        "keep-alive",
        "te",
        "upgrade",
        "cookie",
    }
)
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
_DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class EdgeRuntime:
    """What outlives configs: settings, config store, upstream transport, limits, budgets, telemetry, metrics."""

    settings: EdgeSettings
    store: ConfigStore
    transport: UpstreamTransport
    limiter: RateLimiter
    telemetry: TelemetryQueue
    metrics: EdgeMetrics
    backoff: Backoff

    @property
    def budgets(self) -> BudgetTracker:
        return self.store.budgets


class _Reject(Exception):
    """A request refused before it was accepted (no app yet): answered, never accounted."""

    def __init__(self, error: GatewayError | PluginError, reason: str) -> None:
        self.error = error
        self.reason = reason


async def read_body(receive: Any, limit: int, declared: str | None) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise GatewayError.body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError.bad_request("client disconnected while sending the body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise GatewayError.body_too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_call(kind: str, body: bytes) -> OpenAIRequest:
    """The client's JSON body as an `OpenAIRequest`; 400 with a message that says what is wrong."""
    if kind == "native":
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            data = {}
        return OpenAIRequest.from_data(kind, body, data if isinstance(data, dict) else {})
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError.bad_request(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise GatewayError.bad_request("request body must be a JSON object", code="invalid_json")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError.bad_request("'model' is required and must be a string", param="model", code="missing_model")
    if kind == "chat":
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise GatewayError.bad_request("'messages' must be a non-empty array", param="messages")
    elif kind == "completions":
        if "prompt" not in data:
            raise GatewayError.bad_request("'prompt' is required", param="prompt")
    elif kind == "embeddings":
        if "input" not in data:
            raise GatewayError.bad_request("'input' is required", param="input")
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise GatewayError.bad_request("'stream' must be a boolean", param="stream")
    return OpenAIRequest.from_data(kind, body, data)


def _as_plugin_error(error: GatewayError | UpstreamError) -> PluginError:
    return PluginError(
        status_code=error.status_code,
        message=error.message,
        type=error.type,
        code=error.code,
        allow_fallbacks=False,
        headers=dict(error.headers),
    )


@dataclass(slots=True)
class _Caller:
    """The credential as presented, kept so that a fallback LLM's chain can authenticate the caller again."""

    credential: str
    auth_type: str
    found: CredentialConfig | None


@dataclass(slots=True)
class _Attempt:
    """One try at answering: the LLM and model, its plugin chain, and what that chain's request phase made."""

    llm: CompiledLLM
    model: str
    hooks: HookChain | None
    executed: tuple
    req: EnrichedRequest | None
    call: OpenAIRequest


@dataclass(slots=True)
class _Written:
    """A full response after the response hooks ran over it (not sent yet)."""

    status: int
    headers: dict[str, str]
    body: bytes
    error: PluginError | None

    @property
    def recovered(self) -> bool:
        return self.error is None and self.status < 400


_ANSWERED = object()
"""Returned by a fallback attempt that answered the client itself (a short-circuit, or a recovered error)."""


class Pipeline:
    def __init__(self, rt: EdgeRuntime) -> None:
        self.rt = rt
        self.watches = DisconnectWatches()

    # -- entry -------------------------------------------------------------------------------------------

    async def serve(
        self, scope: dict[str, Any], receive: Any, send: Any, kind: str, native_slug: str = "", native_path: str = ""
    ) -> None:
        """Serve one LLM request. `kind`: chat | completions | embeddings | models | native."""
        rt = self.rt
        cfg = rt.store.current
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")
        if not request_id or len(request_id) > 128:
            request_id = new_id()
        if cfg is None:
            await self._send_error(
                send,
                request_id,
                GatewayError(
                    503,
                    "this edge has no configuration loaded yet",
                    type="service_unavailable",
                    code="config_not_loaded",
                ),
            )
            return
        ctx = Context(
            runtime=Runtime.GATEWAY,
            request_id=request_id,
            edge_id=rt.settings.edge_id,
            namespace=cfg.snapshot.namespace,
        )
        ex = Exchange(request_id, time.perf_counter(), time.time(), cfg, ctx, kind, scope["method"], scope["path"])
        watch = self.watches.watch(send)
        send = watch.send
        try:
            try:
                await self._run(ex, scope, receive, send, headers, native_slug, native_path, watch)
            except _Reject as rejected:
                rt.metrics.rejected.labels(str(rejected.error.status_code), rejected.reason).inc()
                await self._send_error(send, request_id, rejected.error)
            except Exception:
                log.exception("request %s failed inside the edge", request_id)
                ex.status_code = 500
                ex.error_type = "internal_error"
                await self._send_error(
                    send,
                    request_id,
                    GatewayError(
                        500, "internal error in the edge gateway", type="internal_error", code="internal_error"
                    ),
                )
        except asyncio.CancelledError:
            if not watch.disconnected:
                raise
            # Our own watcher cancelled the request: the client left. Not an error of the edge.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            ex.client_disconnected = True
        finally:
            watch.stop()
            ex.finish(rt)

    async def _run(
        self,
        ex: Exchange,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        headers: dict[str, str],
        native_slug: str,
        native_path: str,
        watch: DisconnectWatch,
    ) -> None:
        rt = self.rt
        cfg = ex.cfg
        ctx = ex.ctx
        kind = ex.kind
        credential, auth_type = credential_from_headers(headers.get("authorization"), headers.get("x-api-key"))
        found = find_credential(cfg, credential)
        try:
            if kind == "models":
                body = b""
                call = OpenAIRequest.from_data("models", b"", {})
            else:
                body = await read_body(receive, rt.settings.max_body_bytes, headers.get("content-length"))
                call = decode_call(kind, body)
        except GatewayError as err:
            global_hooks = cfg.global_chain.hooks
            if found is None and (global_hooks is None or not global_hooks.hooks("handle_auth")):
                # An unknown caller learns nothing about request validation: 401 comes first.
                raise _Reject(
                    GatewayError.unauthenticated("invalid API key" if credential else "no API key provided"),
                    "unauthenticated",
                ) from None
            raise _Reject(err, "bad_request") from None
        watch.start(receive)
        ex.call = call
        ex.request_bytes = len(body)
        client_call = call

        # Route before authentication: the routed LLM's chain runs the auth hooks too.
        llm: CompiledLLM | None = None
        model = ""
        route_error: GatewayError | None = None
        try:
            if kind == "native":
                llm = cfg.llms_by_slug.get(native_slug)
                if llm is None:
                    raise GatewayError.not_found(f"no LLM {native_slug!r} here", code="llm_not_found")
                model = call.model
            elif kind != "models":
                llm, model = cfg.route(call.model, cfg.apps.get(found.app_id) if found is not None else None)
        except GatewayError as err:
            route_error = err
        chain = llm.chain if llm is not None else cfg.global_chain
        if chain.broken:
            raise _Reject(
                GatewayError(
                    503,
                    f"plugin {chain.broken!r} is required but not loaded on this edge",
                    type="service_unavailable",
                    code="plugin_unavailable",
                ),
                "plugin_unavailable",
            )
        hooks: HookChain | None = chain.hooks
        if llm is not None:
            ctx.llm = llm.message
        ex.llm, ex.model = llm, model
        req: EnrichedRequest | None = None
        executed: tuple = hooks.handles if hooks is not None else ()

        # pre_auth
        if hooks is not None and hooks.hooks("handle_pre_auth"):
            req = self._enriched(ex, scope, headers, call)
            result = await hooks.run_request_phase("pre_auth", ctx, req)
            if result.short_circuit is not None:
                await self._short_circuit(ex, send, hooks, result.executed, result.short_circuit)
                return
            req, call = self._adopt(ex, req, result.request, call)

        # auth
        caller = _Caller(credential, auth_type, found)
        app, user_id = await self._authenticate(ex, scope, headers, hooks, caller, req, call)
        client_ip = scope["client"][0] if scope.get("client") else ""
        if not app.ip_allowed(client_ip):
            raise _Reject(
                GatewayError.forbidden(
                    f"client address {client_ip} is not allowed for this app", code="ip_not_allowed"
                ),
                "ip_not_allowed",
            )
        # Accepted from here on: everything below is accounted.
        ex.app, ex.user_id = app, user_id
        ctx.app = app.message
        if user_id is not None:
            ctx.user = cfg.user_messages.get(user_id)
        try:
            if route_error is not None:
                raise route_error
            if llm is not None and llm.id not in app.llm_ids:
                raise GatewayError.forbidden(f"this app may not use the LLM {llm.slug!r}", code="llm_not_allowed")
            if kind == "native" and llm is not None and model and not llm.allows(model):
                raise GatewayError.forbidden(
                    f"the model {model!r} is not allowed on LLM {llm.slug!r}", code="model_not_allowed"
                )
        except GatewayError as err:
            await self._respond_error(ex, send, hooks, executed, err)
            return

        # post_auth
        if hooks is not None and hooks.hooks("handle_post_auth"):
            req = req or self._enriched(ex, scope, headers, call)
            req = msgspec.structs.replace(req, app_id=app.id, user_id=user_id, authenticated=True, context=ctx.info())
            result = await hooks.run_request_phase("post_auth", ctx, req)
            executed = result.executed
            if result.short_circuit is not None:
                await self._short_circuit(ex, send, hooks, executed, result.short_circuit)
                return
            try:
                req, call = self._adopt(ex, req, result.request, call)
            except GatewayError as err:
                await self._respond_error(ex, send, hooks, executed, err)
                return

        if kind == "models":
            body = self._models_body(cfg, ex)
            await self._respond_full(ex, send, hooks, executed, 200, {}, body, None)
            return
        override = ctx.metadata.get("upstream_model")
        if isinstance(override, str) and override:
            ex.model = model = override

        try:
            admit(ex, rt.limiter, rt.budgets)
        except GatewayError as err:
            await self._respond_error(ex, send, hooks, executed, err)
            return
        assert llm is not None
        attempt = _Attempt(llm, model, hooks, executed, req, call)
        await self._upstream(ex, scope, send, headers, native_path, caller, attempt, client_call)

    async def _authenticate(
        self,
        ex: Exchange,
        scope: dict[str, Any],
        headers: dict[str, str],
        hooks: HookChain | None,
        caller: _Caller,
        req: EnrichedRequest | None,
        call: OpenAIRequest,
    ) -> tuple[CompiledApp, int | None]:
        """The caller's app and user: the chain's auth plugins when it has any, else the key hash (`_Reject`)."""
        cfg = ex.cfg
        if hooks is not None and hooks.hooks("handle_auth"):
            auth_req = AuthRequest(
                credential=caller.credential,
                auth_type=caller.auth_type or "bearer",
                request=req or self._enriched(ex, scope, headers, call),
                context=ex.ctx.info(),
            )
            outcome = await hooks.run_auth(ex.ctx, auth_req)
            if outcome.error is not None:
                raise _Reject(outcome.error, "auth_plugin")
            app = cfg.apps.get(outcome.app.id) if outcome.app is not None and outcome.app.id is not None else None
            if app is None:
                raise _Reject(
                    GatewayError.unauthenticated("the credential's app is not active on this edge"), "unknown_app"
                )
            user_id = outcome.user.id if outcome.user is not None else outcome.response.user_id  # type: ignore
            ex.ctx.metadata.setdefault("auth_claims", outcome.response.claims if outcome.response else {})
            return app, user_id
        try:
            return authenticate_key(cfg, caller.credential, caller.found)
        except GatewayError as err:
            raise _Reject(err, "unauthenticated") from None

    # -- upstream, retries and fallbacks -----------------------------------------------------------------

    async def _upstream(
        self,
        ex: Exchange,
        scope: dict[str, Any],
        send: Any,
        headers: dict[str, str],
        native_path: str,
        caller: _Caller,
        attempt: _Attempt,
        client_call: OpenAIRequest,
    ) -> None:
        """Call the routed LLM (with retries), then its fallbacks in order, each as a whole attempt.

        Bifrost's semantics: a fallback attempt re-runs the plugin chain, here the fallback LLM's own chain
        (global plugins, then its bindings) on the request as the client sent it, and is checked again like a
        request of its own (the app's link to that LLM, its model allow-list, authentication as its chain
        does it, its budget). A failed attempt's response hooks see its error and may recover it; when every
        attempt failed, the caller gets the primary's error (after the primary's response hooks).
        """
        rt = self.rt
        native = ex.kind == "native"
        attempted = Attempted(attempt.llm, attempt.model)
        fallbacks: list[tuple[CompiledLLM, str]] = []
        if not native and ex.ctx.metadata.get("allow_fallbacks") is not False:
            fallbacks = fallback_targets(ex.cfg, attempt.llm, attempt.model)
        primary: tuple[_Attempt, _Written] | None = None
        current: _Attempt | None = attempt
        while current is not None:
            try:
                outcome = await call_with_retries(
                    transport=rt.transport,
                    target=current.llm,
                    model=current.model,
                    request=self._upstream_request(ex, scope, headers, native_path, current),
                    call=current.call,
                    native=native,
                    backoff=rt.backoff,
                    attempted=attempted,
                    on_retry=lambda target: rt.metrics.retries.labels(target.slug).inc(),
                )
            except UpstreamError as err:
                ex.upstream_s = attempted.upstream_s
                can_fall_back = bool(fallbacks) and may_fall_back(err)
                if primary is None and not can_fall_back:
                    await self._respond_error(ex, send, current.hooks, current.executed, err)
                    return
                ex.error_type = err.code or err.type
                written = await self._write_hooks(
                    ex, current.hooks, current.executed, err.status_code, {}, b"", _as_plugin_error(err)
                )
                if written.recovered:
                    ex.error_type = ""
                    await self._send_full(ex, send, written)
                    return
                if primary is None:
                    primary = (current, written)
                if not can_fall_back:
                    break
                current = None
                previous = primary[0].llm if primary is not None else attempt.llm
                while fallbacks and current is None:
                    target, target_model = fallbacks.pop(0)
                    rt.metrics.fallbacks.labels(previous.slug, target.slug).inc()
                    attempted.fallbacks.append(target.slug)
                    previous = target
                    prepared = await self._fallback_attempt(
                        ex, scope, send, headers, caller, client_call, target, target_model
                    )
                    if prepared is _ANSWERED:
                        return
                    current = prepared  # type: ignore[assignment]
                continue
            ex.upstream_s = attempted.upstream_s
            ex.error_type = ""
            if isinstance(outcome, FullResult):
                ex.usage = outcome.usage
                await self._respond_full(
                    ex,
                    send,
                    current.hooks,
                    current.executed,
                    outcome.status_code,
                    _content_type(outcome.headers),
                    outcome.body,
                    None,
                )
            else:
                await self._respond_stream(ex, send, current.hooks, current.executed, outcome)
            return
        assert primary is not None
        failed, written = primary
        ex.llm, ex.model = failed.llm, failed.model
        ex.ctx.llm = failed.llm.message
        ex.error_type = (written.error.code or written.error.type) if written.error is not None else ex.error_type
        await self._send_full(ex, send, written)

    async def _fallback_attempt(
        self,
        ex: Exchange,
        scope: dict[str, Any],
        send: Any,
        headers: dict[str, str],
        caller: _Caller,
        client_call: OpenAIRequest,
        target: CompiledLLM,
        model: str,
    ) -> _Attempt | object | None:
        """Prepare a fallback: checks, then the target's own chain. `None` skips the target."""
        app = ex.app
        assert app is not None
        ctx = ex.ctx
        if target.unavailable or target.provider is None or target.chain.broken:
            log.info("request %s: fallback %s skipped (unavailable here)", ex.request_id, target.slug)
            return None
        if target.id not in app.llm_ids or not target.allows(model):
            log.info(
                "request %s: fallback %s/%s skipped (not allowed for app %s)", ex.request_id, target.slug, model, app.id
            )
            return None
        ex.llm, ex.model = target, model
        ex.call = call = client_call
        ctx.llm = target.message
        ctx.metadata.pop("upstream_model", None)
        hooks = target.chain.hooks
        executed: tuple = hooks.handles if hooks is not None else ()
        req: EnrichedRequest | None = None
        try:
            if hooks is not None and hooks.hooks("handle_pre_auth"):
                req = self._enriched(ex, scope, headers, call)
                result = await hooks.run_request_phase("pre_auth", ctx, req)
                if result.short_circuit is not None:
                    return await self._fallback_short_circuit(ex, send, hooks, result.executed, result.short_circuit)
                req, call = self._adopt(ex, req, result.request, call)
            try:
                again, user_id = await self._authenticate(ex, scope, headers, hooks, caller, req, call)
            except _Reject as refused:
                log.info("request %s: fallback %s refused the caller: %s", ex.request_id, target.slug, refused.reason)
                return await self._fallback_failed(ex, send, hooks, executed, refused.error)
            if again.id != app.id or user_id != ex.user_id:
                log.info("request %s: fallback %s authenticates another app or user", ex.request_id, target.slug)
                return await self._fallback_failed(
                    ex, send, hooks, executed, GatewayError.forbidden("the fallback LLM identifies another caller")
                )
            if hooks is not None and hooks.hooks("handle_post_auth"):
                req = req or self._enriched(ex, scope, headers, call)
                req = msgspec.structs.replace(
                    req, app_id=app.id, user_id=ex.user_id, authenticated=True, context=ctx.info()
                )
                result = await hooks.run_request_phase("post_auth", ctx, req)
                executed = result.executed
                if result.short_circuit is not None:
                    return await self._fallback_short_circuit(ex, send, hooks, executed, result.short_circuit)
                req, call = self._adopt(ex, req, result.request, call)
            override = ctx.metadata.get("upstream_model")
            if isinstance(override, str) and override:
                ex.model = model = override
            release_budget(ex, self.rt.budgets)
            reserve_budget(ex, self.rt.budgets)
        except GatewayError as err:
            log.info("request %s: fallback %s refused: %s", ex.request_id, target.slug, err.message)
            return await self._fallback_failed(ex, send, hooks, executed, err)
        return _Attempt(target, model, hooks, executed, req, call)

    async def _fallback_short_circuit(
        self, ex: Exchange, send: Any, hooks: HookChain, executed: tuple, sc: Any
    ) -> object | None:
        if sc.error is not None:
            return await self._fallback_failed(ex, send, hooks, executed, sc.error)
        await self._short_circuit(ex, send, hooks, executed, sc)
        return _ANSWERED

    async def _fallback_failed(
        self,
        ex: Exchange,
        send: Any,
        hooks: HookChain | None,
        executed: tuple,
        error: GatewayError | UpstreamError | PluginError,
    ) -> object | None:
        """A fallback refused before its upstream call: its response hooks see the error (they may recover it)."""
        plugin_error = error if isinstance(error, PluginError) else _as_plugin_error(error)
        written = await self._write_hooks(ex, hooks, executed, plugin_error.status_code, {}, b"", plugin_error)
        if written.recovered:
            ex.error_type = ""
            await self._send_full(ex, send, written)
            return _ANSWERED
        return None

    # -- request helpers ---------------------------------------------------------------------------------

    def _upstream_request(
        self, ex: Exchange, scope: dict[str, Any], headers: dict[str, str], native_path: str, attempt: _Attempt
    ) -> UpstreamRequest:
        provider = attempt.llm.provider
        assert provider is not None
        call = attempt.call
        if ex.kind == "native":
            request = provider.native_request(
                attempt.llm.spec,
                ex.method,
                native_path,
                scope.get("query_string", b"").decode("latin-1"),
                headers,
                call.raw,
                call.stream,
            )
        else:
            request = provider.build(attempt.llm.spec, call, attempt.model)
        if attempt.req is not None:
            injected = self._injected_headers(headers, attempt.req)
            if injected:
                request.headers.update(injected)
        return request

    def _enriched(
        self, ex: Exchange, scope: dict[str, Any], headers: dict[str, str], call: OpenAIRequest
    ) -> EnrichedRequest:
        visible = {k: ("[redacted]" if k in _REDACTED_HEADERS else v) for k, v in headers.items()}
        client = scope.get("client")
        return EnrichedRequest(
            method=ex.method,
            path=ex.path,
            headers=visible,
            body=call.raw,
            remote_addr=client[0] if client else "",
            query_string=scope.get("query_string", b"").decode("latin-1"),
            context=ex.ctx.info(),
            request_id=ex.request_id,
            stream=call.stream,
            model=call.model,
        )

    def _adopt(
        self, ex: Exchange, before: EnrichedRequest, after: EnrichedRequest, call: OpenAIRequest
    ) -> tuple[EnrichedRequest, OpenAIRequest]:
        """Take a hook's rewritten request; a new body is decoded again (and must stay valid)."""
        if after.body is not before.body and after.body != call.raw:
            call = decode_call(ex.kind, after.body)
            if ex.kind != "native" and call.model != ex.call.model:  # type: ignore[union-attr]
                ex.model = call.model
            ex.call = call
        return after, call

    @staticmethod
    def _injected_headers(original: dict[str, str], req: EnrichedRequest) -> dict[str, str]:
        """Headers a request hook added or changed: forwarded upstream (never auth or hop-by-hop headers)."""
        out = {}
        for key, value in req.headers.items():
            lowered = key.lower()
            if lowered in _NOT_FORWARDED or original.get(lowered) == value:
                continue
            out[lowered] = value
        return out

    def _models_body(self, cfg: CompiledConfig, ex: Exchange) -> bytes:
        assert ex.app is not None
        created = int(cfg.snapshot.generated_at)
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": llm.slug}
            for name, llm in cfg.models_for(ex.app)
        ]
        return orjson.dumps({"object": "list", "data": data})

    # -- responses ---------------------------------------------------------------------------------------

    async def _send_error(self, send: Any, request_id: str, error: GatewayError | PluginError) -> None:
        headers = [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode())]
        for key, value in error.headers.items():
            headers.append((key.lower().encode("latin-1"), value.encode("latin-1")))
        await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
        await send(
            {
                "type": "http.response.body",
                "body": error_body(error.message, error.type, error.code, getattr(error, "param", None)),
            }
        )

    async def _respond_error(
        self, ex: Exchange, send: Any, hooks: HookChain | None, executed: tuple, error: GatewayError | UpstreamError
    ) -> None:
        ex.error_type = error.code or error.type
        await self._respond_full(ex, send, hooks, executed, error.status_code, {}, b"", _as_plugin_error(error))

    async def _write_hooks(
        self,
        ex: Exchange,
        hooks: HookChain | None,
        executed: tuple,
        status: int,
        headers: dict[str, str],
        body: bytes,
        error: PluginError | None,
    ) -> _Written:
        """Run the response hooks (reverse order, executed plugins only) over a full response or an error."""
        if hooks is not None and (hooks.hooks("on_before_write_headers") or hooks.hooks("on_before_write")):
            write = ResponseWriteRequest(
                request_id=ex.request_id,
                status_code=status,
                headers=headers,
                body=body,
                error=error,
                context=ex.ctx.info(),
            )
            write = await hooks.run_response_headers(ex.ctx, executed, write)
            write = await hooks.run_response_body(ex.ctx, executed, write)
            return _Written(write.status_code, write.headers, write.body, write.error)
        return _Written(status, headers, body, error)

    async def _respond_full(
        self,
        ex: Exchange,
        send: Any,
        hooks: HookChain | None,
        executed: tuple,
        status: int,
        headers: dict[str, str],
        body: bytes,
        error: PluginError | None,
    ) -> None:
        written = await self._write_hooks(ex, hooks, executed, status, headers, body, error)
        if ex.error_type and written.recovered:
            ex.error_type = ""  # a response hook recovered the error
        await self._send_full(ex, send, written)

    async def _send_full(self, ex: Exchange, send: Any, written: _Written) -> None:
        status, headers, body, error = written.status, written.headers, written.body, written.error
        out = [(b"x-request-id", ex.request_id.encode())]
        if error is not None:
            status = error.status_code
            ex.error_type = ex.error_type or error.code or error.type
            body = error_body(error.message, error.type, error.code)
            out.append((b"content-type", b"application/json"))
            for key, value in error.headers.items():
                out.append((key.lower().encode("latin-1"), value.encode("latin-1")))
        else:
            if "content-type" not in headers:
                out.append((b"content-type", b"application/json"))
            for key, value in headers.items():
                out.append((key.lower().encode("latin-1"), value.encode("latin-1")))
        ex.status_code = status
        ex.response_bytes = len(body)
        if self.rt.settings.log_bodies:
            ex.response_body = body
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    async def _short_circuit(self, ex: Exchange, send: Any, hooks: HookChain, executed: tuple, sc: Any) -> None:
        ex.short_circuited = True
        if sc.error is not None:
            ex.error_type = sc.error.code or sc.error.type
            await self._respond_full(ex, send, hooks, executed, sc.error.status_code, {}, b"", sc.error)
        elif sc.stream_chunks is not None:
            await self._respond_stream(ex, send, hooks, executed, _replay(sc.stream_chunks))
        elif sc.response is not None:
            response = sc.response
            await self._respond_full(
                ex, send, hooks, executed, response.status_code, dict(response.headers), response.body, None
            )
        else:
            await self._respond_full(
                ex,
                send,
                hooks,
                executed,
                500,
                {},
                b"",
                PluginError(
                    status_code=500, message="a plugin short-circuited without a response", type="plugin_error"
                ),
            )

    async def _respond_stream(
        self, ex: Exchange, send: Any, hooks: HookChain | None, executed: tuple, result: StreamResult
    ) -> None:
        """Relay a stream whose first event is in. A client that leaves cancels this task (`edge_gateway.disconnects`);
        the `finally` closes the upstream response either way."""
        ex.streamed = True
        ex.usage = result.usage
        ctx = ex.ctx
        chunk_hooks = hooks is not None and bool(hooks.hooks("on_before_write"))
        complete_hooks = hooks is not None and bool(hooks.hooks("on_stream_complete"))
        keep = complete_hooks or self.rt.settings.log_bodies
        sent: list[bytes] = []
        count = 0
        size = 0
        content_type = result.headers.get("content-type", "text/event-stream")
        headers = {"content-type": content_type}
        try:
            if hooks is not None and hooks.hooks("on_before_write_headers"):
                write = await hooks.run_response_headers(
                    ctx,
                    executed,
                    ResponseWriteRequest(
                        request_id=ex.request_id, status_code=200, headers=headers, context=ctx.info()
                    ),
                )
                if write.error is not None:
                    ex.error_type = write.error.code or write.error.type
                    await self._respond_full(ex, send, None, (), write.error.status_code, {}, b"", write.error)
                    return
                headers = write.headers
                start_headers = [(b"x-request-id", ex.request_id.encode())]
                for key, value in headers.items():
                    start_headers.append((key.lower().encode("latin-1"), value.encode("latin-1")))
                if "cache-control" not in headers:
                    start_headers.extend(_SSE_HEADERS[1:])
            else:
                start_headers = [
                    (b"x-request-id", ex.request_id.encode()),
                    (b"content-type", content_type.encode("latin-1")),
                    *_SSE_HEADERS[1:],
                ]
            info = ctx.info() if chunk_hooks else None
            await send({"type": "http.response.start", "status": 200, "headers": start_headers})
            ex.status_code = 200
            # The first event goes out on its own, before the hooks run over the rest of its read: time to first
            # byte must not grow with how many events the vendor's first packet held.
            batch = result.first[:1]
            held = result.first[1:]
            rest = result.rest

            async def relay(events: list[bytes]) -> None:
                """One `send` for the events of one upstream read (after the chunk hooks)."""
                nonlocal size
                body = events[0] if len(events) == 1 else b"".join(events)
                if ex.ttft_s is None:
                    ex.ttft_s = time.perf_counter() - ex.started
                size += len(body)
                if keep:
                    sent.append(body)
                await send({"type": "http.response.body", "body": body, "more_body": True})

            try:
                while True:
                    out = batch
                    if chunk_hooks:
                        out = []
                        try:
                            for event in batch:
                                chunk = await hooks.run_response_chunk(  # type: ignore[union-attr]
                                    ctx,
                                    executed,
                                    ResponseWriteRequest(
                                        request_id=ex.request_id,
                                        body=event,
                                        is_stream_chunk=True,
                                        chunk_index=count,
                                        is_final_chunk=event == _DONE,
                                        context=info,
                                    ),
                                )
                                count += 1
                                if chunk is not None:
                                    out.append(chunk.body)
                        except PluginCallError:
                            if out:  # the events the hooks passed before the failure still go out
                                await relay(out)
                            raise
                    if out:
                        await relay(out)
                    if held:
                        batch, held = held, []
                        continue
                    try:
                        batch = await rest.__anext__()
                    except StopAsyncIteration:
                        break
            except (UpstreamError, PluginCallError) as err:
                if isinstance(err, UpstreamError):
                    message, kind, code, status = err.message, err.type, err.code, err.status_code
                else:
                    message, kind, code, status = f"plugin '{err.slug}' failed", "plugin_error", "plugin_failed", 500
                ex.status_code = status
                ex.error_type = code or kind
                payload = b"data: " + orjson.dumps({"error": {"message": message, "type": kind, "code": code}})
                await send({"type": "http.response.body", "body": payload + b"\n\n", "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await result.reply.aclose()
            ex.response_bytes = size
        if self.rt.settings.log_bodies:
            ex.response_body = b"".join(sent)
        if complete_hooks:
            await hooks.run_stream_complete(  # type: ignore[union-attr]
                ctx,
                executed,
                StreamCompleteRequest(
                    request_id=ex.request_id,
                    accumulated_response=b"".join(sent),
                    headers=headers,
                    status_code=ex.status_code,
                    chunk_count=count,
                    request_body=ex.call.raw if ex.call is not None else b"",
                    context=ctx.info(),
                ),
            )


class _ListReply:
    async def aclose(self) -> None:
        return None


def _replay(chunks: list[bytes]) -> StreamResult:
    """A short-circuit stream (e.g. a cache hit) as a `StreamResult`; chunks become SSE events if they are not."""
    events = [c if c.startswith((b"data:", b"event:")) else b"data: " + c + b"\n\n" for c in chunks]
    if not events or events[-1] != _DONE:
        events.append(_DONE)

    async def rest() -> AsyncIterator[list[bytes]]:
        yield events[1:]

    return StreamResult(200, {"content-type": "text/event-stream"}, events[:1], rest(), Usage(), _ListReply())  # type: ignore[arg-type]


def _content_type(headers: dict[str, str]) -> dict[str, str]:
    ctype = headers.get("content-type")
    return {"content-type": ctype} if ctype else {}
