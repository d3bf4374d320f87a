"""Loading rules (config schema, bad plugins, reload) and the services a plugin reaches, in-process and isolated."""

from __future__ import annotations

import sys
import textwrap
from decimal import Decimal

import msgspec
import pytest

import shared_sdk
from shared_sdk import (
    LLM,
    App,
    BudgetStatus,
    Direction,
    PluginConfigError,
    PluginLoadError,
    PortalUserContext,
    Runtime,
    RuntimeServiceUnavailable,
)
from shared_sdk.host import PluginHost, PluginSpec
from shared_sdk.testing import (
    InMemoryGateway,
    InMemoryKV,
    InMemoryStudio,
    PluginHarness,
    make_request,
    make_services,
)

SAMPLES = "shared_sdk.tests.sample_plugins"


def test_public_names_are_pinned():
    # Changing this list is an API change: other packages import these names.
    assert sorted(shared_sdk.__all__) == sorted(
        [
            *"AgentPlugin AuthHandler BasePlugin ConfigProvider CustomEndpointHandler DataCollector".split(),
            *"EdgePayloadReceiver ManifestProvider ObjectHookHandler PortalUIProvider PostAuthHandler".split(),
            *"PreAuthHandler ResourceProvider ResponseHandler SchedulerPlugin SessionAware UIProvider".split(),
            *"Context Direction EventBus GatewayServices KVStore PluginLogger Runtime Services StudioServices".split(),
            *"LLM AgentChunk AgentChunkType AgentHistoryMessage AgentMessageRequest AnalyticsRecord App".split(),
            *"Asset AuthRequest AuthResponse BudgetStatus BudgetUsage ContextData DataCollectionResponse".split(),
            *"Datasource EdgePayload EndpointChunk EndpointRegistration EndpointRequest EndpointResponse".split(),
            *"EnrichedRequest Event LLMCallChunk LLMCallResponse LLMMessage ManifestCapabilities".split(),
            *"ManifestPermissions ManifestSlot ObjectHookRegistration ObjectHookRequest ObjectHookResponse".split(),
            *"PluginContextInfo PluginError PluginManifest PluginRequest PluginResponse PortalUserContext".split(),
            *"ProxyLog ResourceInstance ResourceSelectionValidation ResourceType ResponseWriteRequest".split(),
            *"ResponseWriteResponse Schedule ShortCircuit StreamCompleteRequest StreamCompleteResponse".split(),
            *"StreamEventsRequest StreamEventsResponse Tool".split(),
            *"UpstreamResponse User".split(),
            *"CapabilityNotImplemented FjordgateSDKError PluginCallError PluginConfigError PluginLoadError".split(),
            *"RuntimeServiceUnavailable ServiceError ServiceScopeDenied serve".split(),
        ]
    )
    for name in shared_sdk.__all__:
        assert hasattr(shared_sdk, name), name


def test_money_is_decimal_and_encodes_as_string():
    record = shared_sdk.AnalyticsRecord(cost=Decimal("0.000123"), prompt_tokens=3)
    encoded = msgspec.json.encode(record)
    assert b'"cost":"0.000123"' in encoded
    assert msgspec.json.decode(encoded, type=shared_sdk.AnalyticsRecord).cost == Decimal("0.000123")
    assert len(record.record_id) == 32


def test_wrong_runtime_services_raise_a_clear_error():
    services = make_services(Runtime.GATEWAY, "x")
    with pytest.raises(RuntimeServiceUnavailable, match="only available in the studio runtime"):
        services.studio  # noqa: B018
    assert services.gateway is not None


async def test_kv_ttl_and_prefix_listing():
    now = [100.0]
    kv = InMemoryKV(clock=lambda: now[0])
    await kv.write("a/1", b"x", ttl_s=5)
    await kv.write("a/2", b"y")
    await kv.write("b/1", b"z")
    assert await kv.list("a/") == ["a/1", "a/2"]
    now[0] += 6
    assert await kv.read("a/1") is None and await kv.list("a/") == ["a/2"]


async def test_config_is_validated_against_the_schema_before_initialize():
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug))
    bad = PluginSpec(slug="e", import_path=f"{SAMPLES}:EverythingPlugin", config={"limit": 0, "colour": "red"})
    with pytest.raises(PluginConfigError) as info:
        await host.load(bad)
    assert "$.limit: 0 is less than the minimum of 1" in info.value.errors
    assert any("colour" in e for e in info.value.errors)
    assert host.get("e") is None
    handle = await host.load(PluginSpec(slug="e", import_path=f"{SAMPLES}:EverythingPlugin", config={"limit": 3}))
    assert handle.config == {"limit": 3, "greeting": "hello"}
    await host.aclose()


async def test_config_is_validated_for_isolated_plugins_too():
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug))
    spec = PluginSpec(slug="e", import_path=f"{SAMPLES}:EverythingPlugin", isolated=True, config={"limit": "many"})
    with pytest.raises(PluginConfigError, match="'many' is not of type 'integer'"):
        await host.load(spec)
    await host.aclose()


@pytest.mark.parametrize(
    ("import_path", "message"),
    [
        ("nowhere.module:Thing", "cannot import 'nowhere.module'"),
        (f"{SAMPLES}:Missing", "has no attribute 'Missing'"),
        ("no-colon", "must look like 'package.module:ClassName'"),
        (f"{SAMPLES}:HalfAuth", "capability 'auth' needs get_app_by_credential, get_user_by_credential"),
        (
            f"{SAMPLES}:MisspelledHooks",
            "handle_postauth is not a method the host calls: did you mean handle_post_auth.; "
            "initialise is not a method the host calls: did you mean initialize.",
        ),
        ("entrypoint:not-installed", "no entry point 'not-installed'"),
    ],
)
async def test_load_errors_say_what_is_wrong(import_path, message):
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug))
    with pytest.raises(PluginLoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await host.load(PluginSpec(slug="p", import_path=import_path))


@pytest.mark.parametrize("isolated", [False, True], ids=["inprocess", "isolated"])
async def test_helpers_named_like_hooks_are_not_typos(isolated):
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug))
    handle = await host.load(PluginSpec(slug="h", import_path=f"{SAMPLES}:HelpersNamedLikeHooks", isolated=isolated))
    assert handle.capabilities == {"post_auth"}
    await host.aclose()


@pytest.mark.parametrize("isolated", [False, True], ids=["inprocess", "isolated"])
async def test_initialize_failure_refuses_the_plugin(isolated):
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug))
    with pytest.raises((PluginLoadError, shared_sdk.PluginCallError), match="database url missing"):
        await host.load(PluginSpec(slug="b", import_path=f"{SAMPLES}:BadInitialize", isolated=isolated))
    assert host.get("b") is None


async def test_isolated_command_that_never_handshakes_is_a_load_error(tmp_path):
    script = tmp_path / "silent.py"
    script.write_text("import sys; print('I am not a plugin', file=sys.stderr); sys.exit(4)\n")
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug))
    with pytest.raises(PluginLoadError, match="I am not a plugin"):
        await host.load(PluginSpec(slug="s", command=[sys.executable, str(script)], startup_timeout_s=10))


async def test_own_main_with_serve_runs_isolated(tmp_path):
    script = tmp_path / "myplugin.py"
    script.write_text(
        textwrap.dedent(
            """
            import shared_sdk
            from shared_sdk import BasePlugin, PluginResponse

            class Shout(BasePlugin):
                name = "shout"
                version = "2.0.0"

                async def handle_post_auth(self, ctx, req):
                    return PluginResponse(context_updates={"shout": req.body.decode().upper()})

            if __name__ == "__main__":
                shared_sdk.serve(Shout())
            """
        )
    )
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug))
    handle = await host.load(PluginSpec(slug="shout", command=[sys.executable, str(script)]))
    try:
        assert handle.capabilities == frozenset({"post_auth"}) and handle.version == "2.0.0"
        resp = await handle.call("handle_post_auth", None, make_request(body=b"quiet"))
        assert resp.context_updates == {"shout": "QUIET"}
    finally:
        await host.aclose()
    assert handle.pid is None  # the process is gone after aclose


async def test_reload_keeps_the_old_plugin_when_the_new_config_is_bad():
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug))
    first = await host.load(PluginSpec(slug="e", import_path=f"{SAMPLES}:EverythingPlugin", config={"limit": 2}))
    with pytest.raises(PluginConfigError):
        await host.reload(PluginSpec(slug="e", import_path=f"{SAMPLES}:EverythingPlugin", config={"limit": -1}))
    assert host.get("e") is first and first.healthy
    second = await host.reload(PluginSpec(slug="e", import_path=f"{SAMPLES}:EverythingPlugin", config={"limit": 5}))
    assert host.get("e") is second and second.config["limit"] == 5 and not first.healthy
    await host.unload("e")
    assert host.get("e") is None and not second.healthy


async def test_sync_handler_gets_blocking_services():
    async with PluginHarness(f"{SAMPLES}:SyncProbe") as h:
        resp = await h.call("handle_post_auth", make_request("x"))
    assert resp.context_updates == {"value": "yes", "keys": ["sync"]}


def _gateway_services(slug):
    return make_services(
        Runtime.GATEWAY,
        slug,
        gateway=InMemoryGateway(
            apps=[App(id=1, name="one"), App(id=2, name="two")],
            credentials={"k-1": 1},
            budgets={1: BudgetStatus(app_id=1, spent=Decimal("12.50"))},
        ),
    )


def _studio_services(slug):
    return make_services(
        Runtime.STUDIO,
        slug,
        studio=InMemoryStudio(
            apps=[App(id=1, name="one", namespace="prod"), App(id=2, name="two")],
            llms=[LLM(id=7, slug="gpt", default_model="m")],
            llm_responder=lambda llm_id, messages, model: "hello there",
        ),
    )


@pytest.mark.parametrize("isolated", [False, True], ids=["inprocess", "isolated"])
async def test_services_work_the_same_in_process_and_isolated(isolated):
    user = PortalUserContext(email="a@b")
    async with PluginHarness(
        f"{SAMPLES}:ServiceProbe", isolated=isolated, services=_gateway_services("probe"), slug="probe"
    ) as h:
        kv = msgspec.json.decode(await h.call("handle_portal_rpc", user, "kv", b""))
        assert kv == {"listed": ["a/1", "a/2"], "read": "one", "deleted": True, "missing": None}
        events = msgspec.json.decode(await h.call("handle_portal_rpc", user, "events", b""))
        assert events["source"] == "probe"
        hub = h.services.events.hub
        sent = hub.sent[-1]
        assert (sent.topic, sent.direction, msgspec.json.decode(sent.payload)) == ("probe.up", Direction.UP, {"n": 1})
        assert [e.topic for e in hub.published][-1] == "probe.local"
        gw = msgspec.json.decode(await h.call("handle_portal_rpc", user, "gateway", b""))
        assert gw == {"app": "one", "apps": 2, "valid": True, "spent": "12.50"}
        wrong = msgspec.json.decode(await h.call("handle_portal_rpc", user, "wrong-runtime", b""))
        assert wrong["error"] == "RuntimeServiceUnavailable" and "gateway runtime" in wrong["message"]
        await h.call("handle_portal_rpc", user, "log", b"")
        if isolated:  # the record travels over the broker; give it a moment
            import asyncio

            for _ in range(100):
                if h.services.logger.messages():
                    break
                await asyncio.sleep(0.02)
        assert h.services.logger.records[-1].message == "probe says hi"
        assert h.services.logger.records[-1].fields == {"n": 3}


@pytest.mark.parametrize("isolated", [False, True], ids=["inprocess", "isolated"])
async def test_studio_services_from_a_plugin(isolated):
    user = PortalUserContext(email="a@b")
    async with PluginHarness(
        f"{SAMPLES}:ServiceProbe", runtime="studio", isolated=isolated, services=_studio_services("probe"), slug="probe"
    ) as h:
        out = msgspec.json.decode(await h.call("handle_portal_rpc", user, "studio", b""))
        wrong = msgspec.json.decode(await h.call("handle_portal_rpc", user, "wrong-runtime", b""))
    assert out == {
        "apps": ["one"],
        "meta": {"tier": "gold"},
        "answer": "hello there",
        "chunks": ["hello", " there", ""],
    }
    assert wrong["error"] == "RuntimeServiceUnavailable" and "studio runtime" in wrong["message"]


@pytest.mark.parametrize("isolated", [False, True], ids=["inprocess", "isolated"])
async def test_wrong_return_type_is_an_exception_with_a_clear_message(isolated):
    async with PluginHarness(f"{SAMPLES}:BadReturn", isolated=isolated) as h:
        with pytest.raises(shared_sdk.PluginCallError) as info:
            await h.call("handle_post_auth", make_request("x"))
    assert info.value.kind == "exception"
    assert "handle_post_auth returned dict, expected PluginResponse" in info.value.detail


@pytest.mark.parametrize("isolated", [False, True], ids=["inprocess", "isolated"])
async def test_wrong_argument_type_is_an_exception_not_a_crash(isolated):
    async with PluginHarness(f"{SAMPLES}:EverythingPlugin", isolated=isolated) as h:
        with pytest.raises(shared_sdk.PluginCallError) as info:
            await h.call("accept_edge_payload", "not-a-payload")
        assert info.value.kind == "exception"
        assert h.handle.healthy


async def test_agent_error_mid_stream_surfaces_as_plugin_call_error():
    async with PluginHarness(f"{SAMPLES}:EverythingPlugin", isolated=True) as h:
        got = []
        with pytest.raises(shared_sdk.PluginCallError) as info:
            async for chunk in h.stream(
                "handle_agent_message",
                shared_sdk.AgentMessageRequest(user_message="x"),
                ctx=h.context(metadata={"fault_mid_stream": "raise"}),
            ):
                got.append(chunk.type)
    assert len(got) == 4 and info.value.kind == "exception" and "agent failed mid-stream" in info.value.detail


def test_a_finished_event_loop_is_not_kept_alive_by_plugin_calls():
    """Each plugin call registers a deadline with its loop's bookkeeping; that must not pin the loop (a test
    suite or a process that runs several loops would otherwise keep every one of them)."""
    import asyncio
    import gc
    import weakref

    loops = []

    async def one_call():
        loops.append(weakref.ref(asyncio.get_running_loop()))
        async with PluginHarness(f"{SAMPLES}:MinimalPostAuth") as h:
            await h.call("handle_post_auth", make_request("hi"))

    asyncio.run(one_call())
    gc.collect()
    assert loops[0]() is None
