"""The call table: every method the host may call on a plugin, with its argument and result types.

One table drives both ways of running a plugin. In-process, the host uses it to know whether a method
takes a context and to check (and normalise) what the plugin returned. Isolated, the same table builds the
typed msgpack decoders on both sides of the gRPC boundary, so a plugin sees exactly the same objects either
way and a wrong return type gives the same clear error either way.

Normalisation keeps plugins short: a request hook may return `None` for "pass", `get_asset` may return
`(bytes, content_type)`, `handle_rpc` may return a dict (sent as JSON), `get_config_schema` may return JSON
text. Everything else must be the declared type (or convertible to it, such as a dict for a struct). Another
SDK message is never converted: a request hook that returns the request itself (instead of
`PluginResponse(modified=True, request=req)`) would otherwise become a `PluginResponse` with the request's
`headers` and `body` and `modified=False`, and its change would be dropped without a word.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import UnionType
from typing import Any

import msgspec

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
    UpstreamResponse,
    User,
    _Msg,
)
from .result_fields import Checker, struct_checker

__all__ = ["DECLARATIONS", "LIFECYCLE", "METHODS", "MethodSpec", "ResultTypeError"]

_json = msgspec.json.Encoder()


class ResultTypeError(TypeError):
    """A plugin returned something its method cannot return; the message names the method and both types."""


@dataclass(frozen=True, slots=True)
class MethodSpec:
    name: str
    takes_ctx: bool
    arg_types: tuple[Any, ...]
    result_type: Any
    streaming: bool = False
    none_means: Callable[[], Any] | None = None
    """Factory for the result when the plugin returns `None` (e.g. "pass" for request hooks)."""
    coerce: Callable[[Any], Any] | None = None
    """Extra conversions beyond `msgspec.convert` (tuples for assets, dicts for RPC payloads)."""
    exact: Any = field(init=False, repr=False, compare=False, default=None)
    """The one class a value of `result_type` may be as it is: the type itself, or `X` of `X | None`. Why: an
    optional result (`handle_analytics`: `DataCollectionResponse | None`) that is exactly `X` is returned at once;
    `msgspec.convert` on the union re-walks the type on every call (~15,000 instructions per request)."""

    check: Checker | None = field(init=False, repr=False, compare=False, default=None)
    """The fields of an `exact` result, checked as they are (`result_fields`): its constructor checked none."""

    def __post_init__(self) -> None:
        rt = self.result_type
        if isinstance(rt, UnionType):
            others = [arg for arg in rt.__args__ if arg is not type(None)]
            rt = others[0] if len(others) == 1 and len(rt.__args__) == 2 else None
        exact = rt if isinstance(rt, type) else None
        object.__setattr__(self, "exact", exact)
        if exact is not None and issubclass(exact, msgspec.Struct):
            object.__setattr__(self, "check", struct_checker(exact))

    def normalize(self, value: Any) -> Any:
        """Return `value` as `result_type`, or raise `ResultTypeError` saying what was wrong."""
        rt = self.result_type
        if rt is None:  # the method's result is ignored (scheduler, session callbacks)
            return None
        if type(value) is self.exact:  # the hot path: the plugin returned exactly the declared struct
            check = self.check
            if check is not None:
                problem = check(value)
                if problem is not None:
                    raise ResultTypeError(f"{self.name} returned {problem}")
            return value
        if value is None:
            if self.none_means is not None:
                return self.none_means()
            if _allows_none(rt):
                return None
        if self.coerce is not None:
            value = self.coerce(value)
            if type(value) is rt:
                return value
        if isinstance(value, _Msg) and not (self.exact is not None and isinstance(value, self.exact)):
            raise ResultTypeError(
                f"{self.name} returned {type(value).__name__}, expected {_type_name(rt)}: another SDK message is "
                f"not converted{_HINTS.get((type(value), self.exact), '')}"
            )
        try:
            return msgspec.convert(value, rt, from_attributes=True)
        except (msgspec.ValidationError, TypeError) as exc:
            raise ResultTypeError(
                f"{self.name} returned {type(value).__name__}, expected {_type_name(rt)} ({exc})"
            ) from None


_HINTS: dict[tuple[Any, Any], str] = {
    (EnrichedRequest, PluginResponse): "; to change the request, return PluginResponse(modified=True, request=req)",
    (UpstreamResponse, ResponseWriteResponse): (
        "; to change the response, return ResponseWriteResponse(modified=True, status_code=..., headers=..., body=...)"
    ),
    (ResponseWriteRequest, ResponseWriteResponse): (
        "; to change the response, return ResponseWriteResponse(modified=True, ...) with the fields to replace"
    ),
}
"""The mistakes a first plugin makes most, with what to return instead."""


def _allows_none(tp: Any) -> bool:
    return tp is None or tp is type(None) or (hasattr(tp, "__args__") and type(None) in tp.__args__)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _asset(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2:
        content, content_type = value
        return Asset(
            content=content.encode() if isinstance(content, str) else bytes(content), content_type=content_type
        )
    return value


def _payload(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict | list | int | float | bool):
        return _json.encode(value)
    return value


def _schema(value: Any) -> Any:
    if isinstance(value, bytes | str):
        return msgspec.json.decode(value)
    return value


def _manifest(value: Any) -> Any:
    if isinstance(value, bytes | str):
        return msgspec.json.decode(value, type=PluginManifest)
    return value


def _endpoint_chunk(value: Any) -> Any:
    if isinstance(value, EndpointResponse):
        return EndpointChunk(status_code=value.status_code, headers=value.headers, body=value.body, done=True)
    if isinstance(value, bytes | str):
        return EndpointChunk(body=value.encode() if isinstance(value, str) else value)
    return value


def _agent_chunk(value: Any) -> Any:
    if isinstance(value, str):
        return AgentChunk(content=value)
    return value


_DC = DataCollectionResponse | None

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("handle_pre_auth", True, (EnrichedRequest,), PluginResponse, none_means=PluginResponse),
        MethodSpec("handle_auth", True, (AuthRequest,), AuthResponse, none_means=AuthResponse),
        MethodSpec("get_app_by_credential", True, (str,), App | None),
        MethodSpec("get_user_by_credential", True, (str,), User | None),
        MethodSpec("handle_post_auth", True, (EnrichedRequest,), PluginResponse, none_means=PluginResponse),
        MethodSpec(
            "on_before_write_headers",
            True,
            (ResponseWriteRequest,),
            ResponseWriteResponse,
            none_means=ResponseWriteResponse,
        ),
        MethodSpec(
            "on_before_write", True, (ResponseWriteRequest,), ResponseWriteResponse, none_means=ResponseWriteResponse
        ),
        MethodSpec(
            "on_before_write_events",
            True,
            (StreamEventsRequest,),
            StreamEventsResponse,
            none_means=StreamEventsResponse,
        ),
        MethodSpec(
            "on_stream_complete",
            True,
            (StreamCompleteRequest,),
            StreamCompleteResponse,
            none_means=StreamCompleteResponse,
        ),
        MethodSpec("handle_proxy_log", True, (ProxyLog,), _DC),
        MethodSpec("handle_analytics", True, (AnalyticsRecord,), _DC),
        MethodSpec("handle_budget_usage", True, (BudgetUsage,), _DC),
        MethodSpec("get_endpoint_registrations", False, (), list[EndpointRegistration]),
        MethodSpec(
            "handle_endpoint_request", True, (EndpointRequest,), EndpointChunk, streaming=True, coerce=_endpoint_chunk
        ),
        MethodSpec("get_asset", False, (str,), Asset | None, coerce=_asset),
        MethodSpec("list_assets", False, (), list[str]),
        MethodSpec("get_manifest", False, (), PluginManifest, coerce=_manifest),
        MethodSpec("handle_rpc", False, (str, bytes), bytes, none_means=bytes, coerce=_payload),
        MethodSpec(
            "handle_portal_rpc", True, (PortalUserContext, str, bytes), bytes, none_means=bytes, coerce=_payload
        ),
        MethodSpec("get_config_schema", False, (), dict[str, Any], coerce=_schema),
        MethodSpec(
            "handle_agent_message", True, (AgentMessageRequest,), AgentChunk, streaming=True, coerce=_agent_chunk
        ),
        MethodSpec("get_object_hook_registrations", False, (), list[ObjectHookRegistration]),
        MethodSpec("handle_object_hook", True, (ObjectHookRequest,), ObjectHookResponse, none_means=ObjectHookResponse),
        MethodSpec("execute_scheduled_task", True, (Schedule,), None),
        MethodSpec("accept_edge_payload", True, (EdgePayload,), bool),
        MethodSpec("get_resource_types", False, (), list[ResourceType]),
        MethodSpec("list_resources", True, (str,), list[ResourceInstance]),
        MethodSpec("get_resource", True, (str, str), ResourceInstance | None),
        MethodSpec(
            "validate_resource_selection",
            True,
            (str, list[str]),
            ResourceSelectionValidation,
            none_means=ResourceSelectionValidation,
        ),
        MethodSpec("create_resource", True, (str, dict[str, Any]), ResourceInstance),
        MethodSpec("on_session_ready", True, (), None),
        MethodSpec("on_session_closing", True, (), None),
    )
}

DECLARATIONS: frozenset[str] = frozenset(
    {
        "get_config_schema",
        "get_manifest",
        "get_object_hook_registrations",
        "get_resource_types",
        "get_endpoint_registrations",
        "list_assets",
    }
)
"""Methods that declare what a plugin is (no context, no state): a host may ask them before `initialize`, to
describe a plugin it has not configured yet -- in-process, and through an isolated plugin's process alike."""

LIFECYCLE: dict[str, MethodSpec] = {
    "initialize": MethodSpec("initialize", True, (dict[str, Any],), None),
    "shutdown": MethodSpec("shutdown", True, (), None),
}
