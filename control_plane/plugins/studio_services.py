"""The services a plugin gets in the studio runtime: PostgreSQL KV, the studio event bus, management services.

They run on the studio host's event loop; every ORM call goes through `sync_to_async` so the loop never blocks on
the database and Django's per-thread connections stay in worker threads. DOWN events leave through the event
outbox (`OutboundEvent`): whichever control-plane process a plugin runs in, the leader bridge sends them on.

An LLM call (`call_llm`, `stream_llm`; plugins, agents and the portal's chat) is governed as an edge governs a
request to that LLM: its plugin chain (`studio_chain`: the namespace's global plugins, then the LLM's bindings,
loaded once per change) runs around it (`studio_hooks`: request hooks may rewrite or block it, response and chunk
hooks rewrite the reply, `on_stream_complete` ends a stream), its budgets may refuse it, and it is recorded in
analytics (`studio_llm`). A block is a `ServiceError` carrying the plugin's message; nothing reaches the vendor.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, cast

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from control_plane.audit.actor import acting_as
from shared_sdk import Context, PluginCallError, Runtime, ServiceError
from shared_sdk.attempt import AttemptRefused, Prepared
from shared_sdk.context import EventBus, EventHandler, KVStore, StudioServices, deliver, topic_matches
from shared_sdk.messages import (
    LLM,
    App,
    Direction,
    Event,
    LLMCallChunk,
    LLMCallResponse,
    LLMMessage,
    PluginError,
    ResponseWriteRequest,
    ShortCircuit,
    Tool,
    User,
)
from shared_sdk.vendors import VENDORS, valid_region

from .studio_chain import studio_chain_get
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

if TYPE_CHECKING:
    from control_plane.applications.models import App as AppModel

__all__ = [
    "ChatTurnUser",
    "EventCollector",
    "StudioEventBus",
    "StudioKV",
    "StudioServicesImpl",
    "current_collector",
    "serving_chat_user",
    "studio_app_update_install",
]

logger = logging.getLogger(__name__)


def _db(fn: Callable[..., Any]) -> Callable[..., Any]:
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


class StudioKV(KVStore):
    """A plugin's KV namespace in the shared `kv_kventry` table (values up to 5 MB, optional TTL)."""

    def __init__(self, plugin_slug: str) -> None:
        self.plugin_slug = plugin_slug

    async def read(self, key: str) -> bytes | None:
        from control_plane.kv.services import kv_read

        return await _db(kv_read)(plugin_slug=self.plugin_slug, key=key)

    async def write(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        from django.core.exceptions import ValidationError

        from control_plane.kv.services import kv_write

        try:
            await _db(kv_write)(plugin_slug=self.plugin_slug, key=key, value=value, ttl_s=ttl_s)
        except ValidationError as exc:
            raise ServiceError("; ".join(exc.messages)) from None

    async def delete(self, key: str) -> bool:
        from control_plane.kv.services import kv_delete

        return await _db(kv_delete)(plugin_slug=self.plugin_slug, key=key)

    async def list(self, prefix: str = "") -> list[str]:
        from control_plane.kv.services import kv_list

        return await _db(kv_list)(plugin_slug=self.plugin_slug, prefix=prefix)


class EventCollector:
    """The DOWN events a plugin publishes while one `call_plugin` call runs.

    `call_plugin` writes them to the outbox itself, on the caller's thread and connection, so they join the
    caller's transaction (an object hook's event about a change that rolls back is never sent). The plugin loop
    sees the collector through a context variable; a task the plugin started during the call inherits it, so
    once the call returned the collector is closed and later events are written at once instead.
    """

    __slots__ = ("_lock", "_events", "_open")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._open = True

    def add(self, event: Event) -> bool:
        with self._lock:
            if self._open:
                self._events.append(event)
            return self._open

    def close(self) -> list[Event]:
        with self._lock:
            self._open = False
            events, self._events = self._events, []
        return events


current_collector: contextvars.ContextVar[EventCollector | None] = contextvars.ContextVar(
    "fjordgate_studio_event_collector", default=None
)


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


def _outbox_add(events: list[Event]) -> None:
    from .event_outbox import outbound_event_add

    outbound_event_add(events=events)


class StudioEventBus(EventBus):
    """In-process pub/sub between studio plugins; DOWN events also go to the event outbox for the edges.

    Every control-plane process (web, worker, bridge) has its own bus; only the bridge talks to NATS, so a DOWN
    event leaves through the `OutboundEvent` table, which the leader bridge drains in order. Local subscribers
    of this process get every event as LOCAL (what the edges get, too), never twice.
    """

    def __init__(self, source: str = "", shared: dict[str, tuple[str, EventHandler]] | None = None) -> None:
        self.source = source
        self._subs: dict[str, tuple[str, EventHandler]] = {} if shared is None else shared

    def bound(self, source: str) -> StudioEventBus:
        return StudioEventBus(source, self._subs)

    async def publish_event(self, event: Event) -> None:
        if not event.source:
            event.source = self.source
        if event.direction is Direction.DOWN:
            await self._queue_down(event)
        local = event if event.direction is Direction.LOCAL else _as_local(event)
        for pattern, handler in list(self._subs.values()):
            if pattern == "" or topic_matches(pattern, event.topic):
                try:
                    await deliver(handler, local)
                except Exception:
                    logger.exception("event handler for %s failed", event.topic)

    async def _queue_down(self, event: Event) -> None:
        from .event_outbox import outbound_event_validate

        try:
            outbound_event_validate(event)
        except ValueError as exc:
            raise ServiceError(f"event {event.topic!r} cannot go down: {exc}") from None
        collector = current_collector.get()
        if collector is None or not collector.add(event):
            await _db(_outbox_add)([event])

    async def subscribe(self, topic: str, handler: EventHandler) -> str:
        sub_id = uuid.uuid4().hex
        self._subs[sub_id] = (topic, handler)
        return sub_id

    async def subscribe_all(self, handler: EventHandler) -> str:
        return await self.subscribe("", handler)

    async def unsubscribe(self, subscription_id: str) -> bool:
        return self._subs.pop(subscription_id, None) is not None


def _as_local(event: Event) -> Event:
    import msgspec

    return msgspec.structs.replace(event, direction=Direction.LOCAL)


# ----------------------------------------------------------------------------------------------------------------
# Management services
# ----------------------------------------------------------------------------------------------------------------


class AppUpdate(Protocol):
    """The applications app's write service (`app_update`): object hooks, then the write and its config change."""

    def __call__(self, *, app: AppModel, data: dict[str, Any]) -> AppModel: ...


_app_update: AppUpdate | None = None


def studio_app_update_install(update: AppUpdate) -> None:
    """Hand the studio services the app write they expose to plugins (`PluginsConfig.ready` does, at start-up).

    A plugin's app write must run the app's object hooks, and those call plugins: the applications services sit
    above the plugin runtime (applications -> hooks -> runtime -> studio services), so importing them here would
    close an import circle.
    """
    global _app_update
    _app_update = update


def _update_app(app: AppModel, data: dict[str, Any]) -> AppModel:
    if _app_update is None:
        raise ServiceError("app writes are unavailable: the control plane's plugins app is not ready")
    return _app_update(app=app, data=data)


def _app(app: Any) -> App:
    return App(
        id=app.pk,
        name=app.name,
        description=app.description,
        owner_id=app.owner_id,
        namespace=app.namespace,
        is_active=app.is_active,
        llm_ids=sorted(app.llms.values_list("pk", flat=True)),
        tool_ids=sorted(app.tools.values_list("pk", flat=True)),
        datasource_ids=sorted(app.datasources.values_list("pk", flat=True)),
        tags=sorted(app.tags.values_list("name", flat=True)),
        rate_limit_rpm=app.rate_limit_rpm,
        allowed_ips=list(app.allowed_ips),
        metadata=dict(app.metadata),
    )


def _llm(llm: Any) -> LLM:
    return LLM(
        id=llm.pk,
        slug=llm.slug,
        name=llm.name,
        vendor=llm.vendor,
        api_endpoint=llm.api_endpoint,
        default_model=llm.default_model,
        allowed_models=list(llm.allowed_models),
        privacy_score=llm.privacy_score,
        is_active=llm.is_active,
        namespace=llm.namespace,
        metadata=dict(llm.metadata),
    )


def _user(user: Any) -> User:
    profile = getattr(user, "fjordgate_profile", None)
    return User(
        id=user.pk,
        email=user.email,
        name=user.get_full_name(),
        is_admin=user.is_staff,
        groups=sorted(user.groups.values_list("name", flat=True)),
        metadata=dict(profile.metadata) if profile else {},
    )


def _page(page: int, limit: int) -> slice:
    page, limit = max(page, 1), min(max(limit, 1), 500)
    return slice((page - 1) * limit, page * limit)


class StudioServicesImpl(StudioServices):
    """Management services over the ORM; writes go through the domain services, so object hooks still run.

    One per plugin (`plugin_slug`), so what a plugin spends on LLM calls is attributed to it in analytics; the
    portal's chat makes one per conversation turn with the user (`user_id`, `source="chat"`). An agent plugin's
    calls made while it serves a chat turn are also the chatting user's (`serving_chat_user`).
    """

    def __init__(self, plugin_slug: str = "", *, user_id: int | None = None, source: str = "studio") -> None:
        self.plugin_slug = plugin_slug
        self.user_id = user_id
        self.source = source

    def _write(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """`_db(fn)` with the write attributed to this plugin in the audit trail. `call_plugin` already does so
        for an in-process plugin; an isolated plugin's service calls arrive over its broker, outside that call."""
        slug = self.plugin_slug

        def run() -> Any:
            if not slug:
                return fn()
            with acting_as("plugin", slug, "plugin"):
                return fn()

        return _db(run)

    async def get_app(self, app_id: int) -> App | None:
        def read() -> App | None:
            from control_plane.applications.models import App as AppModel

            app = AppModel.objects.filter(pk=app_id).first()
            return _app(app) if app else None

        return await _db(read)()

    async def list_apps(
        self,
        page: int = 1,
        limit: int = 50,
        *,
        owner_id: int | None = None,
        namespace: str | None = None,
        is_active: bool | None = None,
    ) -> list[App]:
        def read() -> list[App]:
            from control_plane.applications.models import App as AppModel

            qs = AppModel.objects.order_by("pk")
            if owner_id is not None:
                qs = qs.filter(owner_id=owner_id)
            if namespace is not None:
                qs = qs.filter(namespace=namespace)
            if is_active is not None:
                qs = qs.filter(is_active=is_active)
            return [_app(a) for a in qs[_page(page, limit)]]

        return await _db(read)()

    async def update_app_metadata(self, app_id: int, metadata: dict[str, Any]) -> App:
        def write() -> App:
            from control_plane.applications.models import App as AppModel

            app = AppModel.objects.filter(pk=app_id).first()
            if app is None:
                raise ServiceError(f"no app {app_id}")
            return _app(_update_app(app, {"metadata": dict(metadata)}))

        return await self._write(write)()

    async def patch_app_metadata(self, app_id: int, key: str, value: Any = None, *, delete: bool = False) -> dict:
        def write() -> dict:
            from django.db import transaction

            from control_plane.applications.models import App as AppModel

            with transaction.atomic():
                app = AppModel.objects.select_for_update().filter(pk=app_id).first()
                if app is None:
                    raise ServiceError(f"no app {app_id}")
                metadata = dict(app.metadata)
                if delete:
                    metadata.pop(key, None)
                else:
                    metadata[key] = value
                return dict(_update_app(app, {"metadata": metadata}).metadata)

        return await self._write(write)()

    async def get_user(self, user_id: int) -> User | None:
        def read() -> User | None:
            from django.contrib.auth import get_user_model

            user = get_user_model().objects.filter(pk=user_id).first()
            return _user(user) if user else None

        return await _db(read)()

    async def get_llm(self, llm_id: int) -> LLM | None:
        def read() -> LLM | None:
            from control_plane.llms.models import LLM as LLMModel

            llm = LLMModel.objects.filter(pk=llm_id).first()
            return _llm(llm) if llm else None

        return await _db(read)()

    async def list_llms(self, page: int = 1, limit: int = 50) -> list[LLM]:
        def read() -> list[LLM]:
            from control_plane.llms.models import LLM as LLMModel

            return [_llm(x) for x in LLMModel.objects.order_by("pk")[_page(page, limit)]]

        return await _db(read)()

    async def list_tools(self, page: int = 1, limit: int = 50) -> list[Tool]:
        def read() -> list[Tool]:
            from control_plane.catalog.models import Tool as ToolModel

            return [
                Tool(
                    id=t.pk,
                    slug=t.slug,
                    name=t.name,
                    description=t.description,
                    privacy_score=t.privacy_score,
                    operations=[str(o) for o in t.operations],
                    metadata=dict(t.metadata),
                )
                for t in ToolModel.objects.order_by("pk")[_page(page, limit)]
            ]

        return await _db(read)()

    async def _upstream(self, llm_id: int) -> Upstream:
        def read() -> Upstream:
            from control_plane.llms.models import LLM as LLMModel
            from control_plane.llms.secrets import vendor_key_decrypt

            llm = LLMModel.objects.filter(pk=llm_id, is_active=True).first()
            if llm is None:
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

        return await _db(read)()

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

    async def _attempt(self, upstream: Upstream, call: StudioLLMCall, request: StudioRequest) -> StudioAttempt:
        """The call's pass through its LLM's plugin chain (`studio_chain`, `studio_hooks`), as at an edge."""
        chain = await _db(studio_chain_get)(upstream.id)
        if chain.broken is not None:
            await _db(studio_llm_call_record)(call=call, status_code=503, error_type="plugin_unavailable")
            raise ServiceError(f"plugin {chain.broken!r} is required for LLM {upstream.slug!r} but is not loaded")
        ctx = Context(
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
        return StudioAttempt(chain.hooks, chain.loop, ctx, request)

    async def _short_circuited(self, call: StudioLLMCall, prepared: Prepared) -> None:
        """A request hook answered: recorded like an edge's short-circuit (a budget refusal already was)."""
        sc = prepared.short_circuit
        if sc is None or prepared.phase == "admit":
            return
        if sc.error is not None:
            status, error_type = sc.error.status_code, sc.error.code or sc.error.type
        else:
            status, error_type = (sc.response.status_code if sc.response is not None else 200), ""
        await _db(studio_llm_call_record)(call=call, status_code=status, error_type=error_type)

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
        attempt = await self._attempt(upstream, call, request)
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
        await _db(studio_llm_call_record)(
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
        attempt = await self._attempt(upstream, call, request)
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
            await _db(studio_llm_call_record)(
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
            record = _db(studio_llm_call_record)(
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
        refusal, reserved = await _db(studio_llm_reserve)(call=call, messages=messages, max_tokens=max_tokens)
        if refusal is not None:
            await _db(studio_llm_call_record)(call=call, status_code=402, error_type="budget_exceeded")
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
        await _db(studio_llm_call_record)(
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
        refusal, reserved = await _db(studio_llm_reserve)(
            call=self.call, messages=request.messages, max_tokens=request.max_tokens
        )
        if refusal is not None:
            await _db(studio_llm_call_record)(call=self.call, status_code=402, error_type="budget_exceeded")
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
