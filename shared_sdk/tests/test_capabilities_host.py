"""Every capability driven through the real host, in-process and isolated: a normal call, a timeout, an
exception, and (isolated) a kill -9 of the plugin process followed by its supervised restart.

One plugin instance per mode is shared by the whole module (one child process for the isolated mode).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from shared_sdk import (
    AgentChunkType,
    AgentMessageRequest,
    AnalyticsRecord,
    AuthRequest,
    BudgetUsage,
    EdgePayload,
    EndpointChunk,
    EndpointRequest,
    EndpointResponse,
    Event,
    ObjectHookRequest,
    PluginCallError,
    PortalUserContext,
    ProxyLog,
    ResponseWriteRequest,
    Schedule,
    StreamCompleteRequest,
)
from shared_sdk.testing import PluginHarness, make_request

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT_S = 0.6
PLUGIN = "shared_sdk.tests.sample_plugins:EverythingPlugin"


def _harness(isolated: bool) -> PluginHarness:
    return PluginHarness(PLUGIN, slug="everything", isolated=isolated, timeout_s=TIMEOUT_S, config={"greeting": "hej"})


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def isolated_harness():
    """The module's one plugin process."""
    async with _harness(isolated=True) as h:
        yield h


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def inprocess_harness():
    async with _harness(isolated=False) as h:
        yield h


@pytest.fixture(scope="module", params=["inprocess", "isolated"])
def harness(request):
    return request.getfixturevalue(f"{request.param}_harness")


@dataclass(frozen=True)
class Case:
    """How to exercise one capability: the call (returns its result) and what a user would check."""

    capability: str
    method: str
    run: Callable[[PluginHarness, Any], Awaitable[Any]]
    check: Callable[[PluginHarness, Any], Awaitable[None]]


async def _unary(h, ctx, method, *args):
    return await h.handle.call(method, ctx, *args)


async def _stream(h, ctx, method, *args):
    return [item async for item in h.handle.stream(method, ctx, *args)]


async def _arm_then(h, ctx, method, *args):
    """Methods without a context: arm the fault through handle_rpc, then call."""
    fault = ctx.metadata.get("fault") if ctx is not None else None
    if fault:
        await h.handle.call("handle_rpc", None, "arm", fault.encode())
    return await h.handle.call(method, None, *args)


async def check_pre_auth(h, resp):
    assert resp.request.headers["x-pre"] == "1"
    assert int(await h.services.kv.read("pre-count")) >= 1  # a sync handler used blocking services


async def check_auth(h, result):
    auth, app, user = result
    assert auth.authenticated and auth.app_id == 1 and auth.claims == {"scope": "all"}
    assert app.name == "app-one" and user.email == "ada@example.com"


async def run_auth(h, ctx):
    auth = await h.handle.call("handle_auth", ctx, AuthRequest(credential="good"))
    app = await h.handle.call("get_app_by_credential", ctx, "good")
    user = await h.handle.call("get_user_by_credential", ctx, "good")
    return auth, app, user


async def check_post_auth(h, resp):
    assert resp.request.headers["x-greeting"] == "hej"  # config reached initialize
    assert resp.context_updates == {"upstream_override": "secondary"}


async def run_response(h, ctx):
    head = await h.handle.call("on_before_write_headers", ctx, ResponseWriteRequest(headers={"a": "b"}))
    body = await h.handle.call("on_before_write", ctx, ResponseWriteRequest(body=b"full"))
    chunk = await h.handle.call("on_before_write", ctx, ResponseWriteRequest(body=b"data", is_stream_chunk=True))
    drop = await h.handle.call("on_before_write", ctx, ResponseWriteRequest(body=b"drop", is_stream_chunk=True))
    done = await h.handle.call("on_stream_complete", ctx, StreamCompleteRequest(accumulated_response=b"DATA"))
    return head, body, chunk, drop, done


async def check_response(h, result):
    head, body, chunk, drop, done = result
    assert head.headers == {"a": "b", "x-everything": "yes"}
    assert body.body == b"full!"
    assert chunk.body == b"DATA" and not chunk.drop_chunk
    assert drop.drop_chunk
    assert done.handled and await h.services.kv.read("stream-complete") == b"DATA"


async def run_data(h, ctx):
    rid = ctx.request_id
    a = await h.handle.call(
        "handle_analytics", ctx, AnalyticsRecord(request_id=rid, cost=Decimal("0.0125"), total_tokens=9)
    )
    p = await h.handle.call("handle_proxy_log", ctx, ProxyLog(request_id=rid, response_body=b"resp"))
    b = await h.handle.call("handle_budget_usage", ctx, BudgetUsage(app_id=5, cost=Decimal("1.50")))
    return rid, a, p, b


async def check_data(h, result):
    rid, a, p, b = result
    assert a.handled and a.metadata == {"tokens": 9} and p.handled and b.handled
    assert await h.services.kv.read(f"analytics:{rid}") == b"0.0125"  # Decimal survived exactly
    assert await h.services.kv.read(f"proxy:{rid}") == b"resp"
    assert await h.services.kv.read("budget:5") == b"1.50"


async def run_endpoints(h, ctx):
    regs = await _arm_then(h, ctx, "get_endpoint_registrations")
    echo = await h.handle.call("handle_endpoint_request", ctx, EndpointRequest(relative_path="/echo", body=b"hi"))
    chunks = await _stream(
        h, ctx, "handle_endpoint_request", EndpointRequest(relative_path="/count", query_string="n=3")
    )
    single = await _stream(h, ctx, "handle_endpoint_request", EndpointRequest(relative_path="/echo", body=b"x"))
    return regs, echo, chunks, single


async def check_endpoints(h, result):
    regs, echo, chunks, single = result
    assert [(r.path, r.stream_response) for r in regs] == [("/echo", False), ("/count", True)]
    assert isinstance(echo, EndpointChunk) or isinstance(echo, EndpointResponse)
    assert echo.status_code == 201 and echo.body == b"echo:hi"
    assert b"".join(c.body for c in chunks) == b"0\n1\n2\n" and chunks[-1].done
    assert len(single) == 1 and single[0].body == b"echo:x" and single[0].done


async def run_ui(h, ctx):
    asset = await _arm_then(h, ctx, "get_asset", "index.html")
    missing = await h.handle.call("get_asset", None, "nope.js")
    assets = await h.handle.call("list_assets", None)
    rpc = await h.handle.call("handle_rpc", None, "ping", b"payload")
    return asset, missing, assets, rpc


async def check_ui(h, result):
    asset, missing, assets, rpc = result
    assert asset.content == b"<h1>everything</h1>" and asset.content_type == "text/html"
    assert missing is None and assets == ["index.html"]
    assert msgspec.json.decode(rpc) == {"method": "ping", "echo": "payload"}


async def check_portal(h, result):
    assert msgspec.json.decode(result) == {"user": "ada@example.com", "method": "profile", "groups": ["staff"]}


async def check_config(h, schema):
    assert schema["properties"]["greeting"]["default"] == "hello"
    assert h.handle.config == {"greeting": "hej", "limit": 10}  # validated and defaulted before initialize


async def check_manifest(h, manifest):
    assert manifest.id == "everything" and manifest.version == "1.2.3" and manifest.assets == ["index.html"]


async def check_agent(h, chunks):
    assert [c.type for c in chunks] == [
        AgentChunkType.THINKING,
        AgentChunkType.TOOL_CALL,
        AgentChunkType.TOOL_RESULT,
        AgentChunkType.CONTENT,
        AgentChunkType.DONE,
    ]
    assert chunks[3].content == "you said: hello agent" and chunks[-1].is_final
    assert chunks[1].metadata == {"args": {"q": "hello agent"}}


async def run_object_hooks(h, ctx):
    regs = await _arm_then(h, ctx, "get_object_hook_registrations")
    ok = await h.handle.call(
        "handle_object_hook",
        ctx,
        ObjectHookRequest(hook_type="before_create", object_type="llm", object_json='{"name":"gpt"}'),
    )
    no = await h.handle.call(
        "handle_object_hook",
        ctx,
        ObjectHookRequest(hook_type="before_create", object_type="llm", object_json='{"name":"forbidden"}'),
    )
    return regs, ok, no


async def check_object_hooks(h, result):
    regs, ok, no = result
    assert regs[0].object_type == "llm" and regs[0].priority == 5
    assert ok.allow_operation and msgspec.json.decode(ok.modified_object_json)["checked_by"] == "everything"
    assert not no.allow_operation and no.rejection_reason == "name not allowed"


async def check_scheduler(h, result):
    assert result is None
    assert await h.services.kv.read("ran:nightly") == b"cleanup"


async def run_edge(h, ctx):
    mine = await h.handle.call(
        "accept_edge_payload", ctx, EdgePayload(payload=b"p", correlation_id="c1", metadata={"type": "everything"})
    )
    other = await h.handle.call("accept_edge_payload", ctx, EdgePayload(payload=b"p", metadata={"type": "x"}))
    return mine, other


async def check_edge(h, result):
    assert result == (True, False)
    assert await h.services.kv.read("payload:c1") == b"p"


async def run_resources(h, ctx):
    types = await _arm_then(h, ctx, "get_resource_types")
    listed = await h.handle.call("list_resources", ctx, "vector-index")
    one = await h.handle.call("get_resource", ctx, "vector-index", "hr")
    none = await h.handle.call("get_resource", ctx, "vector-index", "zzz")
    valid = await h.handle.call("validate_resource_selection", ctx, "vector-index", ["public", "zzz"])
    made = await h.handle.call("create_resource", ctx, "vector-index", {"name": "Wiki"})
    return types, listed, one, none, valid, made


async def check_resources(h, result):
    types, listed, one, none, valid, made = result
    assert types[0].slug == "vector-index"
    assert [(r.id, r.privacy_score) for r in listed] == [("public", 10), ("hr", 90)]
    assert one.name == "HR files" and none is None
    assert not valid.valid and valid.errors == ["unknown resource zzz"]
    assert made.id == "wiki" and made.privacy_score == 50


async def run_session(h, ctx):
    await h.handle.call("on_session_ready", ctx)
    await h.hub.publish(Event(topic="everything.ping", payload=b"pong-" + ctx.request_id.encode()))
    for _ in range(100):
        if await h.services.kv.read("pinged") == b"pong-" + ctx.request_id.encode():
            return True
        await asyncio.sleep(0.02)
    return False


async def check_session(h, delivered):
    assert await h.services.kv.read("session") == b"ready"
    assert delivered, "an event published on the host's bus reached the plugin's subscription"


CASES = [
    Case(
        "pre_auth", "handle_pre_auth", lambda h, c: _unary(h, c, "handle_pre_auth", make_request("hi")), check_pre_auth
    ),
    Case("auth", "handle_auth", run_auth, check_auth),
    Case(
        "post_auth",
        "handle_post_auth",
        lambda h, c: _unary(h, c, "handle_post_auth", make_request("hi")),
        check_post_auth,
    ),
    Case("response", "on_before_write", run_response, check_response),
    Case("data_collection", "handle_analytics", run_data, check_data),
    Case("custom_endpoints", "handle_endpoint_request", run_endpoints, check_endpoints),
    Case("ui_provider", "get_asset", run_ui, check_ui),
    Case(
        "portal_ui",
        "handle_portal_rpc",
        lambda h, c: _unary(
            h, c, "handle_portal_rpc", PortalUserContext(email="ada@example.com", groups=["staff"]), "profile", b"{}"
        ),
        check_portal,
    ),
    Case("config_provider", "get_config_schema", lambda h, c: _arm_then(h, c, "get_config_schema"), check_config),
    Case("manifest_provider", "get_manifest", lambda h, c: _arm_then(h, c, "get_manifest"), check_manifest),
    Case(
        "agent",
        "handle_agent_message",
        lambda h, c: _stream(h, c, "handle_agent_message", AgentMessageRequest(user_message="hello agent")),
        check_agent,
    ),
    Case("object_hooks", "handle_object_hook", run_object_hooks, check_object_hooks),
    Case(
        "scheduler",
        "execute_scheduled_task",
        lambda h, c: _unary(h, c, "execute_scheduled_task", Schedule(id="nightly", config={"note": "cleanup"})),
        check_scheduler,
    ),
    Case("edge_payload", "accept_edge_payload", run_edge, check_edge),
    Case("resource_provider", "list_resources", run_resources, check_resources),
    Case("session_aware", "on_session_ready", run_session, check_session),
]
IDS = [c.capability for c in CASES]


async def test_cases_cover_every_capability():
    from shared_sdk.capabilities import CAPABILITIES

    assert sorted(IDS) == sorted(c.name for c in CAPABILITIES)


async def test_host_discovers_every_capability(harness):
    assert harness.handle.capabilities == frozenset(IDS)
    assert harness.handle.version == "1.2.3"


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_capability_works(harness, case):
    result = await case.run(harness, harness.context())
    await case.check(harness, result)


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_capability_timeout_is_contained(harness, case):
    with pytest.raises(PluginCallError) as info:
        await case.run(harness, harness.context(metadata={"fault": "sleep"}))
    assert info.value.kind == "timeout"
    assert info.value.slug == "everything" and info.value.fail_open
    # the plugin is still usable afterwards
    await case.check(harness, await case.run(harness, harness.context()))


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_capability_exception_is_contained(harness, case):
    with pytest.raises(PluginCallError) as info:
        await case.run(harness, harness.context(metadata={"fault": "raise"}))
    assert info.value.kind == "exception"
    assert "RuntimeError: injected failure" in info.value.detail
    await case.check(harness, await case.run(harness, harness.context()))


async def _wait_restarted(h, restarts_before: int) -> None:
    for _ in range(300):
        if h.handle.healthy and h.handle.restarts > restarts_before:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"plugin did not come back: {h.handle.last_error}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_capability_survives_kill_9(isolated_harness, case):
    harness = isolated_harness
    pid, restarts = harness.handle.pid, harness.handle.restarts
    in_flight = asyncio.ensure_future(case.run(harness, harness.context(metadata={"fault": "sleep"})))
    await asyncio.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(PluginCallError) as info:
        await in_flight
    assert info.value.kind == "crash"
    # while it restarts, calls fail fast with a PluginCallError handled per failure policy
    for _ in range(200):
        if not harness.handle.healthy:
            break
        await asyncio.sleep(0.01)
    assert not harness.handle.healthy
    with pytest.raises(PluginCallError) as info:
        await case.run(harness, harness.context())
    assert info.value.kind in ("unavailable", "crash")
    await _wait_restarted(harness, restarts)
    assert harness.handle.pid != pid
    await case.check(harness, await case.run(harness, harness.context()))
