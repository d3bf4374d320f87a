"""A studio LLM call, governed as an edge governs a request to that LLM (`StudioLLMCalls`, mixed into
`StudioServicesImpl`): plugins, agents and the portal's chat call `call_llm`, `stream_llm` and `embed`.

The call's plugin chain (`studio_chain`: the namespace's global plugins, then the LLM's bindings, loaded once per
change) runs around it (`studio_hooks`: request hooks may rewrite or block it, response and chunk hooks rewrite the
reply, `on_stream_complete` ends a stream), its budgets may refuse it, and it is recorded in analytics
(`studio_llm`). A block is a `ServiceError` carrying the plugin's message; nothing reaches the vendor. Whose call it
is comes from the services' owner, or from the chat turn an agent is serving (`serving_chat_user`), never from the
plugin. The vendor wires live in `studio_vendor` and its siblings.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from shared_sdk import Context, PluginCallError, Runtime, ServiceError
from shared_sdk.attempt import AttemptRefused, Prepared
from shared_sdk.messages import (
    LLM,
    LLMCallChunk,
    LLMCallResponse,
    LLMMessage,
    PluginError,
    ResponseWriteRequest,
    ShortCircuit,
    User,
)
from shared_sdk.vendors import VENDORS, valid_region

from .handle_users import taken
from .reach import PluginReach
from .studio_chain import studio_chain_release, studio_chain_take
from .studio_embeddings import vendor_embed
from .studio_hooks import DONE, StudioAttempt, StudioRequest, answer_of, completion_body
from .studio_llm import (
    STUDIO_EDGE_ID,
    StudioLLMCall,
    studio_llm_call_record,
    studio_llm_prompt_estimate,
    studio_llm_reserve,
)
from .studio_vendor import AUTH_FAILED, StreamEnd, Upstream, VendorStreamError, vendor_call, vendor_stream

__all__ = ["ChatTurnUser", "StudioLLMCalls", "run_in_db_thread", "serving_chat_user"]


def run_in_db_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` as a coroutine function run in a worker thread with fresh database connections around it: the studio
    host's loop never blocks on the ORM, and Django's per-thread connections stay in worker threads."""

    def run(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


_STUDIO_WIRES = frozenset({"openai", "azure", "anthropic", "google", "vertex", "bedrock"})
"""The vendor wire formats `studio_vendor` speaks; a vendor on another wire is refused rather than sent its key in
the wrong place."""


def _credentials_problem(vendor: str, key: str, metadata: dict[str, Any]) -> str:
    """Why an LLM's key or metadata cannot make a call of its vendor ("" when nothing), never quoting the key.

    The LLM's save already checked them (`llms.presets`), but a key can be removed later: refused here, before the
    call, rather than sent unsigned or half-built."""
    if vendor == "bedrock":
        key_id, _, secret = key.partition(":")
        if not key_id or not secret:
            return "needs a key ACCESS_KEY_ID:SECRET_ACCESS_KEY"
        if not valid_region(metadata.get("region")):
            return "needs metadata.region, an AWS region"
    elif vendor == "vertex":
        if not key:
            return "needs a service-account JSON key"
        if not metadata.get("project") or not valid_region(metadata.get("region"), "vertex"):
            return "needs metadata.project and metadata.region"
    return ""


def _failure(upstream: Upstream, status: int, error_type: str) -> str:
    """The `ServiceError` message of a failed call: which LLM, and what to do about it; never the key."""
    if error_type == AUTH_FAILED:
        preset = VENDORS.get(upstream.vendor)
        label = preset.label if preset else upstream.vendor
        return f"LLM {upstream.id} ({upstream.slug!r}): {label} refused its credentials ({status}); check the LLM's key"
    if status == 502:
        return f"LLM {upstream.id} unreachable: {error_type}"
    return f"LLM {upstream.id} answered {status}"


class ChatTurnUser:
    """The user a chat turn is for, and whether the turn is still running (the chat ends it however it ends)."""

    __slots__ = ("user_id", "live")

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.live = True

    def end(self) -> None:
        self.live = False


serving_chat_user: contextvars.ContextVar[ChatTurnUser | None] = contextvars.ContextVar(
    "fjordgate_studio_chat_user", default=None
)
"""The user whose chat turn an agent plugin is serving, set by the chat (`chat.stream`) from the session's owner.

An agent's services are bound to the plugin, not to a user, yet what it asks an LLM for while answering a user's
turn is that user's traffic: `StudioServicesImpl` attributes such calls to this user (their budgets apply, their
id is in the analytics row) while the turn runs. The value comes only from the server side; nothing the plugin
sends can set it. It reaches an in-process plugin's calls the way `current_collector` does: through the context
`run_coroutine_threadsafe` and a plain-def handler's worker thread copy; a task the agent leaves running inherits
it too, which is why a call made after the turn ended (`live` off) is the plugin's own. An isolated plugin's service
calls arrive over its own gRPC broker: the host carries this variable (`PluginHost(carried=...)`), so a service call
sent with the id the host gave the agent's call gets the value while that call runs, and any other is the plugin's.
"""


class StudioLLMCalls:
    """The LLM calls of `StudioServicesImpl`: which LLM and vendor (`_upstream`), whose call (`_call`), its pass
    through the LLM's plugin chain (`_attempt`), then the vendor call, budgets and analytics."""

    plugin_slug: str
    reach: PluginReach
    user_id: int | None
    source: str

    async def _upstream(self, llm_id: int) -> Upstream:
        def read() -> Upstream:
            from control_plane.llms.models import LLM as LLMModel
            from control_plane.llms.secrets import vendor_key_decrypt

            llm = self.reach.visible(LLMModel.objects.filter(pk=llm_id, is_active=True)).first()
            if llm is None:  # another namespace's LLM: missing too (a global one is used, as its edges do)
                raise ServiceError(f"no active LLM {llm_id}")
            preset = VENDORS.get(llm.vendor)
            label = preset.label if preset else llm.vendor
            if preset is None or preset.wire not in _STUDIO_WIRES:
                # each wire puts its key in its own place: sent as an OpenAI Bearer header it could leak
                raise ServiceError(
                    f"LLM {llm.slug!r} is on {label}, which the control plane's own calls do not speak yet "
                    "(call it through an edge)"
                )
            key = vendor_key_decrypt(llm.api_key_encrypted)
            metadata = dict(llm.metadata) if isinstance(llm.metadata, dict) else {}
            problem = _credentials_problem(llm.vendor, key, metadata)
            if problem:
                raise ServiceError(f"LLM {llm.slug!r} on {label} {problem}")
            return Upstream(
                id=llm.pk,
                slug=llm.slug,
                vendor=llm.vendor,
                namespace=llm.namespace,
                base=llm.api_endpoint.rstrip("/"),
                key=key,
                default_model=llm.default_model,
                metadata=metadata,
            )

        return await run_in_db_thread(read)()

    def _call(self, upstream: Upstream, model: str) -> StudioLLMCall:
        user_id, source = self.user_id, self.source
        if user_id is None and (turn := serving_chat_user.get()) is not None and turn.live:
            user_id, source = turn.user_id, "chat"  # an agent answering a user's chat turn: that user's call
        return StudioLLMCall(
            llm_id=upstream.id,
            llm_slug=upstream.slug,
            vendor=upstream.vendor,
            namespace=upstream.namespace,
            model=model or upstream.default_model,
            plugin_slug=self.plugin_slug,
            user_id=user_id,
            source=source,
        )

    @contextlib.asynccontextmanager
    async def _attempt(
        self, upstream: Upstream, call: StudioLLMCall, request: StudioRequest
    ) -> AsyncIterator[StudioAttempt]:
        """The call's pass through its LLM's plugin chain (`studio_chain`, `studio_hooks`), as at an edge. The
        chain's plugin instances are held until the block ends (a streamed call's last chunk, or its consumer
        closing it): one a reload replaces meanwhile is stopped only then (`studio_chain_take`)."""
        chain = await taken(run_in_db_thread(studio_chain_take)(upstream.id), studio_chain_release)
        try:
            if chain.broken is not None:
                record = run_in_db_thread(studio_llm_call_record)
                await record(call=call, status_code=503, error_type="plugin_unavailable")
                raise ServiceError(f"plugin {chain.broken!r} is required for LLM {upstream.slug!r} but is not loaded")
            yield StudioAttempt(chain.hooks, chain.loop, self._hook_context(upstream, call), request)
        finally:
            studio_chain_release(chain)

    @staticmethod
    def _hook_context(upstream: Upstream, call: StudioLLMCall) -> Context:
        """What the chain's hooks see of the call: its LLM, its user, where it comes from (as an edge's request)."""
        return Context(
            runtime=Runtime.STUDIO,
            request_id=call.request_id,
            user=User(id=call.user_id) if call.user_id is not None else None,
            llm=LLM(
                id=upstream.id,
                slug=upstream.slug,
                vendor=upstream.vendor,
                default_model=upstream.default_model,
                namespace=upstream.namespace,
            ),
            edge_id=STUDIO_EDGE_ID,
            namespace=upstream.namespace,
            metadata={"source": call.source, "plugin": call.plugin_slug},
        )

    async def _short_circuited(self, call: StudioLLMCall, prepared: Prepared) -> None:
        """A request hook answered: recorded like an edge's short-circuit (a budget refusal already was)."""
        sc = prepared.short_circuit
        if sc is None or prepared.phase == "admit":
            return
        if sc.error is not None:
            status, error_type = sc.error.status_code, sc.error.code or sc.error.type
        else:
            status, error_type = (sc.response.status_code if sc.response is not None else 200), ""
        await run_in_db_thread(studio_llm_call_record)(call=call, status_code=status, error_type=error_type)

    async def call_llm(
        self,
        llm_id: int,
        messages: list[LLMMessage],
        *,
        model: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> LLMCallResponse:
        """A non-streamed call to the LLM's upstream (every wire `studio_vendor` speaks), governed like an edge call:
        the LLM's plugin chain runs around it (`studio_hooks`: a request hook may rewrite or block it, a response
        hook rewrite the reply), it is refused when one of its budgets is exhausted, and recorded in analytics
        either way (`studio_llm`)."""
        upstream = await self._upstream(llm_id)
        call = self._call(upstream, model)
        request = StudioRequest(call.model, list(messages), temperature, max_tokens, tools)
        async with self._attempt(upstream, call, request) as attempt:
            admission = _Admission(call)
            prepared = await attempt.prepare(admission)
            if prepared.short_circuit is not None:
                await self._short_circuited(admission.call, prepared)
                return _answer(llm_id, await attempt.short_circuit_reply(prepared.short_circuit))
            call, request = admission.call, attempt.request
            started = time.perf_counter()
            status, answer, error_type = await vendor_call(
                upstream,
                call.model,
                request.messages,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                tools=request.tools,
            )
            await run_in_db_thread(studio_llm_call_record)(
                call=call,
                status_code=status,
                reserved=admission.reserved,
                prompt_tokens=answer.prompt_tokens if answer else 0,
                completion_tokens=answer.completion_tokens if answer else 0,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                error_type=error_type,
            )
            if attempt.hooks is None:
                if answer is None:
                    raise ServiceError(_failure(upstream, status, error_type))
                return answer
            if answer is None:
                error = PluginError(status_code=status, message=_failure(upstream, status, error_type), type=error_type)
                return _answer(llm_id, await attempt.reply(status, b"", error))
            return _answer(llm_id, await attempt.reply(status, completion_body(answer, call.request_id), None))

    async def stream_llm(
        self,
        llm_id: int,
        messages: list[LLMMessage],
        *,
        model: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> AsyncIterator[LLMCallChunk]:
        """The answer as the vendor streams it, governed like `call_llm` (each piece passes the chain's chunk
        hooks, `on_stream_complete` runs at the end); the tool calls it asks for come whole in the last chunk.
        Usage is recorded when the stream ends, however it ends: a stream the caller closes early (the chat's user
        left) is recorded with the text that was generated so far (estimated at four characters per token when the
        vendor never said)."""
        upstream = await self._upstream(llm_id)
        call = self._call(upstream, model)
        request = StudioRequest(call.model, list(messages), temperature, max_tokens, tools, stream=True)
        async with self._attempt(upstream, call, request) as attempt:
            admission = _Admission(call)
            prepared = await attempt.prepare(admission)
            if prepared.short_circuit is not None:
                await self._short_circuited(admission.call, prepared)
                async for chunk in _short_circuit_stream(llm_id, attempt, prepared.short_circuit):
                    yield chunk
                return
            call, request = admission.call, attempt.request
            refused = await attempt.stream_start()
            if refused is not None:
                await run_in_db_thread(studio_llm_call_record)(
                    call=call, status_code=refused.status_code, reserved=admission.reserved, error_type=refused.type
                )
                raise ServiceError(refused.message)
            end = StreamEnd()
            started = time.perf_counter()
            status, error_type, chars = 200, "", 0
            failed: PluginCallError | None = None
            try:
                async for text in vendor_stream(
                    upstream,
                    call.model,
                    request.messages,
                    end,
                    temperature=request.temperature,
                    max_tokens=request.max_tokens,
                    tools=request.tools,
                ):
                    chars += len(text)
                    for piece in await attempt.chunk(attempt.text_event(text)):
                        yield LLMCallChunk(content=piece)
                for event in (attempt.finish_event(end.finish_reason or "stop"), DONE):
                    for piece in await attempt.chunk(event):
                        yield LLMCallChunk(content=piece)
            except VendorStreamError as exc:
                status, error_type = exc.status, exc.error_type
            except PluginCallError as exc:  # a fail-closed chunk hook failed: the stream ends with an error
                failed = exc
            except (asyncio.CancelledError, GeneratorExit):
                status, error_type = 499, "client_closed"
                raise
            finally:
                record = run_in_db_thread(studio_llm_call_record)(
                    call=call,
                    status_code=status,
                    reserved=admission.reserved,
                    prompt_tokens=end.prompt_tokens or studio_llm_prompt_estimate(request.messages),
                    completion_tokens=end.completion_tokens or (chars + 3) // 4,
                    latency_ms=(time.perf_counter() - started) * 1000.0,
                    error_type=error_type,
                )
                await asyncio.shield(record)
            await attempt.stream_complete(500 if failed is not None else status)
            if failed is not None:
                raise ServiceError(f"plugin '{failed.slug}' failed")
            if status >= 400:
                raise ServiceError(_failure(upstream, status, error_type))
            calls = end.whole_tool_calls()
            finish = "tool_calls" if calls else end.finish_reason or "stop"
            yield LLMCallChunk(finish_reason=finish, done=True, tool_calls=calls)

    async def _reserve(self, call: StudioLLMCall, messages: list[LLMMessage], max_tokens: int | None) -> Decimal:
        """Hold the call's cost in the LLM's budgets; a refusal is recorded (402) and raised as `ServiceError`."""
        refusal, reserved = await run_in_db_thread(studio_llm_reserve)(
            call=call, messages=messages, max_tokens=max_tokens
        )
        if refusal is not None:
            await run_in_db_thread(studio_llm_call_record)(call=call, status_code=402, error_type="budget_exceeded")
            raise ServiceError(refusal)
        return cast(Decimal, reserved)

    async def embed(self, llm_id: int, texts: list[str], *, model: str = "") -> list[list[float]]:
        """One vector per text from the LLM's embeddings API, accounted like `call_llm` (budgets refuse, one
        analytics row): the datasources' documents and the chat's questions cost what an edge call would. The
        LLM's plugin chain does not run: its hooks are written for chat completions."""
        upstream = await self._upstream(llm_id)
        call = self._call(upstream, model)
        messages = [LLMMessage(role="user", content=text) for text in texts]
        reserved = await self._reserve(call, messages, 0)
        started = time.perf_counter()
        answer = await vendor_embed(upstream, call.model, texts)
        await run_in_db_thread(studio_llm_call_record)(
            call=call,
            status_code=answer.status,
            reserved=reserved,
            prompt_tokens=answer.prompt_tokens or studio_llm_prompt_estimate(messages),
            latency_ms=(time.perf_counter() - started) * 1000.0,
            error_type=answer.error_type,
        )
        if answer.status >= 400:
            raise ServiceError(_failure(upstream, answer.status, answer.error_type))
        return answer.vectors


class _Admission:
    """The budgets step of a call's request phase: the call as the hooks left it (its model may have changed),
    held in its budgets; a refusal is recorded (402) and ends the attempt with the edge's message."""

    def __init__(self, call: StudioLLMCall) -> None:
        self.call = call
        self.reserved = Decimal(0)

    async def __call__(self, request: StudioRequest) -> None:
        self.call = dataclasses.replace(self.call, model=request.model or self.call.model)
        refusal, reserved = await run_in_db_thread(studio_llm_reserve)(
            call=self.call, messages=request.messages, max_tokens=request.max_tokens
        )
        if refusal is not None:
            await run_in_db_thread(studio_llm_call_record)(
                call=self.call, status_code=402, error_type="budget_exceeded"
            )
            error = PluginError(
                status_code=402, message=refusal, type="budget_exceeded", code="budget_exceeded", allow_fallbacks=False
            )
            raise AttemptRefused(error)
        self.reserved = cast(Decimal, reserved)


def _plugin_failure(llm_id: int, status: int, error_type: str) -> str:
    """The message of an error reply a plugin wrote (or left) without a message of its own."""
    return f"LLM {llm_id} unreachable: {error_type}" if status == 502 else f"LLM {llm_id} answered {status}"


def _reply_body(llm_id: int, written: ResponseWriteRequest) -> bytes:
    """The body of a reply as the response hooks left it; `ServiceError` when it is (still) an error."""
    if written.error is not None:
        raise ServiceError(
            written.error.message or _plugin_failure(llm_id, written.error.status_code, written.error.type)
        )
    if written.status_code >= 400:
        raise ServiceError(_plugin_failure(llm_id, written.status_code, "plugin"))
    return written.body


def _answer(llm_id: int, written: ResponseWriteRequest) -> LLMCallResponse:
    try:
        return answer_of(_reply_body(llm_id, written))
    except ValueError:
        raise ServiceError(f"LLM {llm_id}: a plugin answered with a body that is not a chat completion") from None


async def _short_circuit_stream(llm_id: int, attempt: StudioAttempt, sc: ShortCircuit) -> AsyncIterator[LLMCallChunk]:
    """A request hook's answer to a streamed call: its chunks (or its reply, replayed as chunks) through the
    chunk hooks; an error, unless a response hook recovers it, is raised as `ServiceError`."""
    events = attempt.short_circuit_events(sc)
    try:
        if events is None and sc.error is not None:
            written = await attempt.short_circuit_reply(sc)  # error hooks, as an edge answers a stream's error
            events = attempt.reply_events(_reply_body(llm_id, written))
        elif events is None:
            assert sc.response is not None
            if sc.response.status_code >= 400:
                raise ServiceError(_plugin_failure(llm_id, sc.response.status_code, "plugin"))
            events = attempt.reply_events(sc.response.body)
    except ValueError:
        raise ServiceError(f"LLM {llm_id}: a plugin answered with a body that is not a chat completion") from None
    try:
        for event in events:
            for piece in await attempt.chunk(event):
                yield LLMCallChunk(content=piece)
    except PluginCallError as exc:
        raise ServiceError(f"plugin '{exc.slug}' failed") from None
    await attempt.stream_complete(200)
    yield LLMCallChunk(finish_reason="stop", done=True)
