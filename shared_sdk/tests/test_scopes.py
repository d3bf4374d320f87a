"""Service scopes: a plugin reaches only the services its manifest declares (plus the baseline), in-process and
isolated alike, and the denial names the scope and the plugin."""

from __future__ import annotations

import msgspec
import pytest

from shared_sdk import LLM, App, PluginCallError, PluginLoadError, PortalUserContext, Runtime, ServiceScopeDenied
from shared_sdk.host import PluginHost, PluginSpec
from shared_sdk.scopes import ScopeGuard, scoped_services
from shared_sdk.testing import InMemoryGateway, InMemoryStudio, PluginHarness, make_request, make_services

SAMPLES = "shared_sdk.tests.sample_plugins"
USER = PortalUserContext(email="a@b")
BOTH = pytest.mark.parametrize("isolated", [False, True], ids=["inprocess", "isolated"])


def _gateway(slug: str):
    return make_services(Runtime.GATEWAY, slug, gateway=InMemoryGateway(apps=[App(id=1, name="one")]))


def _studio(slug: str):
    studio = InMemoryStudio(apps=[App(id=1, name="one")], llms=[LLM(id=7, slug="m")], llm_responder=lambda *_: "hi")
    return make_services(Runtime.STUDIO, slug, studio=studio)


async def _rpc(h: PluginHarness, method: str) -> dict:
    return msgspec.json.decode(await h.call("handle_portal_rpc", USER, method, b""))


@BOTH
async def test_without_a_manifest_only_the_baseline_is_allowed(isolated):
    async with PluginHarness(
        f"{SAMPLES}:ScopeProbe", isolated=isolated, services=_gateway("scope-probe"), slug="scope-probe"
    ) as h:
        for baseline in ("kv", "log", "local-event", "subscribe"):
            assert await _rpc(h, baseline) == {"ok": True}, baseline
        denied = await _rpc(h, "get-app")
        up = await _rpc(h, "up-event")
        health = h.handle.health()
    # The plugin itself caught a typed error naming scope, plugin and operation (over gRPC too).
    assert denied["denied"] == {"scope": "apps.read", "plugin": "scope-probe", "operation": "gateway.get_app"}
    assert "get_manifest().permissions.services" in denied["msg"]
    assert up["denied"]["scope"] == "events.publish"
    assert h.services.events.hub.sent == []  # nothing left the node
    assert health.scopes == ["kv.readwrite"]
    assert health.denied_scopes == {"apps.read": 1, "events.publish": 1}


@BOTH
async def test_an_uncaught_denial_fails_the_call_with_a_clear_message(isolated):
    async with PluginHarness(
        f"{SAMPLES}:ScopeProbe", isolated=isolated, services=_gateway("scope-probe"), slug="scope-probe"
    ) as h:
        with pytest.raises(PluginCallError) as info:
            await h.call("handle_portal_rpc", USER, "uncaught", b"")
    assert info.value.kind == "exception"
    assert "ServiceScopeDenied" in info.value.detail and "'apps.read'" in info.value.detail
    assert "'scope-probe'" in info.value.detail


async def test_plain_def_handlers_get_the_same_guard_on_blocking_services():
    async with PluginHarness(f"{SAMPLES}:ScopeProbe", services=_gateway("scope-probe"), slug="scope-probe") as h:
        resp = await h.call("handle_pre_auth", make_request("x"))
    assert resp.context_updates == {"denied": "apps.read"}


@BOTH
async def test_declared_scopes_are_granted_and_write_includes_read(isolated):
    async with PluginHarness(
        f"{SAMPLES}:AppWriterProbe", runtime="studio", isolated=isolated, services=_studio("app-writer")
    ) as h:
        assert await _rpc(h, "studio-patch") == {"ok": True}
        assert await _rpc(h, "studio-list-apps") == {"ok": True}  # apps.write includes apps.read
        assert await _rpc(h, "down-event") == {"ok": True}
        llm = await _rpc(h, "studio-call-llm")
    assert llm["denied"]["scope"] == "llms.proxy"
    assert [e.topic for e in h.services.events.hub.sent] == ["probe.down"]
    assert (await h.services.studio.get_app(1)).metadata == {"tier": "gold"}


async def test_control_send_allows_events_up_but_not_down():
    async with PluginHarness(f"{SAMPLES}:ControlSender", services=_gateway("control-sender")) as h:
        assert await _rpc(h, "up-event") == {"ok": True}
        down = await _rpc(h, "down-event")
    assert down["denied"]["scope"] == "events.publish"


async def test_operator_grants_extra_scopes_without_changing_the_plugin():
    async with PluginHarness(
        f"{SAMPLES}:ScopeProbe", services=_gateway("scope-probe"), slug="scope-probe", extra_scopes=["apps.read"]
    ) as h:
        assert await _rpc(h, "get-app") == {"ok": True}
        assert (await _rpc(h, "up-event"))["denied"]["scope"] == "events.publish"
    async with PluginHarness(
        f"{SAMPLES}:ScopeProbe",
        runtime="studio",
        services=_studio("scope-probe"),
        slug="scope-probe",
        extra_scopes=["*"],
    ) as h:
        for method in ("studio-patch", "studio-call-llm", "down-event"):
            assert await _rpc(h, method) == {"ok": True}, method


@BOTH
async def test_an_unknown_scope_in_the_manifest_fails_the_load(isolated):
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug))
    try:
        with pytest.raises(PluginLoadError, match=r"unknown service scope\(s\) app\.read .*known: .*apps\.read"):
            await host.load(PluginSpec(slug="typo", import_path=f"{SAMPLES}:TypoScopes", isolated=isolated))
        assert "typo" not in host
        with pytest.raises(PluginLoadError, match="extra_scopes grants unknown service scope"):
            await host.load(PluginSpec(slug="p", import_path=f"{SAMPLES}:ScopeProbe", extra_scopes=("everything",)))
    finally:
        await host.aclose()


async def test_scoped_services_keep_the_runtime_error_first_and_hide_implementation_extras():
    guard = ScopeGuard("x")
    services = scoped_services(make_services(Runtime.GATEWAY, "x"), guard)
    from shared_sdk import RuntimeServiceUnavailable

    with pytest.raises(RuntimeServiceUnavailable):
        services.studio  # noqa: B018 - the wrong runtime says so before any scope check
    # What the implementation has beyond the interface (the edge's config store, a bus' hub) is not reachable:
    # it would bypass every scope.
    with pytest.raises(AttributeError):
        services.events.hub  # noqa: B018
    with pytest.raises(AttributeError):
        services.gateway.payloads  # noqa: B018
    with pytest.raises(ServiceScopeDenied) as info:
        await services.gateway.list_apps()
    assert (info.value.plugin, info.value.scope, info.value.operation) == ("x", "apps.read", "gateway.list_apps")
