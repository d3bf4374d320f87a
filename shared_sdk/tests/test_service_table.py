"""The service table is the one declaration of what a plugin may call on its host; the rest is derived from it."""

from __future__ import annotations

import inspect

import pytest

from shared_sdk import ServiceError
from shared_sdk.isolated.remote import RemoteGateway, RemoteKV, RemoteStudio, proxy_class
from shared_sdk.isolated.wire import BROKER_METHODS
from shared_sdk.scopes import ScopedGateway, ScopedStudio, ScopeGuard, guarded_class
from shared_sdk.service_table import INTERFACES, SERVICE_METHODS, service_methods
from shared_sdk.testing import InMemoryGateway, InMemoryKV, InMemoryStudio

DERIVED: dict[str, dict[str, type]] = {
    "guard": {"gateway": ScopedGateway, "studio": ScopedStudio},
    "proxy": {"kv": RemoteKV, "gateway": RemoteGateway, "studio": RemoteStudio},
    "fake": {"kv": InMemoryKV, "gateway": InMemoryGateway, "studio": InMemoryStudio},
}


def _table(service: str) -> set[str]:
    return {m.method for m in service_methods(service)}


def _callable_methods(cls: type) -> set[str]:
    """Public methods the class itself defines that a caller can reach (not refusing stubs, not __init__)."""
    return {
        name
        for name, fn in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(fn) and fn.__code__.co_name != "refuse"
    }


@pytest.mark.parametrize("service", sorted(INTERFACES))
def test_the_table_names_every_method_of_the_interfaces(service):
    assert _table(service) == set(INTERFACES[service].__abstractmethods__)


@pytest.mark.parametrize("kind,service", [(k, s) for k, by in DERIVED.items() for s in sorted(by)])
def test_guard_proxy_and_fakes_cover_exactly_the_table(kind, service):
    cls = DERIVED[kind][service]
    assert _callable_methods(cls) == _table(service)
    cls_abstract = getattr(cls, "__abstractmethods__", frozenset())
    assert not cls_abstract, f"{cls.__name__} leaves {sorted(cls_abstract)} abstract"


def test_the_broker_serves_the_table_with_its_types():
    for name, row in SERVICE_METHODS.items():
        broker = BROKER_METHODS[name]
        assert (broker.arg_types, broker.kwnames, broker.result_type, broker.streaming) == (
            row.arg_types,
            row.kwnames,
            row.result_type,
            row.streaming,
        )
    assert set(BROKER_METHODS) - set(SERVICE_METHODS) == {"logger_log", "events_publish_event", "events_subscribe"}


class _Recorder:
    """Stands for a real implementation (or the broker): records what reached it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def get_budget_status(self, app_id: int) -> str:
        self.calls.append("get_budget_status")
        return "reached"

    async def get_app(self, app_id: int) -> str:
        self.calls.append("get_app")
        return "reached"

    async def call(self, name: str, *args: object) -> str:
        self.calls.append(name)
        return "reached"


def _without(service: str, method: str) -> list:
    return [m for m in SERVICE_METHODS.values() if m.operation != f"{service}.{method}"]


async def test_a_method_missing_from_the_table_cannot_be_called_through_the_guard():
    table = _without("gateway", "get_budget_status")
    guard = ScopeGuard("p")
    guard.scopes = frozenset({"apps.read", "budget.read"})  # even with the scope the method would need
    inner = _Recorder()
    scoped = guarded_class("gateway", table)(inner, guard)
    assert await scoped.get_app(1) == "reached"
    with pytest.raises(ServiceError, match=r"gateway\.get_budget_status is not in the SDK's service table"):
        await scoped.get_budget_status(1)
    assert inner.calls == ["get_app"]


async def test_a_method_missing_from_the_table_cannot_be_called_through_the_proxy():
    table = _without("gateway", "get_budget_status")
    broker = _Recorder()
    remote = proxy_class("gateway", table)(broker)
    assert await remote.get_app(1) == "reached"
    with pytest.raises(ServiceError, match="not in the SDK's service table"):
        await remote.get_budget_status(1)
    assert broker.calls == ["gateway_get_app"]


async def test_the_proxy_sends_arguments_in_the_interface_order_with_defaults():
    broker = _Recorder()
    sent: list[tuple] = []

    async def call(name: str, *args: object) -> str:
        sent.append((name, *args))
        return "ok"

    broker.call = call
    studio = RemoteStudio(broker)
    await studio.list_apps(2, namespace="team")
    await studio.patch_app_metadata(1, "k", delete=True)
    assert sent == [
        ("studio_list_apps", 2, 50, None, "team", None),
        ("studio_patch_app_metadata", 1, "k", None, True),
    ]
