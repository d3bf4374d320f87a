"""Fjordgate plugin SDK: one plugin class, two runtimes (gateway and studio), in-process or isolated.

A plugin is a short class::

    from shared_sdk import BasePlugin, PluginResponse

    class AddTeamHeader(BasePlugin):
        name = "add-team-header"
        version = "1.0.0"

        async def handle_post_auth(self, ctx, req):
            req.headers["x-team"] = ctx.app.metadata.get("team", "none") if ctx.app else "none"
            return PluginResponse(modified=True, request=req)

    if __name__ == "__main__":
        import shared_sdk
        shared_sdk.serve(AddTeamHeader())   # the entry point when run isolated in its own process

The host (`shared_sdk.host`) loads it in-process from an import path or runs it isolated over gRPC; the
hook chain semantics live in `shared_sdk.pipeline`; `shared_sdk.testing` tests plugins without a system.
"""

from __future__ import annotations

from typing import Any

from .capabilities import (
    AgentPlugin,
    AuthHandler,
    BasePlugin,
    ConfigProvider,
    CustomEndpointHandler,
    DataCollector,
    EdgePayloadReceiver,
    ManifestProvider,
    ObjectHookHandler,
    PortalUIProvider,
    PostAuthHandler,
    PreAuthHandler,
    ResourceProvider,
    ResponseHandler,
    SchedulerPlugin,
    SessionAware,
    UIProvider,
)
from .context import (
    Context,
    EventBus,
    GatewayServices,
    KVStore,
    PluginLogger,
    Services,
    StudioServices,
)
from .errors import (
    CapabilityNotImplemented,
    FjordgateSDKError,
    PluginCallError,
    PluginConfigError,
    PluginLoadError,
    RuntimeServiceUnavailable,
    ServiceError,
    ServiceScopeDenied,
)
from .messages import (
    LLM,
    AgentChunk,
    AgentChunkType,
    AgentHistoryMessage,
    AgentMessageRequest,
    AnalyticsRecord,
    App,
    Asset,
    AuthRequest,
    AuthResponse,
    BudgetStatus,
    BudgetUsage,
    ContextData,
    DataCollectionResponse,
    Datasource,
    Direction,
    EdgePayload,
    EndpointChunk,
    EndpointRegistration,
    EndpointRequest,
    EndpointResponse,
    EnrichedRequest,
    Event,
    LLMCallChunk,
    LLMCallResponse,
    LLMMessage,
    ManifestCapabilities,
    ManifestPermissions,
    ManifestSlot,
    ObjectHookRegistration,
    ObjectHookRequest,
    ObjectHookResponse,
    PluginContextInfo,
    PluginError,
    PluginManifest,
    PluginRequest,
    PluginResponse,
    PortalUserContext,
    ProxyLog,
    ResourceInstance,
    ResourceSelectionValidation,
    ResourceType,
    ResponseWriteRequest,
    ResponseWriteResponse,
    Runtime,
    Schedule,
    ShortCircuit,
    StreamCompleteRequest,
    StreamCompleteResponse,
    StreamEventsRequest,
    StreamEventsResponse,
    Tool,
    UpstreamResponse,
    User,
)

__version__ = "0.1.0"


def serve(plugin: BasePlugin, **options: Any) -> None:
    """Run `plugin` as an isolated plugin process: the program's entry point when a host spawns it.

    Blocks until the host stops the process. Options are those of `shared_sdk.isolated.child.serve`.
    """
    from .isolated.child import serve as _serve

    _serve(plugin, **options)


__all__ = [
    # plugin base and capabilities
    "AgentPlugin",
    "AuthHandler",
    "BasePlugin",
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
    # context and services
    "Context",
    "Direction",
    "EventBus",
    "GatewayServices",
    "KVStore",
    "PluginLogger",
    "Runtime",
    "Services",
    "StudioServices",
    # messages
    "LLM",
    "AgentChunk",
    "AgentChunkType",
    "AgentHistoryMessage",
    "AgentMessageRequest",
    "AnalyticsRecord",
    "App",
    "Asset",
    "AuthRequest",
    "AuthResponse",
    "BudgetStatus",
    "BudgetUsage",
    "ContextData",
    "DataCollectionResponse",
    "Datasource",
    "EdgePayload",
    "EndpointChunk",
    "EndpointRegistration",
    "EndpointRequest",
    "EndpointResponse",
    "EnrichedRequest",
    "Event",
    "LLMCallChunk",
    "LLMCallResponse",
    "LLMMessage",
    "ManifestCapabilities",
    "ManifestPermissions",
    "ManifestSlot",
    "ObjectHookRegistration",
    "ObjectHookRequest",
    "ObjectHookResponse",
    "PluginContextInfo",
    "PluginError",
    "PluginManifest",
    "PluginRequest",
    "PluginResponse",
    "PortalUserContext",
    "ProxyLog",
    "ResourceInstance",
    "ResourceSelectionValidation",
    "ResourceType",
    "ResponseWriteRequest",
    "ResponseWriteResponse",
    "Schedule",
    "ShortCircuit",
    "StreamCompleteRequest",
    "StreamCompleteResponse",
    "StreamEventsRequest",
    "StreamEventsResponse",
    "Tool",
    "UpstreamResponse",
    "User",
    # errors
    "CapabilityNotImplemented",
    "FjordgateSDKError",
    "PluginCallError",
    "PluginConfigError",
    "PluginLoadError",
    "RuntimeServiceUnavailable",
    "ServiceError",
    "ServiceScopeDenied",
    # entry point
    "serve",
]
