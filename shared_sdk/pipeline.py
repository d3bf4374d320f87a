"""The hook chain: the one implementation of how plugin hooks run around a request.

The edge's HTTP layer and `shared_sdk.testing`'s pipeline runner both drive a `HookChain`; neither
re-implements any of the rules below.

Order
    A chain is an ordered list of plugins, built once per config (not per request). Request hooks
    (`handle_pre_auth`, then `handle_post_auth`) run in chain order. Response hooks (`on_before_write_headers`,
    `on_before_write`, per-chunk `on_before_write`, `on_stream_complete`) run in *reverse* chain order, and
    only for the plugins whose request phase was reached: `RequestPhaseResult.executed`.

Short-circuit (a returned value, never an exception)
    A request hook at position k stops the phase by returning `block=True` (status default 403, with its
    headers and body or `error_message`) or a `ShortCircuit` with a full response (a cache hit), a stream, or
    an error. Plugins after k do not run; response hooks then run for k, k-1, ..., 1 (k included), so a plugin
    always sees the response to a request it saw. An error carries `allow_fallbacks` (unset = allowed;
    blocks and plugin failures set it to False).

Modification
    `modified=True` with `request` replaces the request for the next hook (or, without `request`, its
    `headers` / `body` replace the request's). `context_updates` are merged into `ctx.metadata` at once,
    so later hooks and the edge see them (e.g. an upstream override). Always *return* a change: an isolated
    plugin's in-place mutation is invisible to the host.

Response hooks
    Each may replace status, headers or body (`modified=True`), turn the response into an error (`error`),
    or recover an error into a response (set a `body` or a status below 400: the error is cleared). For a
    stream, `run_response_chunk` runs per chunk (a hook may rewrite it or `drop_chunk`), or a `ChunkRun`
    (`chunk_run`) over the events of each read from the vendor: a plugin with `on_before_write_events` gets
    them in one call, one with `on_before_write` one call per event; then `run_stream_complete` runs once with
    the accumulated response.

Errors and timeouts
    Every call is bounded by the plugin's `timeout_s`. A timeout, exception or crash becomes a
    `PluginCallError` and is contained per the plugin's failure policy:
      fail open   -> logged, recorded in `errors`, the plugin is skipped and the chain goes on;
      fail closed -> request phase: short-circuit with a 5xx `PluginError` (500 exception, 503 crash or
                     unavailable, 504 timeout), `allow_fallbacks=False`;
                     headers/body phase: the response becomes that error;
                     chunk phase: `PluginCallError` is raised so the edge ends the stream with an error event;
                     stream-complete and data collection: logged only (the response is already sent).
    Client-facing messages never include the plugin's exception text (it may hold internals); logs do.

Timing
    Every hook call is timed; `HookTiming`s are returned (request phase) or appended to a caller's list, and
    passed to an optional `observer` callback (metrics, tracing spans). A stream run through a `ChunkRun` (the
    edge's) is timed per plugin and stream instead: one `HookTiming` with `chunks` set, the sum of that plugin's
    chunk calls, when the stream ends; a chunk call that fails is still recorded on its own, at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from . import result_fields
from .context import Context
from .errors import PluginCallError
from .host.handle import PluginHandle
from .messages import (
    App,
    AuthRequest,
    AuthResponse,
    EnrichedRequest,
    ObjectHookRegistration,
    ObjectHookRequest,
    ObjectHookResponse,
    PluginError,
    PluginResponse,
    ResponseWriteRequest,
    ResponseWriteResponse,
    ShortCircuit,
    StreamCompleteRequest,
    StreamCompleteResponse,
    StreamEventsRequest,
    StreamEventsResponse,
    UpstreamResponse,
    User,
)

__all__ = [
    "PHASES",
    "AuthResult",
    "ChunkRun",
    "HookChain",
    "HookTiming",
    "ObjectHookChain",
    "ObjectHookOutcome",
    "RequestPhaseResult",
    "failure_error",
]

log = logging.getLogger("fjordgate.plugins.pipeline")

PHASES: dict[str, str] = {"pre_auth": "handle_pre_auth", "post_auth": "handle_post_auth"}
_EVENTS_METHOD = "on_before_write_events"
_RESPONSE_METHODS = ("on_before_write_headers", "on_before_write", _EVENTS_METHOD, "on_stream_complete")
_CHUNK_HOOKS = "stream chunks"
"""Not a method: what `_implementing` and `_reversed` key the plugins with a chunk hook under (either method)."""
_COLLECTOR_METHODS = ("handle_proxy_log", "handle_analytics", "handle_budget_usage")
_FAILURE_STATUS = {"timeout": 504, "crash": 503, "unavailable": 503, "exception": 500}
_replace = msgspec.structs.replace


@dataclass(slots=True)
class HookTiming:
    """One hook call: which plugin, which method, how long, and what came of it."""

    slug: str
    method: str
    duration_s: float
    outcome: str
    """pass | modified | short_circuit | dropped | skipped (fail open) | failed (fail closed)"""
    chunks: int = 0
    """0: one call. n > 0: a stream's n chunk calls of this plugin that went through (`ChunkRun`), `duration_s` their
    sum and `outcome` the strongest of theirs (dropped > modified > pass)."""


class RequestPhaseResult:
    """What a request phase came to. A plain class, not a dataclass: the dataclass's `__init__` (keyword defaults,
    three default factories) cost twice this one's, once per phase and request."""

    __slots__ = (
        "request",
        "short_circuit",
        "short_circuited_by",
        "executed",
        "timings",
        "errors",
        "context_updates",
    )

    def __init__(
        self,
        request: EnrichedRequest,
        short_circuit: ShortCircuit | None = None,
        short_circuited_by: str | None = None,
        executed: tuple[PluginHandle, ...] = (),
        timings: list[HookTiming] | None = None,
        errors: list[PluginCallError] | None = None,
        context_updates: dict[str, Any] | None = None,
    ) -> None:
        self.request = request
        self.short_circuit = short_circuit
        self.short_circuited_by = short_circuited_by
        self.executed = executed
        """The chain prefix whose request phase was reached: response hooks run over it in reverse."""
        self.timings: list[HookTiming] = [] if timings is None else timings
        self.errors: list[PluginCallError] = [] if errors is None else errors
        """Contained (fail-open) failures."""
        self.context_updates: dict[str, Any] = {} if context_updates is None else context_updates

    def __repr__(self) -> str:
        return (
            f"RequestPhaseResult(short_circuited_by={self.short_circuited_by!r}, "
            f"executed={[h.slug for h in self.executed]!r}, timings={self.timings!r}, errors={self.errors!r})"
        )


@dataclass(slots=True)
class AuthResult:
    """Outcome of plugin authentication. `handled=False`: no auth plugin decided (none in the chain, or every
    one declined the credential), so the tier's own credential check applies."""

    handled: bool
    authenticated: bool = False
    app: App | None = None
    user: User | None = None
    response: AuthResponse | None = None
    plugin: str | None = None
    error: PluginError | None = None


def failure_error(err: PluginCallError) -> PluginError:
    """The client-facing error for a fail-closed plugin failure (no internals in the message)."""
    what = {
        "timeout": "did not answer in time",
        "crash": "crashed",
        "unavailable": "is unavailable",
        "exception": "failed",
    }.get(err.kind, "failed")
    return PluginError(
        status_code=_FAILURE_STATUS.get(err.kind, 500),
        message=f"plugin '{err.slug}' {what}",
        type="plugin_error",
        code=f"plugin_{err.kind}",
        allow_fallbacks=False,
    )


def _block(slug: str, resp: PluginResponse) -> ShortCircuit:
    status = resp.status_code or 403
    if resp.body:
        return ShortCircuit(response=UpstreamResponse(status_code=status, headers=resp.headers, body=resp.body))
    return ShortCircuit(
        error=PluginError(
            status_code=status,
            message=resp.error_message or f"request blocked by plugin '{slug}'",
            type="request_blocked",
            code="blocked_by_plugin",
            allow_fallbacks=False,
            headers=resp.headers,
        )
    )


class HookChain:
    """An ordered list of plugins and the rules for running their hooks. Build once per config."""

    def __init__(
        self,
        handles: Sequence[PluginHandle],
        *,
        observer: Callable[[HookTiming], None] | None = None,
    ) -> None:
        self.handles: tuple[PluginHandle, ...] = tuple(handles)
        slugs = [h.slug for h in self.handles]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"a plugin appears twice in the chain: {slugs}")
        self.observer = observer
        self._position = {h.slug: i for i, h in enumerate(self.handles)}
        methods = (*PHASES.values(), *_RESPONSE_METHODS, *_COLLECTOR_METHODS, "handle_auth")
        self._implementing = {m: tuple(h for h in self.handles if h.implements(m)) for m in methods}
        self._implementing[_CHUNK_HOOKS] = tuple(
            h for h in self.handles if h.implements("on_before_write") or h.implements(_EVENTS_METHOD)
        )
        self._reversed = {m: tuple(reversed(self._implementing[m])) for m in (*_RESPONSE_METHODS, _CHUNK_HOOKS)}

    def hooks(self, method: str) -> tuple[PluginHandle, ...]:
        """Plugins of this chain implementing `method`, in chain order."""
        hooks = self._implementing.get(method)
        if hooks is None:  # a method outside the precomputed set
            hooks = self._implementing[method] = tuple(h for h in self.handles if h.implements(method))
        return hooks

    def chunk_hooks(self) -> tuple[PluginHandle, ...]:
        """Plugins of this chain with a stream chunk hook (`on_before_write` or `on_before_write_events`)."""
        return self._implementing[_CHUNK_HOOKS]

    def _record(self, timings: list[HookTiming] | None, h: PluginHandle, method: str, t0: float, outcome: str) -> None:
        timing = HookTiming(h.slug, method, time.perf_counter() - t0, outcome)
        if timings is not None:
            timings.append(timing)
        if self.observer is not None:
            self.observer(timing)

    @staticmethod
    def _contain(err: PluginCallError) -> None:
        log.warning(
            "plugin hook failed; skipped (fail open): %s",
            err,
            extra={"plugin": err.slug, "fields": {"method": err.method, "kind": err.kind, "detail": err.detail}},
        )

    # -- request phase -------------------------------------------------------------------------------------

    async def run_request_phase(self, phase: str, ctx: Context, req: EnrichedRequest) -> RequestPhaseResult:
        """Run `pre_auth` or `post_auth` hooks in order until one short-circuits."""
        method = PHASES[phase]
        result = RequestPhaseResult(req, None, None, self.handles)
        timings = result.timings
        for h in self._implementing[method]:
            t0 = time.perf_counter()
            try:
                resp: PluginResponse = await h.call(method, ctx, req)
            except PluginCallError as err:
                stop = self._call_failed(result, h, method, t0, err, req)
                if stop is None:
                    continue
                return stop
            if resp.short_circuit is not None or resp.block:
                sc = resp.short_circuit if resp.short_circuit is not None else _block(h.slug, resp)
                if sc.stream_chunks is not None:  # only here: no cost to the calls that answer no stream
                    too_large = _stream_too_large(h, method, sc.stream_chunks)
                    if too_large is not None:
                        stop = self._call_failed(result, h, method, t0, too_large, req)
                        if stop is None:
                            continue
                        return stop
                if resp.context_updates:
                    result.context_updates.update(resp.context_updates)
                    ctx.metadata.update(resp.context_updates)
                self._record(timings, h, method, t0, "short_circuit")
                return self._stop(result, h, sc, req)
            if resp.context_updates:
                result.context_updates.update(resp.context_updates)
                ctx.metadata.update(resp.context_updates)
            if resp.modified:
                if resp.request is not None:
                    req = resp.request
                elif resp.headers or resp.body:
                    req = _replace(req, headers=resp.headers or req.headers, body=resp.body or req.body)
                self._record(timings, h, method, t0, "modified")
            else:
                self._record(timings, h, method, t0, "pass")
        result.request = req
        return result

    def _call_failed(
        self,
        result: RequestPhaseResult,
        h: PluginHandle,
        method: str,
        t0: float,
        err: PluginCallError,
        req: EnrichedRequest,
    ) -> RequestPhaseResult | None:
        """A request hook's failure under its plugin's policy: None to go on without it (fail open), else the
        result ending the request with the plugin's error (fail closed)."""
        if err.fail_open:
            self._contain(err)
            result.errors.append(err)
            self._record(result.timings, h, method, t0, "skipped")
            return None
        self._record(result.timings, h, method, t0, "failed")
        return self._stop(result, h, ShortCircuit(error=failure_error(err)), req)

    def _stop(
        self, result: RequestPhaseResult, h: PluginHandle, sc: ShortCircuit, req: EnrichedRequest
    ) -> RequestPhaseResult:
        result.request = req
        result.short_circuit = sc
        result.short_circuited_by = h.slug
        result.executed = self.handles[: self._position[h.slug] + 1]
        return result

    # -- authentication ------------------------------------------------------------------------------------

    async def run_auth(self, ctx: Context, req: AuthRequest) -> AuthResult:
        """Try auth plugins in order; the first to authenticate (with an existing app) wins.

        A plugin *declines* a credential it does not know by returning `None` or an `AuthResponse` with
        neither `authenticated` nor `error_message` set; a fail-open plugin that fails is skipped the same
        way. When every plugin declined, the result is `handled=False` and the tier's own credential check
        applies (app keys at the edge). A refusal is explicit: `authenticated=False` with an `error_message`.
        An authenticated answer without an app id, or whose credential maps to no app, is a refusal too: a
        credential without an app has no access rules (Tyk silently fell back to app 1).
        """
        plugins = self._implementing["handle_auth"]
        if not plugins:
            return AuthResult(handled=False)
        refusal = ""
        for h in plugins:
            try:
                resp: AuthResponse = await h.call("handle_auth", ctx, req)
                if not resp.authenticated:
                    refusal = resp.error_message or refusal
                    continue
                if resp.app_id is None:
                    refusal = "credential is not linked to an app"
                    log.warning("auth plugin %s authenticated a credential without an app id", h.slug)
                    continue
                app = await h.call("get_app_by_credential", ctx, req.credential)
                if app is None:
                    refusal = "credential is not linked to an app"
                    continue
                user = await h.call("get_user_by_credential", ctx, req.credential)
                return AuthResult(handled=True, authenticated=True, app=app, user=user, response=resp, plugin=h.slug)
            except PluginCallError as err:
                if err.fail_open:
                    self._contain(err)
                    continue
                return AuthResult(handled=True, plugin=h.slug, error=failure_error(err))
        if not refusal:
            return AuthResult(handled=False)
        return AuthResult(
            handled=True,
            error=PluginError(
                status_code=401,
                message=refusal,
                type="authentication_error",
                code="invalid_api_key",
                allow_fallbacks=False,
            ),
        )

    # -- response phase ------------------------------------------------------------------------------------

    def _reverse(self, method: str, executed: Sequence[PluginHandle]) -> tuple[PluginHandle, ...]:
        hooks = self._reversed[method]
        if len(executed) == len(self.handles):
            return hooks
        reached = {h.slug for h in executed}
        return tuple(h for h in hooks if h.slug in reached)

    async def run_response_headers(
        self,
        ctx: Context,
        executed: Sequence[PluginHandle],
        resp: ResponseWriteRequest,
        timings: list[HookTiming] | None = None,
    ) -> ResponseWriteRequest:
        """`on_before_write_headers` in reverse; returns the response to send (status, headers, error)."""
        return await self._run_response("on_before_write_headers", ctx, executed, resp, timings)

    async def run_response_body(
        self,
        ctx: Context,
        executed: Sequence[PluginHandle],
        resp: ResponseWriteRequest,
        timings: list[HookTiming] | None = None,
    ) -> ResponseWriteRequest:
        """`on_before_write` on the complete body, in reverse."""
        return await self._run_response("on_before_write", ctx, executed, resp, timings)

    async def _run_response(
        self,
        method: str,
        ctx: Context,
        executed: Sequence[PluginHandle],
        cur: ResponseWriteRequest,
        timings: list[HookTiming] | None,
    ) -> ResponseWriteRequest:
        for h in self._reverse(method, executed):
            t0 = time.perf_counter()
            try:
                out: ResponseWriteResponse = await h.call(method, ctx, cur)
            except PluginCallError as err:
                if err.fail_open:
                    self._contain(err)
                    self._record(timings, h, method, t0, "skipped")
                    continue
                self._record(timings, h, method, t0, "failed")
                error = failure_error(err)
                cur = _replace(cur, status_code=error.status_code, error=error, body=b"")
                continue
            if out.modified or out.error is not None:
                cur = _apply(cur, out)
                self._record(timings, h, method, t0, "modified")
            else:
                self._record(timings, h, method, t0, "pass")
        return cur

    async def run_response_chunk(
        self,
        ctx: Context,
        executed: Sequence[PluginHandle],
        chunk: ResponseWriteRequest,
        timings: list[HookTiming] | None = None,
    ) -> ResponseWriteRequest | None:
        """`on_before_write` for one stream chunk, in reverse. `None` when a hook dropped the chunk.

        Raises `PluginCallError` when a fail-closed plugin fails: the stream cannot be answered with a new
        status any more, so the caller ends it with an error event.
        """
        for h in self._reverse(_CHUNK_HOOKS, executed):
            t0 = time.perf_counter()
            method = _EVENTS_METHOD if h.implements(_EVENTS_METHOD) else "on_before_write"
            try:
                if method == _EVENTS_METHOD:
                    out = _one_event(h, chunk, await h.call(method, ctx, _events_request(chunk)))
                else:
                    out = await h.call(method, ctx, chunk)
            except PluginCallError as err:
                if err.fail_open:
                    self._contain(err)
                    self._record(timings, h, method, t0, "skipped")
                    continue
                self._record(timings, h, method, t0, "failed")
                raise
            if out.drop_chunk:
                self._record(timings, h, method, t0, "dropped")
                return None
            if out.modified:
                chunk = _apply(chunk, out)
                self._record(timings, h, method, t0, "modified")
            else:
                self._record(timings, h, method, t0, "pass")
        return chunk

    def chunk_run(self, ctx: Context, executed: Sequence[PluginHandle]) -> ChunkRun:
        """A runner of `on_before_write` over one stream's chunks (see `ChunkRun`): make one per stream."""
        return ChunkRun(self, ctx, self._reverse(_CHUNK_HOOKS, executed))

    async def run_stream_complete(
        self,
        ctx: Context,
        executed: Sequence[PluginHandle],
        req: StreamCompleteRequest,
        timings: list[HookTiming] | None = None,
    ) -> list[tuple[str, StreamCompleteResponse]]:
        """`on_stream_complete` in reverse after the last chunk; failures are logged (the stream is sent)."""
        method = "on_stream_complete"
        answers: list[tuple[str, StreamCompleteResponse]] = []
        for h in self._reverse(method, executed):
            t0 = time.perf_counter()
            try:
                answers.append((h.slug, await h.call(method, ctx, req)))
                self._record(timings, h, method, t0, "pass")
            except PluginCallError as err:
                self._contain(err)
                self._record(timings, h, method, t0, "skipped")
        return answers

    # -- data collection -----------------------------------------------------------------------------------

    async def run_data_collection(self, method: str, ctx: Context, record: Any) -> list[tuple[str, Any]]:
        """Hand a proxy log / analytics record / budget usage to every collector concurrently.

        Returns (slug, response or PluginCallError) per collector; failures never propagate.
        """
        if method not in _COLLECTOR_METHODS:
            raise ValueError(f"{method!r} is not a data collection method ({', '.join(_COLLECTOR_METHODS)})")
        collectors = self._implementing[method]
        if not collectors:
            return []
        results: list[Any]
        if len(collectors) == 1:
            # No gather for the usual single collector: gather wraps each call in a task, and a task costs a loop
            # iteration before it runs, so a telemetry lane handing records over one by one fell behind the
            # requests producing them under load (and dropped records).
            try:
                results = [await collectors[0].call(method, ctx, record)]
            except PluginCallError as err:
                results = [err]
        else:
            results = await asyncio.gather(*(h.call(method, ctx, record) for h in collectors), return_exceptions=True)
        out: list[tuple[str, Any]] = []
        for h, res in zip(collectors, results, strict=True):
            if isinstance(res, PluginCallError):
                self._contain(res)
            elif isinstance(res, BaseException):
                raise res
            out.append((h.slug, res))
        return out


_STRENGTH = {"pass": 0, "modified": 1, "dropped": 2}


class ChunkRun:
    """The chunk hooks of one stream, with the per-call work done once per stream.

    The rules are `run_response_chunk`'s (reverse order, rewrite, drop, fail open skips the plugin for that chunk,
    fail closed raises `PluginCallError`, each call bounded by the plugin's `timeout_s`). What differs is the
    plumbing, which cost as much as the hooks themselves at one call per event: each plugin's caller is made once
    (`PluginHandle.chunk_caller`: the context bound once, one deadline per stream re-armed per call), and the calls
    that went through are timed into per-plugin sums reported by `finish()` as one `HookTiming` per plugin
    (`chunks` = the number of calls) instead of one timing and one observer call per event. A failed call is
    recorded at once, on its own, as `run_response_chunk` records it.

    `run_events` takes the events of one read from the vendor: a plugin with `on_before_write_events` gets them
    in one call (a fast vendor's whole answer can be one read: one call instead of one per event), a plugin with
    only `on_before_write` one call per event, in the same reverse order; each plugin sees what the ones before
    it passed. `run` takes one chunk.
    """

    __slots__ = ("chain", "plugins", "batched", "callers", "spent", "calls", "outcomes", "timings", "limit")

    def __init__(self, chain: HookChain, ctx: Context, plugins: tuple[PluginHandle, ...]) -> None:
        self.chain = chain
        self.plugins = plugins
        self.batched = [h.implements(_EVENTS_METHOD) for h in plugins]
        """Per plugin: called with each read's events (`on_before_write_events`), else per event."""
        self.callers = [
            h.chunk_caller(ctx, _EVENTS_METHOD if batched else "on_before_write")
            for h, batched in zip(plugins, self.batched, strict=True)
        ]
        self.spent = [0.0] * len(plugins)
        self.calls = [0] * len(plugins)
        self.outcomes = [0] * len(plugins)
        self.timings: list[HookTiming] | None = None
        """Where `finish` (and a failed call) appends its timings, besides the observer; none by default."""
        self.limit = result_fields.body_limit()
        """What one hook may return for one read (`_events_too_large`), read once per stream."""

    def __bool__(self) -> bool:
        return bool(self.plugins)

    async def run(self, chunk: ResponseWriteRequest) -> ResponseWriteRequest | None:
        """The chunk to send after every hook, or `None` when one dropped it (`run_response_chunk`'s contract)."""
        now = time.monotonic
        spent, calls = self.spent, self.calls
        t0 = now()  # one clock reading per call: a call's end is the next one's start
        i = 0
        for call in self.callers:
            try:
                if self.batched[i]:
                    answer = await call(_events_request(chunk), t0)
                    out: ResponseWriteResponse = _one_event(self.plugins[i], chunk, answer)
                else:
                    out = await call(chunk, t0)
            except PluginCallError as err:
                self._failed(i, err, t0)
                t0 = now()
                i += 1
                continue
            t1 = now()
            spent[i] += t1 - t0
            calls[i] += 1
            t0 = t1
            if out.drop_chunk:
                self.outcomes[i] = 2
                return None
            if out.modified:
                chunk = _apply(chunk, out)
                if not self.outcomes[i]:
                    self.outcomes[i] = 1
            i += 1
        return chunk

    async def run_events(
        self, events: list[bytes], first_index: int, request_id: str, is_final: bool, info: Any
    ) -> tuple[list[bytes], PluginCallError | None]:
        """The events of one read through every chunk hook: (the events to send, the fail-closed failure or None).

        After a fail-closed failure the events the failing plugin had passed before it still go through the
        plugins after it and are returned with the failure (send them, then end the stream with an error event);
        a plugin taking the read in one call that fails passes none of it.
        """
        now = time.monotonic
        spent, calls, outcomes = self.spent, self.calls, self.outcomes
        failure: PluginCallError | None = None
        t0 = now()
        for i, call in enumerate(self.callers):
            if not events:
                break
            if self.batched[i]:
                req = StreamEventsRequest(
                    request_id=request_id, events=events, first_index=first_index, is_final=is_final, context=info
                )
                try:
                    answer: StreamEventsResponse = await call(req, t0)
                    if answer.modified:
                        try:
                            size = sum(map(len, answer.events))
                        except TypeError:  # events that are not bytes are the relay's to refuse (`_check_events`)
                            size = 0
                        if size > self.limit:
                            raise _events_too_large(self.plugins[i], size, self.limit)
                except PluginCallError as err:
                    if not self._failed(i, err, t0, raise_closed=False):
                        failure = failure or err
                        events = []
                    t0 = now()
                    continue
                t1 = now()
                spent[i] += t1 - t0
                calls[i] += 1
                t0 = t1
                if answer.modified:
                    if len(answer.events) < len(events):
                        outcomes[i] = 2
                    elif not outcomes[i]:
                        outcomes[i] = 1
                    events = answer.events
                continue
            passed: list[bytes] = []
            last = len(events) - 1
            for j, event in enumerate(events):
                chunk = ResponseWriteRequest(
                    request_id=request_id,
                    body=event,
                    is_stream_chunk=True,
                    chunk_index=first_index + j,
                    is_final_chunk=is_final and j == last,
                    context=info,
                )
                try:
                    out: ResponseWriteResponse = await call(chunk, t0)
                except PluginCallError as err:
                    if self._failed(i, err, t0, raise_closed=False):
                        passed.append(event)
                        t0 = now()
                        continue
                    failure = failure or err
                    t0 = now()
                    break
                t1 = now()
                spent[i] += t1 - t0
                calls[i] += 1
                t0 = t1
                if out.drop_chunk:
                    outcomes[i] = 2
                elif out.modified and out.body is not None:
                    passed.append(out.body)
                    if not outcomes[i]:
                        outcomes[i] = 1
                else:
                    passed.append(event)
            events = passed
        return events, failure

    def _failed(self, i: int, err: PluginCallError, t0: float, raise_closed: bool = True) -> bool:
        """Record a failed call; True when the plugin fails open (skipped for this chunk), else raise it or, with
        `raise_closed=False`, return False."""
        h = self.plugins[i]
        method = _EVENTS_METHOD if self.batched[i] else "on_before_write"
        timing = HookTiming(h.slug, method, time.monotonic() - t0, "skipped" if err.fail_open else "failed")
        self._report(timing)
        if not err.fail_open:
            if raise_closed:
                raise err
            return False
        self.chain._contain(err)
        return True

    def finish(self) -> None:
        """Report each plugin's summed chunk time (once per stream: call it when the stream ends, however it ends)."""
        names = list(_STRENGTH)
        for i, h in enumerate(self.plugins):
            if self.calls[i]:
                method = _EVENTS_METHOD if self.batched[i] else "on_before_write"
                self._report(HookTiming(h.slug, method, self.spent[i], names[self.outcomes[i]], self.calls[i]))
                self.calls[i], self.spent[i], self.outcomes[i] = 0, 0.0, 0

    def _report(self, timing: HookTiming) -> None:
        if self.timings is not None:
            self.timings.append(timing)
        if self.chain.observer is not None:
            self.chain.observer(timing)


def _events_request(chunk: ResponseWriteRequest) -> StreamEventsRequest:
    """One chunk as the group of one event that `on_before_write_events` takes."""
    return StreamEventsRequest(
        request_id=chunk.request_id,
        events=[chunk.body],
        first_index=chunk.chunk_index,
        is_final=chunk.is_final_chunk,
        context=chunk.context,
    )


_DROPPED = ResponseWriteResponse(drop_chunk=True)
_PASSED = ResponseWriteResponse()


def _check_events(h: PluginHandle, events: Any) -> None:
    """An in-process plugin's answer is not decoded (an isolated one's is, by its declared type): events that are
    not bytes would fail the stream later, outside the plugin's failure policy, so they fail the call here. (Not
    in `ChunkRun.run_events`, the edge's hot path: there the relay checks what it sends, once per read.)"""
    if type(events) is not list or _chunks_problem(events) is not None:
        raise h._error(_EVENTS_METHOD, "exception", "StreamEventsResponse.events must be a list of bytes")


def _events_too_large(h: PluginHandle, size: int, limit: int) -> PluginCallError:
    """The events a hook returned for one read are bounded as any body it returns (`result_fields.body_limit`): an
    in-process plugin could return 2 GB of them, which the edge then held and sent. Only a modified answer's is
    summed (in `run_events`, inline: it runs for every read of a stream whose hook rewrites it)."""
    detail = f"StreamEventsResponse.events are {size} bytes, over the {limit} a plugin may return"
    return h._error(_EVENTS_METHOD, "exception", f"ResultTypeError: {_EVENTS_METHOD} returned {detail}")


def _stream_too_large(h: PluginHandle, method: str, chunks: Any) -> PluginCallError | None:
    """A short-circuit's `stream_chunks` must be a list of bytes and are bounded together as any body a hook returns
    (`result_fields.body_limit`): the check of a hook's answer bounds each `bytes` field, not a list of them, so an
    in-process plugin could answer a stream of any size (and an isolated one up to the wire's 64 MiB), which the edge
    held and sent; and chunks that were not bytes (a str, an int, None) broke the edge's replay of them, a 500 naming
    no plugin, outside the plugin's failure policy. One pass, only for an answer holding a stream."""
    problem = _chunks_problem(chunks)
    if problem is None:
        size = sum(map(len, chunks))
        limit = result_fields.body_limit()
        if size <= limit:
            return None
        problem = f"{size} bytes, over the {limit} a plugin may return"
    detail = f"ShortCircuit.stream_chunks are {problem}"
    return h._error(method, "exception", f"ResultTypeError: {method} returned {detail}")


def _chunks_problem(chunks: Any) -> str | None:
    """What is wrong with the type of a list of bytes (a short-circuit's `stream_chunks`, a hook's events), or None."""
    if type(chunks) is not list and type(chunks) is not tuple:
        return f"a {type(chunks).__name__}, not a list of bytes"
    for chunk in chunks:
        if type(chunk) is not bytes:
            return f"not all bytes (one is a {type(chunk).__name__})"
    return None


def _one_event(h: PluginHandle, chunk: ResponseWriteRequest, answer: StreamEventsResponse) -> ResponseWriteResponse:
    """`on_before_write_events`' answer for one chunk as `on_before_write`'s: its events joined, or dropped."""
    if not answer.modified:
        return _PASSED
    _check_events(h, answer.events)
    if not answer.events:
        return _DROPPED
    return ResponseWriteResponse(
        modified=True, body=answer.events[0] if len(answer.events) == 1 else b"".join(answer.events)
    )


def _apply(cur: ResponseWriteRequest, out: ResponseWriteResponse) -> ResponseWriteRequest:
    if out.body is not None and out.headers is None and out.status_code is None and out.error is None:
        return _replace(cur, body=out.body, error=None)  # a new body only: what a stream's chunk hooks return
    changes: dict[str, Any] = {}
    if out.headers is not None:
        changes["headers"] = out.headers
    if out.body is not None:
        changes["body"] = out.body
        changes["error"] = None  # the hook wrote the response itself
    if out.status_code is not None:
        changes["status_code"] = out.status_code
        if out.status_code < 400:
            changes["error"] = None  # recovered
    if out.error is not None:
        changes["error"] = out.error
        changes["status_code"] = out.error.status_code
        changes["body"] = b""
    return _replace(cur, **changes)


# ----------------------------------------------------------------------------------------------------------
# Object hooks (control plane): before_* may reject or rewrite the object, in priority order
# ----------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ObjectHookOutcome:
    allowed: bool = True
    rejection_reason: str = ""
    rejected_by: str | None = None
    object_json: str = "{}"
    plugin_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per plugin slug: metadata to merge into the object's metadata."""
    messages: list[str] = field(default_factory=list)
    errors: list[PluginCallError] = field(default_factory=list)


class ObjectHookChain:
    """Object hooks of many plugins, ordered by registration priority (lower first, ties by chain order)."""

    def __init__(self, entries: Sequence[tuple[PluginHandle, ObjectHookRegistration]]) -> None:
        self._entries = sorted(entries, key=lambda e: e[1].priority)

    @classmethod
    async def build(cls, handles: Sequence[PluginHandle], ctx: Context | None = None) -> ObjectHookChain:
        """Ask each object-hook plugin for its registrations (once per config)."""
        entries: list[tuple[PluginHandle, ObjectHookRegistration]] = []
        for h in handles:
            if not h.implements("get_object_hook_registrations"):
                continue
            try:
                regs = await h.call("get_object_hook_registrations", ctx)
            except PluginCallError as err:
                log.warning("plugin %s: object hook registrations unavailable: %s", h.slug, err)
                continue
            entries.extend((h, reg) for reg in regs)
        return cls(entries)

    def hooks_for(self, object_type: str, hook_type: str) -> list[PluginHandle]:
        return [h for h, reg in self._entries if reg.object_type == object_type and hook_type in reg.hook_types]

    async def run(self, ctx: Context, req: ObjectHookRequest) -> ObjectHookOutcome:
        """before_*: the first rejection stops the operation, a rewrite is seen by the next hook.
        after_*: every hook runs; rejections are ignored (the change is committed)."""
        outcome = ObjectHookOutcome(object_json=req.object_json)
        before = req.hook_type.startswith("before_")
        for h in self.hooks_for(req.object_type, req.hook_type):
            try:
                resp: ObjectHookResponse = await h.call("handle_object_hook", ctx, req)
            except PluginCallError as err:
                outcome.errors.append(err)
                if err.fail_open or not before:
                    HookChain._contain(err)
                    continue
                outcome.allowed = False
                outcome.rejected_by = h.slug
                outcome.rejection_reason = failure_error(err).message
                return outcome
            if resp.plugin_metadata:
                outcome.plugin_metadata.setdefault(h.slug, {}).update(resp.plugin_metadata)
            if resp.message:
                outcome.messages.append(f"{h.slug}: {resp.message}")
            if not before:
                continue
            if not resp.allow_operation:
                outcome.allowed = False
                outcome.rejected_by = h.slug
                outcome.rejection_reason = resp.rejection_reason or f"rejected by plugin '{h.slug}'"
                return outcome
            if resp.modified and resp.modified_object_json is not None:
                outcome.object_json = resp.modified_object_json
                req = _replace(req, object_json=resp.modified_object_json)
        return outcome
