"""`Context`: what every handler receives, and the host services a plugin may call through it.

The service *interfaces* live here as abstract classes; the runtimes provide implementations:

    service          gateway (edge)                      studio (control plane)          tests
    kv               local SQLite, per edge              PostgreSQL, shared, durable     shared_sdk.testing
    logger           structured, bound to the plugin     same                            same
    events           local bus + NATS up/down            local bus + NATS up/down        in-memory bus
    gateway          apps/LLMs/budgets from snapshot,    -> RuntimeServiceUnavailable    in-memory (payloads
                     payloads up (spool + NATS)                                          recorded)
    studio           -> RuntimeServiceUnavailable        Django selectors/services       in-memory

Every service method is `async`. A plain-`def` handler runs in a worker thread; the host gives it a context
whose services are blocking twins of the same objects (`ctx.services.kv.read(key)` returns the value, not
a coroutine), so one plugin class can mix both styles.

An isolated plugin receives the same interfaces implemented over gRPC back to its host (the broker), so a
plugin never needs to know how it is run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from .errors import RuntimeServiceUnavailable, ServiceError
from .messages import (
    LLM,
    App,
    BudgetStatus,
    ContextData,
    Direction,
    Event,
    LLMCallChunk,
    LLMCallResponse,
    LLMMessage,
    PluginContextInfo,
    Runtime,
    Tool,
    User,
)

__all__ = [
    "Context",
    "Direction",
    "EventBus",
    "EventHandler",
    "GatewayServices",
    "KVStore",
    "PluginLogger",
    "Runtime",
    "Services",
    "StdlibPluginLogger",
    "StudioServices",
    "topic_matches",
]

EventHandler = Callable[[Event], Awaitable[None] | None]


# --------------------------------------------------------------------------------------------------------------
# Universal services
# --------------------------------------------------------------------------------------------------------------


class KVStore(ABC):
    """A plugin's own key-value store; keys are scoped to the plugin by the host (no prefixing needed)."""

    @abstractmethod
    async def read(self, key: str) -> bytes | None:
        """The value, or `None` when the key is absent or expired."""

    @abstractmethod
    async def write(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store `value`; with `ttl_s` the key disappears after that many seconds."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove the key; `True` if it existed."""

    @abstractmethod
    async def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix` (sorted), expired keys excluded."""


class PluginLogger(ABC):
    """Structured logging bound to the plugin: `ctx.services.logger.info("cache hit", key=k)`.

    Synchronous on purpose: logging must never need an `await`, and implementations only hand the record
    to a handler (no I/O on the caller's path).
    """

    @abstractmethod
    def log(self, level: int, message: str, **fields: Any) -> None: ...

    def debug(self, message: str, **fields: Any) -> None:
        self.log(logging.DEBUG, message, **fields)

    def info(self, message: str, **fields: Any) -> None:
        self.log(logging.INFO, message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.log(logging.WARNING, message, **fields)

    warn = warning

    def error(self, message: str, **fields: Any) -> None:
        self.log(logging.ERROR, message, **fields)


class StdlibPluginLogger(PluginLogger):
    """The default logger: stdlib `logging` under `fjordgate.plugins.<slug>`, fields passed as `extra`.

    Fields land in `record.fields` (a dict) and `record.plugin`, so a JSON formatter can emit them as keys.
    """

    __slots__ = ("plugin", "_logger")

    def __init__(self, plugin: str, logger_name: str | None = None) -> None:
        self.plugin = plugin
        self._logger = logging.getLogger(logger_name or f"fjordgate.plugins.{plugin}")

    def log(self, level: int, message: str, **fields: Any) -> None:
        if self._logger.isEnabledFor(level):
            suffix = " ".join(f"{k}={v!r}" for k, v in fields.items())
            self._logger.log(
                level,
                f"{message} {suffix}" if suffix else message,
                extra={"plugin": self.plugin, "fields": fields},
            )


def topic_matches(pattern: str, topic: str) -> bool:
    """NATS-style subject matching: `*` matches one dot-separated token, a trailing `>` matches the rest."""
    if pattern == topic or pattern == ">":
        return True
    p_tokens = pattern.split(".")
    t_tokens = topic.split(".")
    for i, p in enumerate(p_tokens):
        if p == ">":
            return len(t_tokens) > i
        if i >= len(t_tokens) or (p != "*" and p != t_tokens[i]):
            return False
    return len(p_tokens) == len(t_tokens)


class EventBus(ABC):
    """Publish/subscribe between plugins and across tiers.

    `Direction.LOCAL` stays on this node; `UP` goes edge -> control plane; `DOWN` goes control plane -> the
    edges of the namespace. An event that arrives from the other tier is delivered locally as `LOCAL` (no
    loops). Topics may use NATS wildcards in subscriptions (`cache.*`, `billing.>`).
    """

    source: str = ""
    """Slug of the plugin this bus is bound to; stamped on published events."""

    @abstractmethod
    async def publish_event(self, event: Event) -> None:
        """Deliver a fully built event (implementations route it by `event.direction`)."""

    @abstractmethod
    async def subscribe(self, topic: str, handler: EventHandler) -> str:
        """Call `handler(event)` for each event on `topic`; returns a subscription id."""

    @abstractmethod
    async def subscribe_all(self, handler: EventHandler) -> str:
        """Call `handler(event)` for every event; returns a subscription id."""

    @abstractmethod
    async def unsubscribe(self, subscription_id: str) -> bool:
        """Stop a subscription; `True` if it existed."""

    async def publish(
        self, topic: str, payload: bytes | str | dict[str, Any] | list[Any], direction: Direction = Direction.LOCAL
    ) -> Event:
        """Publish `payload` (bytes as is, str as UTF-8, dict/list as JSON) on `topic`; returns the event sent."""
        if isinstance(payload, str):
            data = payload.encode()
        elif isinstance(payload, bytes | bytearray | memoryview):
            data = bytes(payload)
        else:
            data = msgspec.json.encode(payload)
        event = Event(topic=topic, payload=data, direction=Direction(direction), source=self.source)
        await self.publish_event(event)
        return event


async def deliver(handler: EventHandler, event: Event) -> None:
    """Run an event handler whether it is sync or async (helper for bus implementations)."""
    result = handler(event)
    if inspect.isawaitable(result):
        await result


# --------------------------------------------------------------------------------------------------------------
# Runtime services
# --------------------------------------------------------------------------------------------------------------


class GatewayServices(ABC):
    """Read-only views of the edge's current config snapshot, plus budget state. Never does a DB query."""

    @abstractmethod
    async def get_app(self, app_id: int) -> App | None: ...

    @abstractmethod
    async def list_apps(self) -> list[App]: ...

    @abstractmethod
    async def get_user(self, user_id: int) -> User | None: ...

    @abstractmethod
    async def get_llm(self, llm_id: int) -> LLM | None: ...

    @abstractmethod
    async def get_budget_status(self, app_id: int) -> BudgetStatus: ...

    @abstractmethod
    async def validate_credential(self, credential: str) -> bool:
        """`True` if `credential` is an active client key of an active app in this edge's snapshot."""

    @abstractmethod
    async def send_payload(
        self, payload: bytes, *, correlation_id: str = "", metadata: dict[str, str] | None = None
    ) -> str:
        """Send `payload` (at most 1 MiB) to this plugin's studio half (`accept_edge_payload`); returns the
        correlation id (a new one when none is given).

        Durable: the edge writes it to its spool before returning and keeps it until the control plane
        acknowledged it (NATS down, edge restarted: it still arrives, once). Needs the `control.send` scope.
        Raises `ServiceError` for a payload over the limit, or on an edge with no control plane connection.
        """


class StudioServices(ABC):
    """The control plane's management API, as a plugin may use it (scoped by the plugin's service scopes)."""

    @abstractmethod
    async def get_app(self, app_id: int) -> App | None: ...

    @abstractmethod
    async def list_apps(
        self,
        page: int = 1,
        limit: int = 50,
        *,
        owner_id: int | None = None,
        namespace: str | None = None,
        is_active: bool | None = None,
    ) -> list[App]: ...

    @abstractmethod
    async def update_app_metadata(self, app_id: int, metadata: dict[str, Any]) -> App:
        """Replace the app's metadata entirely."""

    @abstractmethod
    async def patch_app_metadata(
        self, app_id: int, key: str, value: Any = None, *, delete: bool = False
    ) -> dict[str, Any]:
        """Set (or delete) one metadata key atomically; returns the whole metadata after the change."""

    @abstractmethod
    async def get_user(self, user_id: int) -> User | None: ...

    @abstractmethod
    async def get_llm(self, llm_id: int) -> LLM | None: ...

    @abstractmethod
    async def list_llms(self, page: int = 1, limit: int = 50) -> list[LLM]: ...

    @abstractmethod
    async def list_tools(self, page: int = 1, limit: int = 50) -> list[Tool]: ...

    @abstractmethod
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
        """Call an LLM through the platform (budgets and analytics apply) and return the whole answer.

        `tools` are OpenAI-style function definitions (`{"type": "function", "function": {"name", "description",
        "parameters"}}`), translated for other vendors; the answer's `tool_calls` are in OpenAI's shape too
        (`{"id", "type": "function", "function": {"name", "arguments": <JSON text>}}`), so an agent loop is written
        once. Send them back as an assistant `LLMMessage(tool_calls=...)` followed by `role="tool"` messages."""

    @abstractmethod
    def stream_llm(
        self,
        llm_id: int,
        messages: list[LLMMessage],
        *,
        model: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> AsyncIterator[LLMCallChunk]:
        """Like `call_llm` but yields the answer as it is generated; the tool calls it asks for (`tools` as for
        `call_llm`) come whole in the last chunk's `tool_calls`."""


# --------------------------------------------------------------------------------------------------------------
# Services bundle and Context
# --------------------------------------------------------------------------------------------------------------


class Services:
    """The services a plugin may call; `gateway` / `studio` exist only in their own runtime."""

    __slots__ = ("runtime", "kv", "logger", "events", "_gateway", "_studio", "_blocking", "_blocking_loop")

    def __init__(
        self,
        *,
        runtime: Runtime,
        kv: KVStore,
        logger: PluginLogger,
        events: EventBus,
        gateway: GatewayServices | None = None,
        studio: StudioServices | None = None,
    ) -> None:
        self.runtime = Runtime(runtime)
        self.kv = kv
        self.logger = logger
        self.events = events
        self._gateway = gateway
        self._studio = studio
        self._blocking: Services | None = None
        self._blocking_loop: asyncio.AbstractEventLoop | None = None

    @property
    def gateway(self) -> GatewayServices:
        if self.runtime is not Runtime.GATEWAY:
            raise RuntimeServiceUnavailable("gateway", self.runtime.value)
        if self._gateway is None:
            raise ServiceError("this host provides no gateway services")
        return self._gateway

    @property
    def studio(self) -> StudioServices:
        if self.runtime is not Runtime.STUDIO:
            raise RuntimeServiceUnavailable("studio", self.runtime.value)
        if self._studio is None:
            raise ServiceError("this host provides no studio services")
        return self._studio

    def blocking(self, loop: asyncio.AbstractEventLoop) -> Services:
        """Twins of these services for code running in a worker thread: every async method blocks instead.

        Built once per Services object (and loop) and reused, so sync handlers pay no construction per call.
        """
        if self._blocking is None or self._blocking_loop is not loop:
            self._blocking_loop = loop
            self._blocking = Services(
                runtime=self.runtime,
                kv=_BlockingProxy(self.kv, loop),  # type: ignore[arg-type]
                logger=self.logger,
                events=_BlockingProxy(self.events, loop),  # type: ignore[arg-type]
                gateway=_BlockingProxy(self._gateway, loop) if self._gateway is not None else None,  # type: ignore[arg-type]
                studio=_BlockingProxy(self._studio, loop) if self._studio is not None else None,  # type: ignore[arg-type]
            )
        return self._blocking


class _BlockingProxy:
    """Forwards attribute access; coroutine results are run on the host loop and waited for from the thread."""

    __slots__ = ("_target", "_loop")

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr
        loop = self._loop
        subscribes = name in _SUBSCRIBE

        def call(*args: Any, **kwargs: Any) -> Any:
            if asyncio._get_running_loop() is loop:  # waiting here for the loop would stop it forever
                raise ServiceError(
                    f"blocking service {name}() called on the event loop's thread: call it from a plain-def "
                    "handler (run in a worker thread) or use the async services"
                )
            if subscribes:  # a handler subscribed from a plain def holds these blocking services: run it in a thread
                args = tuple(_threaded(a) if callable(a) else a for a in args)
            result = attr(*args, **kwargs)
            if inspect.iscoroutine(result):
                return asyncio.run_coroutine_threadsafe(result, loop).result()
            if inspect.isasyncgen(result):
                return _iterate_blocking(result, loop)
            return result

        return call


_SUBSCRIBE = frozenset({"subscribe", "subscribe_all"})


def _threaded(handler: EventHandler) -> EventHandler:
    """A plain-def event handler run in a worker thread, as the host runs plain-def capability handlers."""
    if inspect.iscoroutinefunction(handler):
        return handler

    async def run(event: Event) -> None:
        result = await asyncio.to_thread(handler, event)
        if inspect.isawaitable(result):
            await result

    return run


def _iterate_blocking(agen: Any, loop: asyncio.AbstractEventLoop) -> Any:
    while True:
        try:
            yield asyncio.run_coroutine_threadsafe(agen.__anext__(), loop).result()
        except StopAsyncIteration:
            return


_new_context = object.__new__


class Context:
    """Everything a handler knows about the call: runtime, request, app, user, LLM, edge, and services.

    One context is built per request (or per scheduled run, RPC, ...); the host binds it to each plugin
    it calls (`plugin_slug` and that plugin's `services`). `metadata` is shared along the chain: a hook's
    `context_updates` land there for the hooks after it.
    """

    __slots__ = (
        "runtime",
        "request_id",
        "app",
        "user",
        "llm",
        "session_id",
        "edge_id",
        "namespace",
        "plugin_slug",
        "metadata",
        "trace_context",
        "services",
        "_bound",
    )

    def __init__(
        self,
        *,
        runtime: Runtime = Runtime.GATEWAY,
        request_id: str = "",
        app: App | None = None,
        user: User | None = None,
        llm: LLM | None = None,
        session_id: str = "",
        edge_id: str = "",
        namespace: str = "",
        plugin_slug: str = "",
        metadata: dict[str, Any] | None = None,
        trace_context: dict[str, str] | None = None,
        services: Services | None = None,
    ) -> None:
        # The enum's call costs more than the rest of this constructor; contexts are built per request.
        self.runtime = runtime if type(runtime) is Runtime else Runtime(runtime)
        self.request_id = request_id
        self.app = app
        self.user = user
        self.llm = llm
        self.session_id = session_id
        self.edge_id = edge_id
        self.namespace = namespace
        self.plugin_slug = plugin_slug
        self.metadata = {} if metadata is None else metadata
        self.trace_context = {} if trace_context is None else trace_context
        self.services = services
        self._bound: dict[str, Context] | None = None

    # Convenience mirrors of the reference SDK's ctx.AppID / ctx.UserID.
    @property
    def app_id(self) -> int | None:
        return self.app.id if self.app is not None else None

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None

    @property
    def llm_id(self) -> int | None:
        return self.llm.id if self.llm is not None else None

    def bind(self, plugin_slug: str, services: Services | None) -> Context:
        """This context as seen by one plugin; returns `self` when already bound (no allocation)."""
        if self.plugin_slug == plugin_slug and self.services is services:
            return self
        # A request's context is bound once per plugin and the clone reused (a stream's chunk hooks call the same
        # plugin once per event), as long as what the pipeline may change since (app, user, LLM) is the same.
        bound = self._bound
        if bound is None:
            bound = self._bound = {}
        else:
            clone = bound.get(plugin_slug)
            if (
                clone is not None
                and clone.services is services
                and clone.app is self.app
                and clone.user is self.user
                and clone.llm is self.llm
            ):
                return clone
        clone = _new_context(Context)
        clone._bound = None
        clone.runtime = self.runtime
        clone.request_id = self.request_id
        clone.app = self.app
        clone.user = self.user
        clone.llm = self.llm
        clone.session_id = self.session_id
        clone.edge_id = self.edge_id
        clone.namespace = self.namespace
        clone.metadata = self.metadata
        clone.trace_context = self.trace_context
        clone.plugin_slug = plugin_slug
        clone.services = services
        bound[plugin_slug] = clone
        return clone

    def to_data(self) -> ContextData:
        """The serialisable part (everything except services), for an isolated plugin."""
        return ContextData(
            runtime=self.runtime,
            request_id=self.request_id,
            app=self.app,
            user=self.user,
            llm=self.llm,
            session_id=self.session_id,
            edge_id=self.edge_id,
            namespace=self.namespace,
            plugin_slug=self.plugin_slug,
            metadata=self.metadata,
            trace_context=self.trace_context,
        )

    @classmethod
    def from_data(cls, data: ContextData, services: Services | None = None) -> Context:
        return cls(
            runtime=data.runtime,
            request_id=data.request_id,
            app=data.app,
            user=data.user,
            llm=data.llm,
            session_id=data.session_id,
            edge_id=data.edge_id,
            namespace=data.namespace,
            plugin_slug=data.plugin_slug,
            metadata=data.metadata,
            trace_context=data.trace_context,
            services=services,
        )

    def info(self) -> PluginContextInfo:
        """The context in the form messages carry (`EnrichedRequest.context`, `AnalyticsRecord.context`, ...)."""
        llm = self.llm
        return PluginContextInfo(
            request_id=self.request_id,
            vendor=llm.vendor if llm is not None else "",
            llm_id=llm.id if llm is not None else None,
            llm_slug=llm.slug if llm is not None else "",
            app_id=self.app_id,
            user_id=self.user_id,
            metadata=self.metadata,
            trace_context=self.trace_context,
        )

    def __repr__(self) -> str:
        return (
            f"Context(runtime={self.runtime.value!r}, request_id={self.request_id!r}, app_id={self.app_id!r}, "
            f"user_id={self.user_id!r}, plugin_slug={self.plugin_slug!r})"
        )
