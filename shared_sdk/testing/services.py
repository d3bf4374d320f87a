"""In-memory implementations of every service interface, for plugin unit tests and the SDK's own tests.

They behave like the real ones where a plugin can notice (TTL expiry, prefix listing, event routing by
direction, wildcards, runtime-specific services), and record what happened so a test can assert on it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import msgspec

from ..context import (
    EventBus,
    EventHandler,
    GatewayServices,
    KVStore,
    PluginLogger,
    Services,
    StudioServices,
    deliver,
    topic_matches,
)
from ..errors import ServiceError
from ..messages import (
    LLM,
    App,
    BudgetStatus,
    Direction,
    EdgePayload,
    Event,
    LLMCallChunk,
    LLMCallResponse,
    LLMMessage,
    Runtime,
    Tool,
    User,
)
from ..sync_protocol import edge_payload_problem

__all__ = [
    "InMemoryEventHub",
    "InMemoryEvents",
    "InMemoryGateway",
    "InMemoryKV",
    "InMemoryStudio",
    "LogRecord",
    "RecordingLogger",
    "make_services",
]


class InMemoryKV(KVStore):
    """A dict with TTLs; `clock` is injectable so tests can expire keys without sleeping."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.data: dict[str, tuple[bytes, float | None]] = {}

    def _live(self, key: str) -> bytes | None:
        item = self.data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and self.clock() >= expires:
            del self.data[key]
            return None
        return value

    async def read(self, key: str) -> bytes | None:
        return self._live(key)

    async def write(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        if not isinstance(value, bytes | bytearray):
            raise ServiceError(f"KV values are bytes, got {type(value).__name__}")
        self.data[key] = (bytes(value), self.clock() + ttl_s if ttl_s is not None else None)

    async def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    async def list(self, prefix: str = "") -> list[str]:
        return sorted(k for k in list(self.data) if k.startswith(prefix) and self._live(k) is not None)


class LogRecord(msgspec.Struct, frozen=True):
    level: int
    message: str
    fields: dict[str, Any]


class RecordingLogger(PluginLogger):
    """Keeps every record in `records`; `messages(level)` is the common assertion helper."""

    def __init__(self, plugin: str = "") -> None:
        self.plugin = plugin
        self.records: list[LogRecord] = []

    def log(self, level: int, message: str, **fields: Any) -> None:
        self.records.append(LogRecord(level, message, dict(fields)))

    def messages(self, level: int | None = None) -> list[str]:
        return [r.message for r in self.records if level is None or r.level == level]


class InMemoryEventHub:
    """The bus shared by the plugins of one simulated node.

    LOCAL events reach local subscribers; UP/DOWN events are queued in `sent` (they would leave the node).
    `receive(event)` simulates an event arriving from the other tier: delivered locally as LOCAL.
    `payloads` holds what the node's plugins sent with `gateway.send_payload`, as the studio half would receive
    it (`EdgePayload` with the plugin slug, edge id and namespace filled in).
    """

    def __init__(self) -> None:
        self.subscriptions: dict[str, tuple[str | None, EventHandler]] = {}
        self.published: list[Event] = []
        self.sent: list[Event] = []
        self.payloads: list[EdgePayload] = []

    async def publish(self, event: Event) -> None:
        self.published.append(event)
        if event.direction is Direction.LOCAL:
            await self._deliver(event)
        else:
            self.sent.append(event)

    async def receive(self, event: Event) -> None:
        await self._deliver(msgspec.structs.replace(event, direction=Direction.LOCAL))

    async def _deliver(self, event: Event) -> None:
        for topic, handler in list(self.subscriptions.values()):
            if topic is None or topic_matches(topic, event.topic):
                await deliver(handler, event)

    def bus(self, source: str = "") -> InMemoryEvents:
        return InMemoryEvents(self, source)


class InMemoryEvents(EventBus):
    def __init__(self, hub: InMemoryEventHub | None = None, source: str = "") -> None:
        self.hub = hub or InMemoryEventHub()
        self.source = source
        self._mine: set[str] = set()

    async def publish_event(self, event: Event) -> None:
        if self.source and event.source != self.source:  # as both hosts: an event names the plugin that sent it
            event = msgspec.structs.replace(event, source=self.source)
        await self.hub.publish(event)

    async def subscribe(self, topic: str, handler: EventHandler) -> str:
        sub_id = uuid.uuid4().hex
        self.hub.subscriptions[sub_id] = (topic, handler)
        self._mine.add(sub_id)
        return sub_id

    async def subscribe_all(self, handler: EventHandler) -> str:
        sub_id = uuid.uuid4().hex
        self.hub.subscriptions[sub_id] = (None, handler)
        self._mine.add(sub_id)
        return sub_id

    async def unsubscribe(self, subscription_id: str) -> bool:
        self._mine.discard(subscription_id)
        return self.hub.subscriptions.pop(subscription_id, None) is not None


class InMemoryGateway(GatewayServices):
    """Gateway services over plain dicts (what an edge derives from its config snapshot).

    `send_payload` checks what the edge checks (bytes, 1 MiB, str metadata) and records each payload in `payloads`
    (and in the hub's, when given) as the studio half would receive it, so a test can assert what was sent or
    hand it straight to `accept_edge_payload`.
    """

    def __init__(
        self,
        *,
        apps: list[App] | None = None,
        users: list[User] | None = None,
        llms: list[LLM] | None = None,
        credentials: dict[str, int] | None = None,
        budgets: dict[int, BudgetStatus] | None = None,
        plugin_slug: str = "",
        edge_id: str = "edge-test",
        namespace: str = "",
        hub: InMemoryEventHub | None = None,
    ) -> None:
        self.plugin_slug = plugin_slug
        self.edge_id = edge_id
        self.namespace = namespace
        self.hub = hub
        self.payloads: list[EdgePayload] = []
        self.apps = {a.id: a for a in apps or []}
        self.users = {u.id: u for u in users or []}
        self.llms = {m.id: m for m in llms or []}
        self.credentials = dict(credentials or {})
        """credential -> app id"""
        self.budgets = dict(budgets or {})

    async def get_app(self, app_id: int) -> App | None:
        return self.apps.get(app_id)

    async def list_apps(self) -> list[App]:
        return list(self.apps.values())

    async def get_user(self, user_id: int) -> User | None:
        return self.users.get(user_id)

    async def get_llm(self, llm_id: int) -> LLM | None:
        return self.llms.get(llm_id)

    async def get_budget_status(self, app_id: int) -> BudgetStatus:
        return self.budgets.get(app_id) or BudgetStatus(app_id=app_id, spent=Decimal("0"))

    async def validate_credential(self, credential: str) -> bool:
        app_id = self.credentials.get(credential)
        app = self.apps.get(app_id) if app_id is not None else None
        return app is not None and app.is_active

    async def send_payload(
        self, payload: bytes, *, correlation_id: str = "", metadata: dict[str, str] | None = None
    ) -> str:
        problem = edge_payload_problem(payload, metadata, correlation_id)
        if problem is not None:
            raise ServiceError(problem)
        sent = EdgePayload(
            payload=bytes(payload),
            edge_id=self.edge_id,
            edge_namespace=self.namespace,
            correlation_id=correlation_id or uuid.uuid4().hex,
            plugin_slug=self.plugin_slug,
            metadata=dict(metadata or {}),
            edge_timestamp=int(time.time()),
        )
        self.payloads.append(sent)
        if self.hub is not None:
            self.hub.payloads.append(sent)
        return sent.correlation_id


class InMemoryStudio(StudioServices):
    """Studio services over dicts; `llm_responder(llm_id, messages, model)` answers `call_llm` with text, or with
    a whole `LLMCallResponse` (to script tool calls for an agent's tests)."""

    def __init__(
        self,
        *,
        apps: list[App] | None = None,
        users: list[User] | None = None,
        llms: list[LLM] | None = None,
        tools: list[Tool] | None = None,
        llm_responder: Callable[[int, list[LLMMessage], str], str | LLMCallResponse] | None = None,
    ) -> None:
        self.apps = {a.id: a for a in apps or []}
        self.users = {u.id: u for u in users or []}
        self.llms = {m.id: m for m in llms or []}
        self.tools = {t.id: t for t in tools or []}
        self.llm_responder = llm_responder or (lambda llm_id, messages, model: f"echo: {messages[-1].content}")
        self.llm_calls: list[tuple[int, list[LLMMessage], str]] = []
        self.llm_tools: list[list[dict[str, Any]]] = []
        """The `tools` each call offered, in call order."""

    def _app(self, app_id: int) -> App:
        app = self.apps.get(app_id)
        if app is None:
            raise ServiceError(f"app {app_id} does not exist")
        return app

    async def get_app(self, app_id: int) -> App | None:
        return self.apps.get(app_id)

    async def list_apps(
        self,
        page: int = 1,
        limit: int = 50,
        *,
        owner_id: int | None = None,
        namespace: str | None = None,
        is_active: bool | None = None,
    ) -> list[App]:
        apps = [
            a
            for a in self.apps.values()
            if (owner_id is None or a.owner_id == owner_id)
            and (namespace is None or a.namespace == namespace)
            and (is_active is None or a.is_active == is_active)
        ]
        return apps[(page - 1) * limit : page * limit]

    async def update_app_metadata(self, app_id: int, metadata: dict[str, Any]) -> App:
        app = msgspec.structs.replace(self._app(app_id), metadata=dict(metadata))
        self.apps[app_id] = app
        return app

    async def patch_app_metadata(
        self, app_id: int, key: str, value: Any = None, *, delete: bool = False
    ) -> dict[str, Any]:
        metadata = dict(self._app(app_id).metadata)
        if delete:
            metadata.pop(key, None)
        else:
            metadata[key] = value
        self.apps[app_id] = msgspec.structs.replace(self.apps[app_id], metadata=metadata)
        return metadata

    async def get_user(self, user_id: int) -> User | None:
        return self.users.get(user_id)

    async def get_llm(self, llm_id: int) -> LLM | None:
        return self.llms.get(llm_id)

    async def list_llms(self, page: int = 1, limit: int = 50) -> list[LLM]:
        return list(self.llms.values())[(page - 1) * limit : page * limit]

    async def list_tools(self, page: int = 1, limit: int = 50) -> list[Tool]:
        return list(self.tools.values())[(page - 1) * limit : page * limit]

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
        if llm_id not in self.llms:
            raise ServiceError(f"LLM {llm_id} does not exist")
        self.llm_calls.append((llm_id, list(messages), model))
        self.llm_tools.append(list(tools or []))
        text = self.llm_responder(llm_id, messages, model)
        if isinstance(text, LLMCallResponse):  # a scripted answer: tool calls, finish reason, usage as given
            return text
        return LLMCallResponse(
            content=text,
            model=model or self.llms[llm_id].default_model,
            finish_reason="stop",
            prompt_tokens=sum(len(m.content.split()) for m in messages),
            completion_tokens=len(text.split()),
        )

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
        answer = await self.call_llm(
            llm_id, messages, model=model, temperature=temperature, max_tokens=max_tokens, tools=tools
        )
        words = answer.content.split(" ")
        for i, word in enumerate(words):
            await asyncio.sleep(0)
            yield LLMCallChunk(content=word if i == 0 else " " + word)
        yield LLMCallChunk(finish_reason=answer.finish_reason or "stop", done=True, tool_calls=answer.tool_calls)


def make_services(
    runtime: Runtime | str = Runtime.GATEWAY,
    slug: str = "test-plugin",
    *,
    kv: KVStore | None = None,
    logger: PluginLogger | None = None,
    hub: InMemoryEventHub | None = None,
    gateway: GatewayServices | None = None,
    studio: StudioServices | None = None,
) -> Services:
    """A complete in-memory `Services` for `runtime` (the other runtime's services raise, as in production)."""
    runtime = Runtime(runtime)
    hub = hub or InMemoryEventHub()
    if gateway is None and runtime is Runtime.GATEWAY:
        gateway = InMemoryGateway(plugin_slug=slug, hub=hub)
    return Services(
        runtime=runtime,
        kv=kv if kv is not None else InMemoryKV(),
        logger=logger if logger is not None else RecordingLogger(slug),
        events=hub.bus(slug),
        gateway=gateway,
        studio=studio if studio is not None else (InMemoryStudio() if runtime is Runtime.STUDIO else None),
    )
