"""The edge's request pipeline, read top to bottom: each step names the module that does it.

    intake.py        read body (413; content-encoding: 415, 400) -> decode (400; an unknown caller gets 401 first)
    pipeline.py      route (model -> LLM, before auth so the LLM's chain can authenticate) -> chain loaded (503)
    attempt.py       pre_auth hooks -> auth (auth plugins, else the app key; 401) -> client IP, app-LLM link
                     (403) -> post_auth hooks -> policy (429 rate limits, 402 budget)   [shared_sdk.attempt]
    short_circuits   a hook's answer, in the mode the client asked for (or, an error: fallbacks may follow)
    fallbacks.py     upstream call with retries (upstream_call.py), then the fallbacks, each a whole attempt
    respond_*.py     response hooks in reverse (only plugins whose request phase ran), full or per chunk
    accounting.py    the last step: analytics, budget usage, proxy log; the response's last message is
                     released once they are durable

Hook semantics (order, short-circuits, failure policy, timeouts, timing) are `shared_sdk.pipeline.HookChain`'s
and are not re-implemented here. Errors the gateway raises itself (`GatewayError`) are never retried and never
fall back; errors after authentication pass through the response hooks (which may recover them) and are
accounted; refusals before it (`Rejected`) are answered at once and never accounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson

from shared_sdk import Context, Runtime
from shared_sdk.attempt import Prepared, prepare_attempt
from shared_sdk.pipeline import HookChain

from .accounting import account, until_durable
from .attempt import Attempt, EdgeSteps
from .auth import client_credential, credential_from_headers, find_credential
from .config_store import CompiledLLM
from .disconnects import DisconnectWatch, DisconnectWatches
from .errors import GatewayError, dialect_of
from .exchange import Exchange, Rejected
from .fallbacks import UpstreamPhase, fallbacks_allowed
from .ids import new_id
from .intake import Caller, Receive, decode_call, gemini_key, read_body
from .model_list import models_body
from .providers import OpenAIRequest
from .providers.base import estimate_tokens
from .providers.messages_request import check_count_tokens, estimate_message_tokens
from .providers.responses import ResponsesSession, has_responses_api
from .respond_full import Outlet, Send, respond_error, respond_full, send_error
from .routing import resolve
from .runtime import EdgeRuntime
from .short_circuits import answer_short_circuit

__all__ = ["EdgeRuntime", "Pipeline"]

log = logging.getLogger("fjordgate.edge.pipeline")

_NO_CONFIG = GatewayError(
    503, "this edge has no configuration loaded yet", type="service_unavailable", code="config_not_loaded"
)
_MODEL_KINDS = ("models", "model")
_INTERNAL = GatewayError(500, "internal error in the edge gateway", type="internal_error", code="internal_error")


class _HoldLast:
    """Holds a response's last message until accounting's writes are durable (`accounting.until_durable`) and, for
    a Responses API call, until the stored response is committed where every worker of the edge can read it.

    Only built when there is something to wait for: a durable sink (NATS), or responses shared by workers."""

    __slots__ = ("_send", "last")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.last: dict[str, Any] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.last = message
            return
        await self._send(message)

    async def release(self, pending: list[asyncio.Future[None]]) -> None:
        if pending:
            await until_durable(pending)
        if self.last is not None:
            with contextlib.suppress(Exception):  # a client that left cannot take it; nothing else to do
                await self._send(self.last)


class Pipeline:
    def __init__(self, rt: EdgeRuntime) -> None:
        self.rt = rt
        self.watches = DisconnectWatches()
        self._shared = rt.responses is not None and rt.responses.shared
        """Stored responses shared by the edge's workers: a Responses API answer ends once its save committed."""

    async def serve(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        kind: str,
        native_slug: str = "",
        native_path: str = "",
    ) -> None:
        """Serve one LLM request. `kind`: chat | completions | embeddings | messages | count_tokens | models |
        native. Never raises."""
        rt = self.rt
        cfg = rt.store.current
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = _request_id(headers)
        dialect = dialect_of(kind, headers, scope["path"])
        if cfg is None:
            await send_error(send, request_id, _NO_CONFIG, dialect)
            return
        ctx = Context(
            runtime=Runtime.GATEWAY,
            request_id=request_id,
            edge_id=rt.settings.edge_id,
            namespace=cfg.snapshot.namespace,
        )
        ex = Exchange(request_id, time.perf_counter(), time.time(), cfg, ctx, kind, scope["method"], scope["path"])
        ex.dialect = dialect
        hold = _HoldLast(send) if rt.telemetry.has_durable_sinks or (kind == "responses" and self._shared) else None
        watch = self.watches.watch(hold.send if hold is not None else send)
        out = Outlet(ex, watch.send, rt.settings.log_bodies)
        tracing = rt.tracing
        traced = tracing.start_request(headers, kind) if tracing is not None else None
        with cfg:  # the plugin instances of this config are not stopped under the request (`ConfigStore`)
            try:
                await self._answer(out, scope, receive, headers, native_slug, native_path, watch)
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
                if ex.probe is not None:  # a no-op when the probe's call reported (the breaker moved on)
                    ex.probe[0].release(ex.probe[1])
                if traced is None:
                    pending = account(ex, rt)  # the last step, exactly once
                    if hold is not None:
                        await hold.release(pending)
                else:
                    await _traced_handoff(ex, rt, hold)
                    assert tracing is not None
                    tracing.end_request(traced, ex)

    async def _answer(
        self,
        out: Outlet,
        scope: dict[str, Any],
        receive: Receive,
        headers: dict[str, str],
        native_slug: str,
        native_path: str,
        watch: DisconnectWatch,
    ) -> None:
        """Intake, then the run; a refusal or a failure of the edge itself answered in the caller's dialect."""
        ex = out.ex
        try:
            caller = await self._intake(ex, scope, receive, headers, native_path, watch)
            await self._run(out, caller, native_slug)
        except Rejected as rejected:
            self.rt.metrics.rejected.labels(str(rejected.error.status_code), rejected.reason).inc()
            await send_error(out.send, ex.request_id, rejected.error, ex.dialect)
        except Exception:
            log.exception("request %s failed inside the edge", ex.request_id)
            ex.status_code = 500
            ex.error_type = "internal_error"
            await send_error(out.send, ex.request_id, _INTERNAL, ex.dialect, ex.rate_headers)

    async def _intake(
        self,
        ex: Exchange,
        scope: dict[str, Any],
        receive: Receive,
        headers: dict[str, str],
        native_path: str,
        watch: DisconnectWatch,
    ) -> Caller:
        """Read and decode the body; an unknown caller learns nothing about request validation (401 first)."""
        cfg = ex.cfg
        api_key = headers.get("x-api-key")
        if ex.dialect == "gemini":
            api_key = gemini_key(scope, headers) or api_key
        credential, auth_type = credential_from_headers(headers.get("authorization"), api_key)
        if not credential and "api-key" in headers:  # Azure OpenAI's header, read only without the others
            credential, auth_type = client_credential(headers, api_key)
        found = find_credential(cfg, credential)
        try:
            if ex.kind in _MODEL_KINDS:
                body, call = b"", OpenAIRequest.from_data(ex.kind, b"", {})
            else:
                limit = self.rt.settings.max_body_bytes
                body = await read_body(receive, limit, headers.get("content-length"), headers.get("content-encoding"))
                if "content-encoding" in headers:
                    del headers["content-encoding"]  # hooks see (and vendors get) the decoded body
                call = decode_call(ex.kind, body, native_path)
        except GatewayError as err:
            global_hooks = cfg.global_chain.hooks
            if found is None and (global_hooks is None or not global_hooks.hooks("handle_auth")):
                unauthenticated = GatewayError.unauthenticated(
                    "invalid API key" if credential else "no API key provided"
                )
                raise Rejected(unauthenticated, "unauthenticated") from None
            raise Rejected(err, "bad_request") from None
        watch.start(receive)
        ex.call = call
        ex.request_bytes = len(body)
        return Caller(scope, headers, credential, auth_type, found, call, native_path)

    @staticmethod
    def _route(ex: Exchange, caller: Caller, native_slug: str) -> GatewayError | None:
        """Set the routed LLM and model on `ex`; the routing error, reported once the caller is accepted."""
        cfg, call = ex.cfg, caller.call
        try:
            if ex.kind == "native":
                llm: CompiledLLM | None = cfg.llms_by_slug.get(native_slug)
                if llm is None:
                    raise GatewayError.not_found(f"no LLM {native_slug!r} here", code="llm_not_found")
                ex.llm, ex.model = llm, call.model
            elif ex.kind not in _MODEL_KINDS:
                hint = cfg.apps.get(caller.found.app_id) if caller.found is not None else None
                ex.llm, ex.model, ex.group = resolve(cfg, call.model, hint)
                ex.probe = ex.group.probe if ex.group is not None else None
        except GatewayError as err:
            return err
        if ex.llm is not None:
            ex.ctx.llm = ex.llm.message
        return None

    async def _run(self, out: Outlet, caller: Caller, native_slug: str) -> None:
        ex = out.ex
        route_error = self._route(ex, caller, native_slug)
        hooks = _loaded_hooks(ex)
        steps = EdgeSteps(ex, self.rt, caller, route_error=route_error)
        try:
            prepared = await prepare_attempt(hooks, ex.ctx, steps)
        except GatewayError as err:
            if not ex.accepted:
                raise Rejected(err, "bad_request") from None
            await respond_error(out, hooks, hooks.handles if hooks is not None else (), err)
            return
        if prepared.short_circuit is not None:
            await self._short_circuited(out, caller, prepared, steps)
        elif ex.kind in _MODEL_KINDS:
            await _answer_models(out, hooks, prepared, caller)
        elif ex.kind == "count_tokens" and ex.llm is not None and ex.llm.spec.vendor != "anthropic":
            await _answer_token_estimate(out, hooks, prepared, steps.call.data)
        elif ex.kind == "gemini_count" and ex.llm is not None and ex.llm.spec.vendor not in ("google", "vertex"):
            # Only Gemini counts tokens for a Gemini body; for other vendors the edge estimates (no call).
            body = orjson.dumps({"totalTokens": estimate_tokens(steps.call.data)})
            await respond_full(out, hooks, prepared.executed, 200, {}, body, None)
        else:
            await self._call_upstream(out, caller, hooks, prepared, steps)

    async def _call_upstream(
        self, out: Outlet, caller: Caller, hooks: HookChain | None, prepared: Prepared, steps: EdgeSteps
    ) -> None:
        """The upstream phase (retries, fallbacks); a Responses call's session opened before, stored after."""
        ex = out.ex
        assert ex.llm is not None
        if ex.kind == "responses":
            refused = await self._open_responses(ex, steps.call)
            if refused is not None:
                await respond_error(out, hooks, prepared.executed, refused)
                return
        attempt = Attempt(ex.llm, ex.model, hooks, prepared.executed, prepared.request, steps.call)
        await UpstreamPhase(self.rt, out, caller, attempt).run(attempt)
        if ex.responses is not None:
            await self._keep_response(ex, steps.call)

    async def _open_responses(self, ex: Exchange, call: OpenAIRequest) -> GatewayError | None:
        """A Responses request's session, with the stored turns its `previous_response_id` continues.

        An id the edge does not hold is 400 (as OpenAI), unless the routed LLM keeps its own state (pass-through)."""
        previous = call.data.get("previous_response_id")
        history: list[dict[str, Any]] = []
        if previous is not None:
            found = await self._history(ex, previous)
            if isinstance(found, GatewayError):
                return found
            history = found
        session = ResponsesSession(history)
        if ex.llm is not None and not has_responses_api(ex.llm.spec):
            try:  # what Chat Completions cannot express is the client's 400, before any upstream call
                session.check(call, ex.model)  # kept for the routed LLM's build: translated once, not twice
            except GatewayError as err:
                return err
        ex.responses = session
        return None

    async def _history(self, ex: Exchange, previous: Any) -> list[dict[str, Any]] | GatewayError:
        """The stored items `previous_response_id` names; none for a pass-through LLM that keeps its own state."""
        if not isinstance(previous, str) or not previous:
            return GatewayError.bad_request("'previous_response_id' must be a string", param="previous_response_id")
        store, app = self.rt.responses, ex.app
        entry = await store.load(app.id, previous) if store is not None and app is not None else None
        if entry is not None:
            items: list[dict[str, Any]] = entry["items"]
            return items
        if ex.llm is None or not has_responses_api(ex.llm.spec):
            return GatewayError.bad_request(  # OpenAI's answer: 400, not 404
                f"Previous response with id '{previous}' not found.",
                code="previous_response_not_found",
                param="previous_response_id",
            )
        return []

    async def _keep_response(self, ex: Exchange, call: OpenAIRequest) -> None:
        """Store a translated response that completed (unless the caller said `store: false`)."""
        session, store, app = ex.responses, self.rt.responses, ex.app
        if session is None or session.response is None or store is None or app is None:
            return
        if call.data.get("store") is False or ex.status_code != 200:
            return
        await store.save(app.id, session.response, session.conversation(call.data))

    async def _short_circuited(self, out: Outlet, caller: Caller, prepared: Prepared, steps: EdgeSteps) -> None:
        """A hook answered: in the requested mode, or (an error after authentication) the fallbacks may try."""
        ex, sc = out.ex, prepared.short_circuit
        assert sc is not None
        hooks = ex.llm.chain.hooks if ex.llm is not None else ex.cfg.global_chain.hooks
        if sc.error is not None and ex.accepted and ex.llm is not None and ex.kind not in _MODEL_KINDS:
            attempt = Attempt(ex.llm, ex.model, hooks, prepared.executed, prepared.request, steps.call)
            if sc.error.allow_fallbacks is not False and fallbacks_allowed(out, attempt):
                phase = UpstreamPhase(self.rt, out, caller, attempt)
                if phase.fallbacks:
                    if ex.kind == "responses":  # the fallbacks build from the request's session, as in `_call_upstream`
                        refused = await self._open_responses(ex, steps.call)
                        if refused is not None:
                            await respond_error(out, hooks, prepared.executed, refused)
                            return
                    ex.error_type = sc.error.code or sc.error.type
                    await phase.run_after_refusal(attempt, sc.error)
                    if ex.responses is not None:
                        await self._keep_response(ex, steps.call)
                    return
        await answer_short_circuit(out, hooks, prepared.executed, sc, prepared.short_circuited_by, caller.call.stream)


async def _traced_handoff(ex: Exchange, rt: EdgeRuntime, hold: _HoldLast | None) -> None:
    """Accounting and the wait for its durable writes, under a `telemetry hand-off` span (sampled requests)."""
    assert rt.tracing is not None
    span = rt.tracing.start_handoff()
    try:
        pending = account(ex, rt)
        if span is not None:
            span.set_attributes(
                {"fjordgate.telemetry.accounted": ex.accounted, "fjordgate.telemetry.durable": len(pending)}
            )
        if hold is not None:
            await hold.release(pending)
    finally:
        if span is not None:
            span.end()


def _request_id(headers: dict[str, str]) -> str:
    """The client's `x-request-id` when it sent a usable one (at most 128 characters), else a new id."""
    request_id = headers.get("x-request-id", "")
    return request_id if request_id and len(request_id) <= 128 else new_id()


def _loaded_hooks(ex: Exchange) -> HookChain | None:
    """The routed LLM's hooks (the global chain when none was routed); 503 when a required plugin is not loaded."""
    chain = ex.llm.chain if ex.llm is not None else ex.cfg.global_chain
    if chain.broken:
        unavailable = GatewayError(
            503,
            f"plugin {chain.broken!r} is required but not loaded on this edge",
            type="service_unavailable",
            code="plugin_unavailable",
        )
        raise Rejected(unavailable, "plugin_unavailable")
    return chain.hooks


async def _answer_models(out: Outlet, hooks: HookChain | None, prepared: Prepared, caller: Caller) -> None:
    """`GET /v1/models` (or one model): answered by the edge from its config, through the response hooks."""
    try:
        listing = models_body(out.ex, caller.native_path, caller.scope.get("query_string", b""))
    except GatewayError as err:
        await respond_error(out, hooks, prepared.executed, err)
        return
    await respond_full(out, hooks, prepared.executed, 200, {}, listing, None)


async def _answer_token_estimate(out: Outlet, hooks: HookChain | None, prepared: Prepared, data: Any) -> None:
    """count_tokens for a non-Anthropic LLM: only Anthropic counts tokens for a Messages body, so the edge
    estimates (no call), from a body checked as its translation would be (a misfit is the client's 400, the one
    Anthropic answers), not a count of whatever was sent."""
    try:
        check_count_tokens(data)
    except GatewayError as err:
        await respond_error(out, hooks, prepared.executed, err)
        return
    body = orjson.dumps({"input_tokens": estimate_message_tokens(data)})
    await respond_full(out, hooks, prepared.executed, 200, {}, body, None)
