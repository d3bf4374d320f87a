"""The plugin contract: `BasePlugin`, one interface per capability, and how the host discovers them.

A plugin declares a capability by *implementing its methods*; inheriting from the interface class is
optional documentation (and gives a typed default for the methods a capability makes optional). The host
calls `discover(plugin)` once at load time and records which methods the plugin really implements, so the
request path never asks "does this plugin do X?" again.

Every handler may be `async def` or plain `def`. Plain handlers run in a worker thread so a slow one never
blocks the event loop; async handlers run on the loop with no thread hop.

The sixteen interfaces (fifteen capabilities plus session awareness):

    pre_auth          PreAuthHandler          handle_pre_auth(ctx, EnrichedRequest) -> PluginResponse
    auth              AuthHandler             handle_auth, get_app_by_credential, get_user_by_credential
    post_auth         PostAuthHandler         handle_post_auth(ctx, EnrichedRequest) -> PluginResponse
    response          ResponseHandler         on_before_write_headers, on_before_write, on_before_write_events,
                                              on_stream_complete
    data_collection   DataCollector           handle_proxy_log, handle_analytics, handle_budget_usage
    custom_endpoints  CustomEndpointHandler   get_endpoint_registrations(), handle_endpoint_request(ctx, req)
    ui_provider       UIProvider              get_asset, list_assets, get_manifest, handle_rpc
    portal_ui         PortalUIProvider        handle_portal_rpc(ctx, user, method, payload)
    config_provider   ConfigProvider          get_config_schema() -> dict
    manifest_provider ManifestProvider        get_manifest() -> PluginManifest
    agent             AgentPlugin             handle_agent_message(ctx, req) -> async iterator of AgentChunk
    object_hooks      ObjectHookHandler       get_object_hook_registrations(), handle_object_hook(ctx, req)
    scheduler         SchedulerPlugin         execute_scheduled_task(ctx, Schedule)
    edge_payload      EdgePayloadReceiver     accept_edge_payload(ctx, EdgePayload) -> bool
    resource_provider ResourceProvider        get_resource_types, list_resources, get_resource,
                                              validate_resource_selection, create_resource
    session_aware     SessionAware            on_session_ready(ctx), on_session_closing(ctx)
"""

from __future__ import annotations

import difflib
import inspect
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import CapabilityNotImplemented
from .messages import (
    AgentChunk,
    AgentMessageRequest,
    AnalyticsRecord,
    App,
    Asset,
    AuthRequest,
    AuthResponse,
    BudgetUsage,
    DataCollectionResponse,
    EdgePayload,
    EndpointChunk,
    EndpointRegistration,
    EndpointRequest,
    EndpointResponse,
    EnrichedRequest,
    ObjectHookRegistration,
    ObjectHookRequest,
    ObjectHookResponse,
    PluginManifest,
    PluginResponse,
    PortalUserContext,
    ProxyLog,
    ResourceInstance,
    ResourceSelectionValidation,
    ResourceType,
    ResponseWriteRequest,
    ResponseWriteResponse,
    Schedule,
    StreamCompleteRequest,
    StreamCompleteResponse,
    StreamEventsRequest,
    StreamEventsResponse,
    User,
)

if TYPE_CHECKING:
    from .context import Context

__all__ = [
    "CAPABILITIES",
    "AgentPlugin",
    "AuthHandler",
    "BasePlugin",
    "Capability",
    "ConfigProvider",
    "CustomEndpointHandler",
    "DataCollector",
    "EdgePayloadReceiver",
    "ManifestProvider",
    "ObjectHookHandler",
    "PortalUIProvider",
    "PostAuthHandler",
    "PreAuthHandler",
    "ResourceProvider",
    "ResponseHandler",
    "SchedulerPlugin",
    "SessionAware",
    "UIProvider",
    "discover",
    "implemented_methods",
]

_F = TypeVar("_F", bound=Callable[..., Any])


def _optional(fn: _F) -> _F:
    """Mark an interface method as a default: a plugin that does not override it does not implement it."""
    fn.__fjordgate_default__ = True  # type: ignore[attr-defined]
    return fn


class BasePlugin:
    """What every plugin is: a name, a version, a description, and a lifecycle.

    Set the three identity attributes as class attributes (the short way) or pass them to `__init__`.
    `initialize` receives the config *after* the host validated it against `get_config_schema()`, so a
    plugin only checks what a schema cannot express.
    """

    name: str = ""
    version: str = "0.0.0"
    description: str = ""

    def __init__(self, name: str | None = None, version: str | None = None, description: str | None = None) -> None:
        if name is not None:
            self.name = name
        if version is not None:
            self.version = version
        if description is not None:
            self.description = description
        if not self.name:
            self.name = type(self).__name__

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        """Called once after load (and after each restart of an isolated plugin). Keeps `config` by default."""
        self.config = config

    async def shutdown(self, ctx: Context) -> None:
        """Called once before unload; release connections, cancel background tasks, unsubscribe events."""


# --------------------------------------------------------------------------------------------------------------
# Request phase
# --------------------------------------------------------------------------------------------------------------


class PreAuthHandler(ABC):
    """Runs before authentication: IP filtering, request validation, early rejection."""

    @abstractmethod
    async def handle_pre_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse: ...


class AuthHandler(ABC):
    """Custom authentication. All three methods are required: a credential without an App has no access rules."""

    @abstractmethod
    async def handle_auth(self, ctx: Context, req: AuthRequest) -> AuthResponse: ...

    @abstractmethod
    async def get_app_by_credential(self, ctx: Context, credential: str) -> App | None: ...

    @abstractmethod
    async def get_user_by_credential(self, ctx: Context, credential: str) -> User | None: ...


class PostAuthHandler(ABC):
    """Runs after authentication with app and user known: enrichment, policy, routing overrides."""

    @abstractmethod
    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse: ...


class ResponseHandler:
    """Rewrites the response. Runs in reverse chain order, only for plugins whose request phase was reached.

    `on_before_write` is called for a complete body and, with `is_stream_chunk=True`, for every chunk of a
    streamed response (return `drop_chunk=True` to remove one). A plugin that implements `on_before_write_events`
    gets a stream's events that way instead: once per group of events that arrived together (one read from the
    vendor; a fast vendor sends a whole answer in one), so its per-call cost is paid per group, not per event.
    `on_stream_complete` runs once at the end. Implement any subset.
    """

    @_optional
    async def on_before_write_headers(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        return ResponseWriteResponse()

    @_optional
    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        return ResponseWriteResponse()

    @_optional
    async def on_before_write_events(self, ctx: Context, req: StreamEventsRequest) -> StreamEventsResponse:
        return StreamEventsResponse()

    @_optional
    async def on_stream_complete(self, ctx: Context, req: StreamCompleteRequest) -> StreamCompleteResponse:
        return StreamCompleteResponse()


# --------------------------------------------------------------------------------------------------------------
# Telemetry and endpoints
# --------------------------------------------------------------------------------------------------------------


class DataCollector:
    """Receives telemetry after each request (proxy logs, analytics, budget usage). Implement any subset."""

    @_optional
    async def handle_proxy_log(self, ctx: Context, log: ProxyLog) -> DataCollectionResponse | None:
        return None

    @_optional
    async def handle_analytics(self, ctx: Context, record: AnalyticsRecord) -> DataCollectionResponse | None:
        return None

    @_optional
    async def handle_budget_usage(self, ctx: Context, usage: BudgetUsage) -> DataCollectionResponse | None:
        return None


class CustomEndpointHandler(ABC):
    """Serves HTTP endpoints under `/plugins/{slug}/`.

    `handle_endpoint_request` returns an `EndpointResponse`, or (for registrations with
    `stream_response=True`) an async iterator of `EndpointChunk`.
    """

    @abstractmethod
    def get_endpoint_registrations(self) -> list[EndpointRegistration]: ...

    @abstractmethod
    async def handle_endpoint_request(
        self, ctx: Context, req: EndpointRequest
    ) -> EndpointResponse | AsyncIterator[EndpointChunk]: ...


class UIProvider(ABC):
    """Serves admin UI assets from the control plane. `get_asset` may return an `Asset` or `(bytes, type)`."""

    @abstractmethod
    def get_asset(self, path: str) -> Asset | tuple[bytes, str] | None: ...

    @abstractmethod
    def list_assets(self) -> list[str]: ...

    @_optional
    def get_manifest(self) -> PluginManifest:
        return PluginManifest()

    @_optional
    async def handle_rpc(self, method: str, payload: bytes) -> bytes:
        return b""


class PortalUIProvider(ABC):
    """Portal pages' RPC, called with the portal user's identity (the host checks the user is logged in)."""

    @abstractmethod
    async def handle_portal_rpc(self, ctx: Context, user: PortalUserContext, method: str, payload: bytes) -> bytes: ...


class ConfigProvider(ABC):
    """Gives the JSON Schema (draft 2020-12) the host validates config against before `initialize`."""

    @abstractmethod
    def get_config_schema(self) -> dict[str, Any]: ...


class ManifestProvider(ABC):
    """Gives the plugin manifest: permissions, routes, schedules, resource types, UI slots."""

    @abstractmethod
    def get_manifest(self) -> PluginManifest: ...


# --------------------------------------------------------------------------------------------------------------
# Studio-side capabilities
# --------------------------------------------------------------------------------------------------------------


class AgentPlugin(ABC):
    """A conversational agent: yields `AgentChunk`s (content, tool call, tool result, thinking, error, done)."""

    @abstractmethod
    def handle_agent_message(self, ctx: Context, req: AgentMessageRequest) -> AsyncIterator[AgentChunk]: ...


class ObjectHookHandler(ABC):
    """Intercepts CRUD on control-plane objects. `before_*` hooks may reject or replace the object."""

    @abstractmethod
    def get_object_hook_registrations(self) -> list[ObjectHookRegistration]: ...

    @abstractmethod
    async def handle_object_hook(self, ctx: Context, req: ObjectHookRequest) -> ObjectHookResponse: ...


class SchedulerPlugin(ABC):
    """Runs the plugin's cron schedules (declared in its manifest); raise to mark the execution failed."""

    @abstractmethod
    async def execute_scheduled_task(self, ctx: Context, schedule: Schedule) -> None: ...


class EdgePayloadReceiver(ABC):
    """Receives payloads the plugin's edge half sent up; return `True` when the payload was for this plugin."""

    @abstractmethod
    async def accept_edge_payload(self, ctx: Context, payload: EdgePayload) -> bool: ...


class ResourceProvider(ABC):
    """Registers resource types apps can hold, each instance carrying a privacy score (0-100)."""

    @abstractmethod
    def get_resource_types(self) -> list[ResourceType]: ...

    @abstractmethod
    async def list_resources(self, ctx: Context, type_slug: str) -> list[ResourceInstance]: ...

    @abstractmethod
    async def get_resource(self, ctx: Context, type_slug: str, resource_id: str) -> ResourceInstance | None: ...

    @_optional
    async def validate_resource_selection(
        self, ctx: Context, type_slug: str, resource_ids: list[str]
    ) -> ResourceSelectionValidation:
        return ResourceSelectionValidation()

    @_optional
    async def create_resource(self, ctx: Context, type_slug: str, data: dict[str, Any]) -> ResourceInstance:
        raise CapabilityNotImplemented(getattr(self, "name", type(self).__name__), "create_resource")


class SessionAware:
    """Told when the host's service broker is ready (warm connections, subscribe events) and before it closes."""

    @_optional
    async def on_session_ready(self, ctx: Context) -> None:
        return None

    @_optional
    async def on_session_closing(self, ctx: Context) -> None:
        return None


# --------------------------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capability:
    """One capability: its name, interface, the methods it needs (all) and the ones it may add (any)."""

    name: str
    interface: type
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def methods(self) -> tuple[str, ...]:
        return self.required + self.optional


CAPABILITIES: tuple[Capability, ...] = (
    Capability("pre_auth", PreAuthHandler, ("handle_pre_auth",)),
    Capability("auth", AuthHandler, ("handle_auth", "get_app_by_credential", "get_user_by_credential")),
    Capability("post_auth", PostAuthHandler, ("handle_post_auth",)),
    Capability(
        "response",
        ResponseHandler,
        (),
        ("on_before_write_headers", "on_before_write", "on_before_write_events", "on_stream_complete"),
    ),
    Capability("data_collection", DataCollector, (), ("handle_proxy_log", "handle_analytics", "handle_budget_usage")),
    Capability("custom_endpoints", CustomEndpointHandler, ("get_endpoint_registrations", "handle_endpoint_request")),
    Capability("ui_provider", UIProvider, ("get_asset", "list_assets"), ("handle_rpc",)),
    Capability("portal_ui", PortalUIProvider, ("handle_portal_rpc",)),
    Capability("config_provider", ConfigProvider, ("get_config_schema",)),
    Capability("manifest_provider", ManifestProvider, ("get_manifest",)),
    Capability("agent", AgentPlugin, ("handle_agent_message",)),
    Capability("object_hooks", ObjectHookHandler, ("get_object_hook_registrations", "handle_object_hook")),
    Capability("scheduler", SchedulerPlugin, ("execute_scheduled_task",)),
    Capability("edge_payload", EdgePayloadReceiver, ("accept_edge_payload",)),
    Capability(
        "resource_provider",
        ResourceProvider,
        ("get_resource_types", "list_resources", "get_resource"),
        ("validate_resource_selection", "create_resource"),
    ),
    Capability("session_aware", SessionAware, (), ("on_session_ready", "on_session_closing")),
)

ALL_METHODS: frozenset[str] = frozenset(m for cap in CAPABILITIES for m in cap.methods)


def _is_implemented(plugin: object, method: str) -> bool:
    fn = getattr(type(plugin), method, None)
    if fn is None:
        fn = getattr(plugin, method, None)  # set on the instance
    if fn is None or not callable(fn):
        return False
    if getattr(fn, "__fjordgate_default__", False):
        return False
    # An interface's own abstract method (defined in this module) is not an implementation.
    owner = next((klass for klass in type(plugin).__mro__ if method in vars(klass)), None)
    return owner is None or owner.__module__ != __name__


def implemented_methods(plugin: object) -> frozenset[str]:
    """Names of the capability methods `plugin` really implements (overridden, not inherited defaults)."""
    return frozenset(m for m in ALL_METHODS if _is_implemented(plugin, m))


def discover(plugin: object) -> tuple[frozenset[str], frozenset[str], list[str]]:
    """Return (capability names, implemented methods, problems).

    A problem is a capability half implemented (an auth plugin without `get_app_by_credential`): the host
    refuses to load such a plugin with a message naming the missing methods, instead of failing mid-request.
    """
    methods = implemented_methods(plugin)
    caps: set[str] = set()
    problems: list[str] = misspelled_methods(plugin, methods)
    for cap in CAPABILITIES:
        have_required = [m for m in cap.required if m in methods]
        have_optional = [m for m in cap.optional if m in methods]
        if cap.required:
            if len(have_required) == len(cap.required):
                caps.add(cap.name)
            elif have_required:
                missing = [m for m in cap.required if m not in methods]
                problems.append(f"capability {cap.name!r} needs {', '.join(missing)} (implements {have_required})")
        elif have_optional:
            caps.add(cap.name)
    return frozenset(caps), methods, problems


_CALLED: frozenset[str] = ALL_METHODS | {"initialize", "shutdown"}
"""Every method the host calls by name: a plugin method spelled almost like one of these is a typo."""


def misspelled_methods(plugin: object, implemented: frozenset[str]) -> list[str]:
    """Problems for the plugin's own methods spelled almost like a method the host calls that it lacks.

    Why: the host finds hooks by name, so `handle_postauth` (or `initialise`, `on_before_write_header`) is
    never called, and the plugin loads and does nothing without a word. Only near misses count (same first
    three letters, 90% alike) of a method the plugin does not implement, so helpers such as `run_stream_complete`
    or a `handle_post_auth_sync` beside a real `handle_post_auth` are left alone. Runs once, at load.
    """
    own = {
        name
        for klass in type(plugin).__mro__
        if not _is_sdk(klass)
        for name, value in vars(klass).items()
        if not name.startswith("_") and callable(value) and name not in _CALLED
    }
    problems = []
    for name in sorted(own):
        for meant in difflib.get_close_matches(name, _CALLED, n=1, cutoff=0.9):
            lacking = meant not in implemented and not _overridden(plugin, meant)
            if lacking and name[:3] == meant[:3]:
                problems.append(f"{name} is not a method the host calls: did you mean {meant}?")
    return problems


def _overridden(plugin: object, method: str) -> bool:
    """`initialize` / `shutdown` defined by the plugin itself (BasePlugin has defaults)."""
    owner = next((klass for klass in type(plugin).__mro__ if method in vars(klass)), None)
    return owner is not None and not _is_sdk(owner)


def _is_sdk(klass: type) -> bool:
    """`BasePlugin` and the capability interfaces (this module), whose methods are the defaults."""
    return klass is object or klass.__module__ == __name__


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """True for `async def` functions and async generator functions (both run on the loop, no thread hop)."""
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


def iter_interfaces() -> Iterable[type]:
    return (cap.interface for cap in CAPABILITIES)
