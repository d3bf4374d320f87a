"""The service table: every host-service method a plugin may call, declared once.

`shared_sdk.methods` is the table of what the host calls on a plugin; this is the other direction, what a
plugin calls on its host. Each row names a method of a service interface (`KVStore`, `GatewayServices`,
`StudioServices` in `shared_sdk.context`) and the scopes that allow it. Everything else is read from the
interface's own signature (argument types and order, keyword-only names, result type, streaming), so a
method's shape is written once, in the interface, and its permission once, here.

Derived from this table, never written by hand:
- the scope guard's classes and `OPERATION_SCOPES` (`shared_sdk.scopes`),
- the gRPC broker's methods and their typed decoders (`shared_sdk.isolated.wire`),
- the isolated plugin's service proxies (`shared_sdk.isolated.remote`).
The in-memory fakes (`shared_sdk.testing.services`) hold behaviour, so they are written by hand; a test checks
they implement exactly the table.

A method of an interface that is missing from the table cannot be reached: the guard and the proxy answer it
with a `ServiceError` saying so, and the broker has no gRPC method for it.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .context import GatewayServices, KVStore, StudioServices
from .errors import ServiceError

__all__ = [
    "INTERFACES",
    "SERVICE_METHODS",
    "ServiceMethod",
    "build_service_class",
    "service_methods",
    "unreachable",
]

INTERFACES: dict[str, type] = {"kv": KVStore, "gateway": GatewayServices, "studio": StudioServices}
"""`Services` attribute -> the interface its rows describe."""

_APPS_READ = ("apps.read",)
_APPS_WRITE = ("apps.write",)
_LLMS_READ = ("llms.read",)
_LLMS_PROXY = ("llms.proxy",)

_ROWS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # service, method, scopes (any one allows it; none = baseline, always granted)
    ("kv", "read", ()),
    ("kv", "write", ()),
    ("kv", "delete", ()),
    ("kv", "list", ()),
    ("gateway", "get_app", _APPS_READ),
    ("gateway", "list_apps", _APPS_READ),
    ("gateway", "validate_credential", _APPS_READ),
    ("gateway", "get_user", ("users.read",)),
    ("gateway", "get_llm", _LLMS_READ),
    ("gateway", "get_budget_status", ("budget.read",)),
    ("gateway", "send_payload", ("control.send", "events.publish")),
    ("studio", "get_app", _APPS_READ),
    ("studio", "list_apps", _APPS_READ),
    ("studio", "update_app_metadata", _APPS_WRITE),
    ("studio", "patch_app_metadata", _APPS_WRITE),
    ("studio", "get_user", ("users.read",)),
    ("studio", "get_llm", _LLMS_READ),
    ("studio", "list_llms", _LLMS_READ),
    ("studio", "list_tools", ("tools.read",)),
    ("studio", "call_llm", _LLMS_PROXY),
    ("studio", "stream_llm", _LLMS_PROXY),
)


@dataclass(frozen=True, slots=True)
class ServiceMethod:
    """One row of the table, completed from the interface's signature."""

    service: str
    method: str
    scopes: tuple[str, ...]
    params: tuple[str, ...]
    """Every parameter after `self`, in order; all of them travel positionally over the wire."""
    arg_types: tuple[Any, ...]
    kwnames: tuple[str, ...]
    """The keyword-only parameters (the last `len(kwnames)` of `params`): passed by keyword on the host side."""
    result_type: Any
    """The result, or for a streaming method the type of each item."""
    streaming: bool
    signature: inspect.Signature

    @property
    def name(self) -> str:
        """The broker's gRPC method name."""
        return f"{self.service}_{self.method}"

    @property
    def operation(self) -> str:
        """The name a scope denial reports (`gateway.get_app`)."""
        return f"{self.service}.{self.method}"

    def wire_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """A call's arguments as the positional tuple the broker decodes (defaults filled in)."""
        bound = self.signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        return tuple(bound.arguments.values())[1:]


def _describe(service: str, method: str, scopes: tuple[str, ...]) -> ServiceMethod:
    interface = INTERFACES[service]
    fn = getattr(interface, method)
    hints = typing.get_type_hints(fn)
    signature = inspect.signature(fn)
    params = tuple(signature.parameters.values())[1:]
    result: Any = hints.get("return")
    streaming = typing.get_origin(result) is AsyncIterator
    if streaming:
        (result,) = typing.get_args(result)
    elif result is type(None):
        result = None
    return ServiceMethod(
        service=service,
        method=method,
        scopes=scopes,
        params=tuple(p.name for p in params),
        arg_types=tuple(hints.get(p.name, Any) for p in params),
        kwnames=tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY),
        result_type=result,
        streaming=streaming,
        signature=signature,
    )


SERVICE_METHODS: dict[str, ServiceMethod] = {
    row.name: row for row in (_describe(service, method, scopes) for service, method, scopes in _ROWS)
}
"""Broker name (`gateway_get_app`) -> row."""


def service_methods(service: str, table: Iterable[ServiceMethod] | None = None) -> list[ServiceMethod]:
    """The rows of one service, in table order."""
    rows = SERVICE_METHODS.values() if table is None else table
    return [m for m in rows if m.service == service]


def _interface_methods(interface: type) -> list[str]:
    return sorted(getattr(interface, "__abstractmethods__", ()))


def unreachable(service: str, method: str) -> Callable[..., Any]:
    """What stands for an interface method that is not in the table: every call is refused."""

    def refuse(self: object, *args: Any, **kwargs: Any) -> Any:
        raise ServiceError(
            f"{service}.{method} is not in the SDK's service table (shared_sdk.service_table): no plugin may call it"
        )

    refuse.__name__ = method
    return refuse


def build_service_class(
    service: str,
    name: str,
    bases: tuple[type, ...],
    make_method: Callable[[ServiceMethod], Callable[..., Any]],
    table: Iterable[ServiceMethod] | None = None,
) -> type[Any]:
    """A class implementing `service`'s interface with one `make_method(row)` per row of the table.

    Interface methods without a row get `unreachable`, so the class is complete (instantiable) and the
    method cannot be called through it.
    """
    interface = INTERFACES[service]
    namespace: dict[str, Any] = {"__module__": bases[0].__module__, "__doc__": bases[0].__doc__}
    for method in _interface_methods(interface):
        namespace[method] = unreachable(service, method)
    for row in service_methods(service, table):
        fn = make_method(row)
        fn.__name__ = row.method
        fn.__qualname__ = f"{name}.{row.method}"
        fn.__doc__ = getattr(interface, row.method).__doc__
        namespace[row.method] = fn
    metaclass = type(interface)  # ABCMeta: computes the (now empty) set of abstract methods
    return metaclass(name, (*bases, interface), namespace)
