"""Typed messages exchanged between the host (edge or control plane) and plugins.

Every message is a `msgspec.Struct` so that the same object is used in-process (no copying) and encoded
cheaply when the plugin runs isolated behind gRPC (msgpack on the wire). All structs are keyword-only with
defaults, so a caller builds only the fields it knows: `PluginResponse(block=True, error_message="no")`.

Conventions every field follows:
- Identifiers of objects the control plane owns (apps, users, LLMs) are `int` (their primary keys);
  `None` means "not known yet" (for example before authentication).
- Money is `decimal.Decimal` (msgspec encodes it as a string), never a float.
- Times are Unix seconds (`float`) unless a field name says otherwise (`*_ms`, `edge_timestamp`).
- Bodies are `bytes`; headers are `dict[str, str]` with lower-case names as the edge receives them.

Field names follow Tyk AI Studio's plugin messages (see docs/plugins/) in Python spelling, plus what our
pipeline adds (short-circuits with streams, `allow_fallbacks`, per-chunk response hooks).
"""

from __future__ import annotations

import enum
import time
import uuid
from decimal import Decimal
from typing import Any

import msgspec

__all__ = [
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
    "Direction",
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
    "Runtime",
    "Schedule",
    "ShortCircuit",
    "StreamCompleteRequest",
    "StreamCompleteResponse",
    "StreamEventsRequest",
    "StreamEventsResponse",
    "Tool",
    "UpstreamResponse",
    "User",
]


def _new_id() -> str:
    return uuid.uuid4().hex


class Runtime(enum.StrEnum):
    """Where a plugin runs: the control plane ("studio") or an edge gateway ("gateway")."""

    STUDIO = "studio"
    GATEWAY = "gateway"


class Direction(enum.StrEnum):
    """Where a published event goes: stays on this node, edge -> control plane, or control plane -> edges."""

    LOCAL = "local"
    UP = "up"
    DOWN = "down"


class _Msg(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base for every message: keyword-only, defaults omitted on the wire."""


# --------------------------------------------------------------------------------------------------------------
# Objects the control plane owns, as plugins see them (never carrying secrets)
# --------------------------------------------------------------------------------------------------------------


class App(_Msg):
    id: int | None = None
    name: str = ""
    description: str = ""
    owner_id: int | None = None
    namespace: str = ""
    is_active: bool = True
    llm_ids: list[int] = []
    tool_ids: list[int] = []
    datasource_ids: list[int] = []
    tags: list[str] = []
    monthly_budget: Decimal | None = None
    budget_start_date: float | None = None
    rate_limit_rpm: int | None = None
    allowed_ips: list[str] = []
    metadata: dict[str, Any] = {}


class User(_Msg):
    id: int | None = None
    email: str = ""
    name: str = ""
    is_admin: bool = False
    groups: list[str] = []
    metadata: dict[str, Any] = {}


class LLM(_Msg):
    """An LLM configuration without its vendor API key (plugins never see vendor secrets)."""

    id: int | None = None
    slug: str = ""
    name: str = ""
    vendor: str = ""
    api_endpoint: str = ""
    default_model: str = ""
    allowed_models: list[str] = []
    privacy_score: int = 0
    monthly_budget: Decimal | None = None
    is_active: bool = True
    namespace: str = ""
    metadata: dict[str, Any] = {}


class Tool(_Msg):
    id: int | None = None
    slug: str = ""
    name: str = ""
    description: str = ""
    privacy_score: int = 0
    operations: list[str] = []
    metadata: dict[str, Any] = {}


class Datasource(_Msg):
    id: int | None = None
    slug: str = ""
    name: str = ""
    description: str = ""
    privacy_score: int = 0
    metadata: dict[str, Any] = {}


class BudgetStatus(_Msg):
    """Spend against an app's budget in the current period; `limit=None` means no budget is set."""

    app_id: int | None = None
    limit: Decimal | None = None
    spent: Decimal = Decimal("0")
    remaining: Decimal | None = None
    currency: str = "USD"
    period_start: float = 0.0
    period_end: float = 0.0
    exceeded: bool = False


# --------------------------------------------------------------------------------------------------------------
# Context on the wire
# --------------------------------------------------------------------------------------------------------------


class PluginContextInfo(_Msg):
    """The request's context as carried inside messages (Tyk's PluginContext)."""

    request_id: str = ""
    vendor: str = ""
    llm_id: int | None = None
    llm_slug: str = ""
    app_id: int | None = None
    user_id: int | None = None
    metadata: dict[str, Any] = {}
    trace_context: dict[str, str] = {}


class ContextData(_Msg):
    """`Context` without its services: the form in which a context crosses the process boundary."""

    runtime: Runtime = Runtime.GATEWAY
    request_id: str = ""
    app: App | None = None
    user: User | None = None
    llm: LLM | None = None
    session_id: str = ""
    edge_id: str = ""
    namespace: str = ""
    plugin_slug: str = ""
    metadata: dict[str, Any] = {}
    trace_context: dict[str, str] = {}


# --------------------------------------------------------------------------------------------------------------
# Request phase: pre-auth, auth, post-auth
# --------------------------------------------------------------------------------------------------------------


class EnrichedRequest(_Msg):
    """The client's request as request hooks see it, enriched with what authentication found."""

    method: str = "POST"
    path: str = "/"
    headers: dict[str, str] = {}
    body: bytes = b""
    remote_addr: str = ""
    query_string: str = ""
    context: PluginContextInfo | None = None
    request_id: str = ""
    user_id: int | None = None
    app_id: int | None = None
    auth_claims: dict[str, Any] = {}
    authenticated: bool = False
    stream: bool = False
    model: str = ""


PluginRequest = EnrichedRequest
"""Tyk names the pre-auth message PluginRequest; ours is the same struct before authentication fills it."""


class UpstreamResponse(_Msg):
    """A complete, non-streamed HTTP response (an upstream's, or one a plugin made up, such as a cache hit)."""

    status_code: int = 200
    headers: dict[str, str] = {}
    body: bytes = b""


class PluginError(_Msg):
    """An error that ends a request; the edge renders it as an OpenAI-style JSON error.

    `allow_fallbacks=None` means fallbacks are allowed (Bifrost's rule); set it to `False` for errors no other
    provider can fix (blocked content, bad credentials).
    """

    status_code: int = 500
    message: str = ""
    type: str = "plugin_error"
    code: str | None = None
    allow_fallbacks: bool | None = None
    headers: dict[str, str] = {}
    param: str | None = None
    """The request field the error is about (OpenAI's `error.param`, e.g. `n`), when there is one."""
    details: list[dict[str, Any]] | None = None
    """Google's `error.details` (objects each with an `@type`), which Gemini-format callers get; the edge sets it
    from a Gemini LLM's own error to a Gemini client."""


class ShortCircuit(_Msg):
    """A request hook's decision to answer now: exactly one of a full response, a stream, or an error."""

    response: UpstreamResponse | None = None
    stream_chunks: list[bytes] | None = None
    stream_headers: dict[str, str] = {}
    error: PluginError | None = None


class PluginResponse(_Msg):
    """What a pre-auth / post-auth hook returns.

    - nothing set: pass the request on unchanged;
    - `modified=True` with `request` (or `headers`/`body`): continue with the changed request;
    - `block=True`: stop with `status_code` (default 403), `headers`, `body` or `error_message`;
    - `short_circuit`: stop with a full response, a stream, or an error;
    - `context_updates`: merged into `ctx.metadata` for later plugins and the edge (e.g. an upstream override).
    """

    modified: bool = False
    request: EnrichedRequest | None = None
    status_code: int = 0
    headers: dict[str, str] = {}
    body: bytes = b""
    block: bool = False
    error_message: str = ""
    context_updates: dict[str, Any] = {}
    short_circuit: ShortCircuit | None = None


class AuthRequest(_Msg):
    credential: str = ""
    auth_type: str = "bearer"
    request: EnrichedRequest | None = None
    context: PluginContextInfo | None = None


class AuthResponse(_Msg):
    """`authenticated=True` must come with an `app_id`: a credential without an app has no access rules."""

    authenticated: bool = False
    user_id: int | None = None
    app_id: int | None = None
    claims: dict[str, Any] = {}
    error_message: str = ""


# --------------------------------------------------------------------------------------------------------------
# Response phase
# --------------------------------------------------------------------------------------------------------------


class ResponseWriteRequest(_Msg):
    """The response about to be written: headers phase, full body, or one chunk of a stream.

    `error` is set when the response is an error (upstream failure or a short-circuit error) so a hook can
    recover it into a normal response.
    """

    request_id: str = ""
    status_code: int = 200
    headers: dict[str, str] = {}
    body: bytes = b""
    is_stream_chunk: bool = False
    chunk_index: int = 0
    is_final_chunk: bool = False
    error: PluginError | None = None
    context: PluginContextInfo | None = None


class ResponseWriteResponse(_Msg):
    """A response hook's answer. With `modified=True`, every field that is not `None` replaces the current one.

    Setting `error` turns the response into that error; replacing `status_code` with a non-error status (and a
    body) recovers an error into a response. `drop_chunk=True` removes a stream chunk.
    """

    modified: bool = False
    status_code: int | None = None
    headers: dict[str, str] | None = None
    body: bytes | None = None
    error: PluginError | None = None
    drop_chunk: bool = False


class StreamEventsRequest(_Msg):
    """The events of a stream that arrived together (one read from the vendor), for `on_before_write_events`.

    `events` are whole SSE events as the client would receive them (each ends in a blank line), in order;
    `first_index` is the stream position of the read's first event (of `events[0]`, unless a hook before this
    one dropped it); `is_final` says the read ends the stream (`[DONE]`).
    """

    request_id: str = ""
    events: list[bytes] = []
    first_index: int = 0
    is_final: bool = False
    context: PluginContextInfo | None = None


class StreamEventsResponse(_Msg):
    """`on_before_write_events`' answer: with `modified=True`, `events` are sent instead of the request's (in
    order; fewer to drop some, none to drop them all). Unmodified (or `None` returned), the events pass as they are.
    """

    modified: bool = False
    events: list[bytes] = []


class StreamCompleteRequest(_Msg):
    request_id: str = ""
    accumulated_response: bytes = b""
    headers: dict[str, str] = {}
    status_code: int = 200
    chunk_count: int = 0
    request_body: bytes = b""
    context: PluginContextInfo | None = None


class StreamCompleteResponse(_Msg):
    handled: bool = False
    cached: bool = False
    error_message: str = ""


# --------------------------------------------------------------------------------------------------------------
# Data collection
# --------------------------------------------------------------------------------------------------------------


class ProxyLog(_Msg):
    record_id: str = msgspec.field(default_factory=_new_id)
    request_id: str = ""
    app_id: int | None = None
    user_id: int | None = None
    llm_id: int | None = None
    vendor: str = ""
    method: str = ""
    path: str = ""
    request_body: bytes = b""
    response_body: bytes = b""
    response_code: int = 0
    edge_id: str = ""
    namespace: str = ""
    timestamp: float = msgspec.field(default_factory=time.time)
    context: PluginContextInfo | None = None


class AnalyticsRecord(_Msg):
    """One proxied LLM call, as shipped from the edge to the control plane."""

    record_id: str = msgspec.field(default_factory=_new_id)
    request_id: str = ""
    app_id: int | None = None
    user_id: int | None = None
    llm_id: int | None = None
    llm_slug: str = ""
    vendor: str = ""
    model: str = ""
    status_code: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal = Decimal("0")
    currency: str = "USD"
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    upstream_latency_ms: float = 0.0
    request_bytes: int = 0
    response_bytes: int = 0
    streamed: bool = False
    edge_id: str = ""
    namespace: str = ""
    timestamp: float = msgspec.field(default_factory=time.time)
    tool_calls: int = 0
    choices: int = 0
    error_type: str = ""
    context: PluginContextInfo | None = None
    method: str = ""
    path: str = ""
    """The client's HTTP method and path: with the fields above, everything a proxy log without bodies holds, so an
    edge that logs no bodies ships no `ProxyLog` and the control plane stores the request's log from this record
    (`TelemetryBatch.proxy_logs_from_analytics`)."""


class BudgetUsage(_Msg):
    record_id: str = msgspec.field(default_factory=_new_id)
    request_id: str = ""
    app_id: int | None = None
    user_id: int | None = None
    llm_id: int | None = None
    tokens_used: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal("0")
    currency: str = "USD"
    requests_count: int = 1
    period_start: float = 0.0
    period_end: float = 0.0
    timestamp: float = msgspec.field(default_factory=time.time)
    context: PluginContextInfo | None = None


class DataCollectionResponse(_Msg):
    success: bool = True
    handled: bool = True
    error_message: str = ""
    metadata: dict[str, Any] = {}


# --------------------------------------------------------------------------------------------------------------
# Custom endpoints
# --------------------------------------------------------------------------------------------------------------


class EndpointRegistration(_Msg):
    """A route served under `/plugins/{slug}/{path}`; `path` may end in `/*` to take a whole subtree."""

    path: str = "/"
    methods: list[str] = msgspec.field(default_factory=lambda: ["GET"])
    description: str = ""
    require_auth: bool = True
    stream_response: bool = False
    metadata: dict[str, Any] = {}


class EndpointRequest(_Msg):
    method: str = "GET"
    path: str = "/"
    relative_path: str = "/"
    path_segments: list[str] = []
    headers: dict[str, str] = {}
    body: bytes = b""
    query_string: str = ""
    remote_addr: str = ""
    host: str = ""
    protocol: str = "HTTP/1.1"
    authenticated: bool = False
    app: App | None = None
    user: User | None = None
    scopes: list[str] = []
    context: PluginContextInfo | None = None


class EndpointResponse(_Msg):
    status_code: int = 200
    headers: dict[str, str] = {}
    body: bytes = b""


class EndpointChunk(_Msg):
    """One piece of a streamed endpoint response; `status_code`/`headers` count on the first chunk only."""

    status_code: int = 200
    headers: dict[str, str] = {}
    body: bytes = b""
    done: bool = False
    error: str = ""


# --------------------------------------------------------------------------------------------------------------
# UI, portal, manifest
# --------------------------------------------------------------------------------------------------------------


class Asset(_Msg):
    path: str = ""
    content: bytes = b""
    content_type: str = "application/octet-stream"


class PortalUserContext(_Msg):
    user_id: int | None = None
    email: str = ""
    name: str = ""
    is_admin: bool = False
    groups: list[str] = []
    metadata: dict[str, Any] = {}


class ManifestCapabilities(_Msg):
    hooks: list[str] = []
    primary_hook: str = ""


class ManifestPermissions(_Msg):
    kv: bool = False
    rpc: bool = False
    routes: list[str] = []
    ui: bool = False
    portal_ui: bool = False
    services: list[str] = []
    """Service scopes such as apps.read, apps.write, llms.read, llms.proxy, kv.readwrite, budget.read."""
    object_hooks: list[str] = []


class ManifestSlot(_Msg):
    """Where a plugin's page appears in the admin UI or the portal (`groups` restricts portal slots)."""

    slot: str = ""
    label: str = ""
    icon: str = ""
    route: str = ""
    component: str = ""
    mount: str = ""
    groups: list[str] = []


class PluginManifest(_Msg):
    id: str = ""
    version: str = ""
    name: str = ""
    description: str = ""
    capabilities: ManifestCapabilities = msgspec.field(default_factory=ManifestCapabilities)
    permissions: ManifestPermissions = msgspec.field(default_factory=ManifestPermissions)
    rpc: list[str] = []
    ui_slots: list[ManifestSlot] = []
    portal_slots: list[ManifestSlot] = []
    compat: dict[str, str] = {}
    security: dict[str, Any] = {}
    assets: list[str] = []
    schedules: list[Schedule] = []
    resource_types: list[ResourceType] = []
    events: list[str] = []
    """Topics (patterns) the plugin subscribes to in the studio: the control plane loads it before it publishes
    such an event in a process, so the plugin misses none (studio plugins otherwise load on first call)."""


# --------------------------------------------------------------------------------------------------------------
# Agents
# --------------------------------------------------------------------------------------------------------------


class AgentChunkType(enum.StrEnum):
    CONTENT = "content"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    THINKING = "thinking"
    ERROR = "error"
    DONE = "done"


class AgentHistoryMessage(_Msg):
    role: str = "user"
    content: str = ""


class AgentMessageRequest(_Msg):
    session_id: str = ""
    user_message: str = ""
    available_tools: list[Tool] = []
    available_datasources: list[Datasource] = []
    available_llms: list[LLM] = []
    config: dict[str, Any] = {}
    history: list[AgentHistoryMessage] = []
    context: PluginContextInfo | None = None


class AgentChunk(_Msg):
    type: AgentChunkType = AgentChunkType.CONTENT
    content: str = ""
    metadata: dict[str, Any] = {}
    is_final: bool = False


# --------------------------------------------------------------------------------------------------------------
# Object hooks, schedules, edge payloads
# --------------------------------------------------------------------------------------------------------------


class ObjectHookRegistration(_Msg):
    """`object_type` is llm | datasource | tool | user | app; `hook_types` are e.g. before_create, after_delete."""

    object_type: str = ""
    hook_types: list[str] = []
    priority: int = 100
    """Lower runs first."""


class ObjectHookRequest(_Msg):
    hook_type: str = ""
    object_type: str = ""
    operation_id: str = msgspec.field(default_factory=_new_id)
    user_id: int | None = None
    plugin_id: int | None = None
    object_json: str = "{}"
    """The object as JSON; secrets are redacted for every phase, after_* included."""
    metadata: dict[str, Any] = {}
    timestamp: float = msgspec.field(default_factory=time.time)
    context: PluginContextInfo | None = None


class ObjectHookResponse(_Msg):
    allow_operation: bool = True
    rejection_reason: str = ""
    modified: bool = False
    modified_object_json: str | None = None
    plugin_metadata: dict[str, Any] = {}
    message: str = ""


class Schedule(_Msg):
    id: str = ""
    name: str = ""
    cron: str = ""
    timezone: str = "UTC"
    enabled: bool = True
    timeout_seconds: int = 60
    config: dict[str, Any] = {}
    execution_id: str = ""
    scheduled_for: float = 0.0


class EdgePayload(_Msg):
    payload: bytes = b""
    edge_id: str = ""
    edge_namespace: str = ""
    correlation_id: str = ""
    plugin_slug: str = ""
    metadata: dict[str, str] = {}
    edge_timestamp: int = 0
    received_timestamp: int = 0


# --------------------------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------------------------


class ResourceType(_Msg):
    slug: str = ""
    name: str = ""
    description: str = ""
    icon: str = ""
    has_privacy_score: bool = True
    supports_submissions: bool = False
    form_component: str = ""


class ResourceInstance(_Msg):
    id: str = ""
    type_slug: str = ""
    name: str = ""
    description: str = ""
    privacy_score: int = 0
    """0-100; an app may not hold a resource scored above the highest privacy score of its LLMs."""
    metadata: dict[str, Any] = {}
    is_active: bool = True


class ResourceSelectionValidation(_Msg):
    valid: bool = True
    errors: list[str] = []


# --------------------------------------------------------------------------------------------------------------
# Events and LLM calls through studio services
# --------------------------------------------------------------------------------------------------------------


class Event(_Msg):
    id: str = msgspec.field(default_factory=_new_id)
    topic: str = ""
    payload: bytes = b""
    direction: Direction = Direction.LOCAL
    source: str = ""
    """Slug of the publishing plugin (or a component name)."""
    origin_edge_id: str = ""
    namespace: str = ""
    timestamp: float = msgspec.field(default_factory=time.time)


class LLMMessage(_Msg):
    """One message of a studio LLM call; an assistant turn that called tools carries them in `tool_calls`
    (OpenAI's shape), and each tool's answer is a `role="tool"` message naming its `tool_call_id`."""

    role: str = "user"
    content: str = ""
    name: str = ""
    tool_call_id: str = ""
    tool_calls: list[dict[str, Any]] = []


class LLMCallResponse(_Msg):
    content: str = ""
    model: str = ""
    finish_reason: str = ""
    tool_calls: list[dict[str, Any]] = []
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LLMCallChunk(_Msg):
    """A piece of a streamed answer; the last one (`done`) carries the tool calls the LLM asked for, whole, in
    `LLMCallResponse`'s shape (vendors stream them in fragments: they are only usable once complete)."""

    content: str = ""
    finish_reason: str = ""
    done: bool = False
    tool_calls: list[dict[str, Any]] = []
