"""What crosses the process boundary between a host and an isolated plugin, and how.

Transport: gRPC over a Unix socket the host chose (no TCP port, no network exposure). We use gRPC's
*generic* handlers: every method carries one msgspec-msgpack message as raw bytes, so the typed structs of
`shared_sdk.messages` are the schema and no generated code has to be kept in sync with them.

Two services:
    fjordgate.plugin.v1.Plugin   served by the plugin process; one gRPC method per plugin method
                                 (`/fjordgate.plugin.v1.Plugin/handle_post_auth`), plus `_describe`,
                                 `_initialize`, `_shutdown`, `_ping` (answers a `PingReply`: the
                                 plugin process' worker-thread state). Request: msgpack of
                                 `(ContextData | None, *args)`. Response: msgpack of the result.
    fjordgate.broker.v1.Broker   served by the host for that plugin; the plugin's services
                                 (`kv_read`, `log`, `events_publish`, `gateway_get_app`, `studio_call_llm`, ...)

Status codes used on top of gRPC's own:
    ABORTED             the plugin (or, on the broker, the service) raised; details = "ExcType: message"
                        (a `ServiceScopeDenied` also carries trailing metadata `fj-scope`, `fj-operation`,
                        `fj-plugin`, so the plugin re-raises the same typed error)
    UNIMPLEMENTED       the plugin does not implement the method
    FAILED_PRECONDITION the plugin cannot take the call now (every worker thread is stuck): `unavailable`
    DEADLINE_EXCEEDED   the call outlived its timeout
    UNAVAILABLE         the other process is gone (a crash, from the host's point of view)

Call ids: a plugin call may carry gRPC metadata `fj-call` (an id the host gave that call); every service call the
plugin makes while serving it sends the same metadata back to the broker (`calls`). Either side may lack it.

Handshake: the host starts the program with the environment below; when its server listens, the plugin
prints one line `FJORDGATE_PLUGIN|1|unix:<path>` on stdout. The plugin exits when its stdin closes, so it
never outlives its host.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import msgspec

from ..messages import ContextData, Event, PluginManifest, Runtime
from ..methods import LIFECYCLE, METHODS
from ..service_table import SERVICE_METHODS

__all__ = [
    "BROKER_METHODS",
    "BROKER_SERVICE",
    "ENV_BROKER_SOCKET",
    "ENV_PLUGIN_SOCKET",
    "ENV_RUNTIME",
    "ENV_SLUG",
    "ENV_SYNC_WORKERS",
    "ENV_TIMEOUT",
    "GRPC_OPTIONS",
    "HANDSHAKE_PREFIX",
    "PLUGIN_SERVICE",
    "BrokerMethod",
    "Describe",
    "PingReply",
    "decode_error",
    "encode_error",
    "encoder",
    "request_decoder",
    "result_decoder",
]

if TYPE_CHECKING:
    import grpc

    RpcContext: TypeAlias = grpc.aio.ServicerContext[bytes, bytes]
    UnaryRpc: TypeAlias = Callable[[bytes, RpcContext], Awaitable[bytes]]
    """A unary gRPC method of ours: msgpack bytes in, msgpack bytes out."""
    StreamRpc: TypeAlias = Callable[[bytes, RpcContext], AsyncIterator[bytes]]

PROTOCOL_VERSION = 1
HANDSHAKE_PREFIX = f"FJORDGATE_PLUGIN|{PROTOCOL_VERSION}|"
PLUGIN_SERVICE = "fjordgate.plugin.v1.Plugin"
BROKER_SERVICE = "fjordgate.broker.v1.Broker"

ENV_PLUGIN_SOCKET = "FJORDGATE_PLUGIN_SOCKET"
ENV_BROKER_SOCKET = "FJORDGATE_BROKER_SOCKET"
ENV_SLUG = "FJORDGATE_PLUGIN_SLUG"
ENV_RUNTIME = "FJORDGATE_RUNTIME"
ENV_TIMEOUT = "FJORDGATE_PLUGIN_TIMEOUT_S"
ENV_SYNC_WORKERS = "FJORDGATE_PLUGIN_SYNC_WORKERS"

_MB = 1024 * 1024
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", 64 * _MB),
    ("grpc.max_receive_message_length", 64 * _MB),
    ("grpc.enable_retries", 0),
    ("grpc.use_local_subchannel_pool", 1),
]


def _enc_hook(obj: Any) -> Any:
    """Log fields and metadata may hold arbitrary objects: send their text rather than failing the call."""
    return str(obj)


encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)


class Describe(msgspec.Struct, kw_only=True):
    """The plugin's answer to `_describe`: identity, implemented methods, config schema."""

    name: str = ""
    version: str = ""
    description: str = ""
    methods: list[str] = []
    capabilities: list[str] = []
    config_schema: dict[str, Any] | None = None
    pid: int = 0
    manifest: PluginManifest | None = None
    """Read once, before `initialize`: it decides the plugin's service scopes."""


class PingReply(msgspec.Struct, kw_only=True):
    """The plugin process' answer to `_ping`: alive, and how its plain-`def` worker threads are doing."""

    sync_workers: int = 0
    busy_threads: int = 0
    stuck_threads: int = 0


_request_decoders: dict[str, msgspec.msgpack.Decoder[Any]] = {}
_result_decoders: dict[str, msgspec.msgpack.Decoder[Any]] = {}


def _tuple_of(types: tuple[Any, ...]) -> Any:
    """`tuple[types...]` built at run time (the decoders' argument types come from the call tables)."""
    return tuple.__class_getitem__(types)


def request_decoder(method: str) -> msgspec.msgpack.Decoder[Any]:
    """Decoder for a plugin method's request `(ContextData | None, *args)`."""
    dec = _request_decoders.get(method)
    if dec is None:
        spec = METHODS.get(method) or LIFECYCLE[method]
        dec = msgspec.msgpack.Decoder(_tuple_of((ContextData | None, *spec.arg_types)))
        _request_decoders[method] = dec
    return dec


def result_decoder(method: str) -> msgspec.msgpack.Decoder[Any]:
    dec = _result_decoders.get(method)
    if dec is None:
        if method.startswith("_"):  # control methods
            rt: Any = {"_describe": Describe, "_ping": PingReply}.get(method, Any)
        else:
            spec = METHODS.get(method) or LIFECYCLE[method]
            rt = spec.result_type if spec.result_type is not None else Any
        dec = msgspec.msgpack.Decoder(rt)
        _result_decoders[method] = dec
    return dec


def encode_error(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def decode_error(details: str | None) -> tuple[str, str]:
    """("ExcType", "message") from an ABORTED status' details."""
    kind, _, message = (details or "").partition(": ")
    return kind, message


# --------------------------------------------------------------------------------------------------------------
# Broker methods: the service table plus the logger and the event bus
# --------------------------------------------------------------------------------------------------------------


class BrokerMethod(msgspec.Struct, frozen=True):
    service: str
    method: str
    arg_types: tuple[Any, ...]
    result_type: Any
    kwnames: tuple[str, ...] = ()
    """The last len(kwnames) arguments are passed by keyword on the host side."""
    streaming: bool = False

    @property
    def name(self) -> str:
        return f"{self.service}_{self.method}"


BROKER_METHODS: dict[str, BrokerMethod] = {
    m.name: m
    for m in (
        # Services whose wire shape differs from their interface: a log call's fields travel as one dict,
        # a subscription is a stream of events (topic None = every topic).
        BrokerMethod("logger", "log", (int, str, dict[str, Any]), None),
        BrokerMethod("events", "publish_event", (Event,), None),
        BrokerMethod("events", "subscribe", (str | None,), Event, streaming=True),
        # Everything else comes from the service table.
        *(
            BrokerMethod(row.service, row.method, row.arg_types, row.result_type, row.kwnames, row.streaming)
            for row in SERVICE_METHODS.values()
        ),
    )
}
"""Broker gRPC method name (`gateway_get_app`) -> how it is called."""

_broker_arg_decoders = {name: msgspec.msgpack.Decoder(_tuple_of(m.arg_types)) for name, m in BROKER_METHODS.items()}
_broker_result_decoders = {
    name: msgspec.msgpack.Decoder(m.result_type if m.result_type is not None else Any)
    for name, m in BROKER_METHODS.items()
}


def broker_arg_decoder(name: str) -> msgspec.msgpack.Decoder[Any]:
    return _broker_arg_decoders[name]


def broker_result_decoder(name: str) -> msgspec.msgpack.Decoder[Any]:
    return _broker_result_decoders[name]


def runtime_from_env(value: str | None) -> Runtime:
    return Runtime(value or Runtime.GATEWAY.value)
