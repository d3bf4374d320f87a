"""The services a plugin gets in the studio runtime: PostgreSQL KV, the studio event bus, management services.

They run on the studio host's event loop; every ORM call goes through `sync_to_async` so the loop never blocks on
the database and Django's per-thread connections stay in worker threads. DOWN events leave through the event
outbox (`OutboundEvent`): whichever control-plane process a plugin runs in, the leader bridge sends them on.

An LLM call (`call_llm`, `stream_llm`, `embed`; plugins, agents and the portal's chat) is governed as an edge
governs a request to that LLM: `studio_calls` (mixed in here).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from control_plane.audit.actor import acting_as
from shared_sdk import ServiceError
from shared_sdk.context import EventBus, EventHandler, KVStore, StudioServices, deliver, topic_matches
from shared_sdk.messages import LLM, App, Direction, Event, Tool, User

from .reach import EVERYWHERE, PluginReach
from .studio_calls import ChatTurnUser, StudioLLMCalls, serving_chat_user
from .studio_calls import run_in_db_thread as _db

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


def _outbox_add(events: list[Event]) -> None:
    from .event_outbox import outbound_event_add

    outbound_event_add(events=events)


class StudioEventBus(EventBus):
    """In-process pub/sub between studio plugins; DOWN events also go to the event outbox for the edges.

    Every control-plane process (web, worker, bridge) has its own bus; only the bridge talks to NATS, so a DOWN
    event leaves through the `OutboundEvent` table, which the leader bridge drains in order. Local subscribers
    of this process get every event as LOCAL (what the edges get, too), never twice.

    Each plugin gets the bus `bound` to its slug and its `PluginReach`: its subscriptions hear only the events of
    its namespace and of namespace "" (a global plugin's hear all), and what it publishes stays in its namespace.
    """

    def __init__(
        self,
        source: str = "",
        shared: dict[str, tuple[str, EventHandler, PluginReach]] | None = None,
        reach: PluginReach = EVERYWHERE,
    ) -> None:
        self.source = source
        self.reach = reach
        self._subs: dict[str, tuple[str, EventHandler, PluginReach]] = {} if shared is None else shared

    def bound(self, source: str, reach: PluginReach = EVERYWHERE) -> StudioEventBus:
        return StudioEventBus(source, self._subs, reach)

    async def publish_event(self, event: Event) -> None:
        if self.source:  # a plugin's bus: its events name that plugin, never one it claims to be
            event.source = self.source
        try:
            event.namespace = self.reach.publishing_namespace(event.namespace)
        except ValueError as exc:
            raise ServiceError(f"event {event.topic!r} not published: {exc}") from None
        if event.direction is Direction.DOWN:
            await self._queue_down(event)
        local = event if event.direction is Direction.LOCAL else _as_local(event)
        for pattern, handler, reach in list(self._subs.values()):
            if (pattern == "" or topic_matches(pattern, event.topic)) and reach.hears(event.namespace):
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
        self._subs[sub_id] = (topic, handler, self.reach)
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


class StudioServicesImpl(StudioLLMCalls, StudioServices):
    """Management services over the ORM; writes go through the domain services, so object hooks still run.

    One per plugin (`plugin_slug`), so what a plugin spends on LLM calls is attributed to it in analytics; the
    portal's chat makes one per conversation turn with the user (`user_id`, `source="chat"`). An agent plugin's
    calls made while it serves a chat turn are also the chatting user's (`serving_chat_user`).

    `reach` confines a namespaced plugin to its namespace (`control_plane.plugins.reach`): every read is filtered
    by it, every write checked against it.
    """

    def __init__(
        self,
        plugin_slug: str = "",
        *,
        reach: PluginReach = EVERYWHERE,
        user_id: int | None = None,
        source: str = "studio",
    ) -> None:
        self.plugin_slug = plugin_slug
        self.reach = reach
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

            app = self.reach.visible(AppModel.objects.filter(pk=app_id)).first()
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

            qs = self.reach.visible(AppModel.objects.order_by("pk"))
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
            app = self._writable_app(app_id)
            return _app(_update_app(app, {"metadata": dict(metadata)}))

        return await self._write(write)()

    async def patch_app_metadata(self, app_id: int, key: str, value: Any = None, *, delete: bool = False) -> dict:
        def write() -> dict:
            from django.db import transaction

            with transaction.atomic():
                app = self._writable_app(app_id, lock=True)
                metadata = dict(app.metadata)
                if delete:
                    metadata.pop(key, None)
                else:
                    metadata[key] = value
                return dict(_update_app(app, {"metadata": metadata}).metadata)

        return await self._write(write)()

    def _writable_app(self, app_id: int, *, lock: bool = False) -> AppModel:
        """App `app_id` if this plugin may change it (`lock`: `SELECT ... FOR UPDATE`, inside a transaction).

        `ServiceError` when the plugin does not see it (missing, or another namespace's: the same message) or may
        only read it (a global app, for a namespaced plugin)."""
        from control_plane.applications.models import App as AppModel

        queryset = AppModel.objects.select_for_update() if lock else AppModel.objects.all()
        app = self.reach.visible(queryset.filter(pk=app_id)).first()
        if app is None:
            raise ServiceError(self.reach.missing("app", app_id))
        refusal = self.reach.write_refusal("app", app.namespace)
        if refusal is not None:
            raise ServiceError(refusal)
        return app

    async def get_user(self, user_id: int) -> User | None:
        def read() -> User | None:
            from django.contrib.auth import get_user_model

            user = self.reach.visible_users(get_user_model().objects.filter(pk=user_id)).first()
            return _user(user) if user else None

        return await _db(read)()

    async def get_llm(self, llm_id: int) -> LLM | None:
        def read() -> LLM | None:
            from control_plane.llms.models import LLM as LLMModel

            llm = self.reach.visible(LLMModel.objects.filter(pk=llm_id)).first()
            return _llm(llm) if llm else None

        return await _db(read)()

    async def list_llms(self, page: int = 1, limit: int = 50) -> list[LLM]:
        def read() -> list[LLM]:
            from control_plane.llms.models import LLM as LLMModel

            return [_llm(x) for x in self.reach.visible(LLMModel.objects.order_by("pk"))[_page(page, limit)]]

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
                for t in self.reach.visible(ToolModel.objects.order_by("pk"))[_page(page, limit)]
            ]

        return await _db(read)()
