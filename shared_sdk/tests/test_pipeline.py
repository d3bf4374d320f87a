"""Hook-chain semantics (shared_sdk.pipeline) as a client of the edge would notice them."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from shared_sdk import (
    App,
    AuthResponse,
    BasePlugin,
    ObjectHookRegistration,
    ObjectHookRequest,
    ObjectHookResponse,
    PluginCallError,
    PluginError,
    PluginResponse,
    ResponseWriteRequest,
    ResponseWriteResponse,
    ShortCircuit,
    UpstreamResponse,
    User,
)
from shared_sdk.host import PluginSpec
from shared_sdk.pipeline import HookChain, ObjectHookChain
from shared_sdk.testing import PipelineRunner, make_request


class Recorder(BasePlugin):
    """Appends '<name>:<hook>' to a shared journal; behaviour switched by constructor flags."""

    def __init__(self, name, journal, *, short=None, fail=None, on_response=None, on_chunk=None):
        super().__init__(name=name)
        self.journal = journal
        self.short = short
        self.fail = fail
        self.on_response = on_response
        self.on_chunk = on_chunk

    async def handle_post_auth(self, ctx, req):
        self.journal.append(f"{self.name}:req")
        if self.fail == "raise":
            raise ValueError("secret internals")
        if self.fail == "sleep":
            await asyncio.sleep(5)
        if self.short is not None:
            return self.short
        return PluginResponse(
            modified=True,
            request=msgspec.structs.replace(req, headers={**req.headers, f"x-{self.name}": "1"}),
            context_updates={f"seen_{self.name}": True},
        )

    async def on_before_write_headers(self, ctx, req):
        self.journal.append(f"{self.name}:headers")
        return ResponseWriteResponse(modified=True, headers={**req.headers, f"x-resp-{self.name}": "1"})

    async def on_before_write(self, ctx, req):
        if req.is_stream_chunk:
            self.journal.append(f"{self.name}:chunk{req.chunk_index}")
            return self.on_chunk(req) if self.on_chunk else None
        self.journal.append(f"{self.name}:body")
        return self.on_response(req) if self.on_response else None

    async def on_stream_complete(self, ctx, req):
        self.journal.append(f"{self.name}:complete:{req.accumulated_response.decode()}:{req.chunk_count}")


def ok(body: bytes = b'{"ok":true}') -> UpstreamResponse:
    return UpstreamResponse(status_code=200, headers={"content-type": "application/json"}, body=body)


async def test_request_hooks_in_order_response_hooks_in_reverse():
    journal: list[str] = []
    plugins = [Recorder(n, journal) for n in ("a", "b", "c")]
    seen = {}

    async def upstream(req):
        seen["headers"] = req.headers
        return ok()

    async with PipelineRunner(*plugins) as runner:
        out = await runner.run(make_request("hi"), upstream=upstream)
    assert journal == ["a:req", "b:req", "c:req", "c:headers", "b:headers", "a:headers", "c:body", "b:body", "a:body"]
    assert {"x-a", "x-b", "x-c"} <= set(seen["headers"])
    assert out.status_code == 200 and {"x-resp-a", "x-resp-b", "x-resp-c"} <= set(out.headers)
    assert [t.slug for t in out.timings[:3]] == ["a", "b", "c"] and all(t.duration_s >= 0 for t in out.timings)


async def test_cache_hit_short_circuit_skips_later_plugins_and_upstream():
    journal: list[str] = []
    hit = PluginResponse(short_circuit=ShortCircuit(response=UpstreamResponse(status_code=200, body=b"cached")))
    plugins = [Recorder("a", journal), Recorder("cache", journal, short=hit), Recorder("c", journal)]
    async with PipelineRunner(*plugins) as runner:
        out = await runner.run(make_request("hi"), upstream=ok())
    assert not out.upstream_called
    assert out.body == b"cached" and out.short_circuited_by == "cache"
    # c never saw the request, so it does not see the response; cache and a do, in reverse.
    assert journal == ["a:req", "cache:req", "cache:headers", "a:headers", "cache:body", "a:body"]
    assert out.executed == ["a", "cache"]


async def test_block_returns_status_and_message_without_fallbacks():
    journal: list[str] = []
    block = PluginResponse(block=True, status_code=451, error_message="not in this country")
    async with PipelineRunner(Recorder("geo", journal, short=block), Recorder("later", journal)) as runner:
        out = await runner.run(make_request("hi"), upstream=ok())
    assert out.status_code == 451
    assert out.json()["error"]["message"] == "not in this country"
    assert out.error.allow_fallbacks is False and not out.upstream_called
    assert "later:req" not in journal


async def test_block_with_body_sends_that_body():
    block = PluginResponse(block=True, status_code=429, headers={"retry-after": "3"}, body=b'{"slow":"down"}')
    async with PipelineRunner(Recorder("rl", [], short=block)) as runner:
        out = await runner.run(make_request("hi"))
    assert out.status_code == 429 and out.headers["retry-after"] == "3" and out.body == b'{"slow":"down"}'


async def test_stream_short_circuit_runs_chunk_hooks_and_stream_complete():
    journal: list[str] = []
    sc = PluginResponse(short_circuit=ShortCircuit(stream_chunks=[b"a", b"drop", b"c"]))

    def upper_or_drop(req):
        if req.body == b"drop":
            return ResponseWriteResponse(drop_chunk=True)
        return ResponseWriteResponse(modified=True, body=req.body.upper())

    outer = Recorder("outer", journal, on_chunk=upper_or_drop)
    async with PipelineRunner(outer, Recorder("streamer", journal, short=sc)) as runner:
        out = await runner.run(make_request("hi", stream=True))
    assert out.chunks == [b"A", b"C"]
    assert "outer:complete:AC:2" in journal
    # per chunk, reverse order: streamer first, then outer
    assert journal.index("streamer:chunk0") < journal.index("outer:chunk0")


async def test_error_short_circuit_carries_allow_fallbacks():
    err = PluginError(status_code=400, message="prompt too long", type="invalid_request_error", allow_fallbacks=False)
    async with PipelineRunner(Recorder("guard", [], short=PluginResponse(short_circuit=ShortCircuit(error=err)))) as r:
        out = await r.run(make_request("hi"))
    assert out.status_code == 400 and out.error.allow_fallbacks is False
    assert out.json()["error"] == {"message": "prompt too long", "type": "invalid_request_error", "code": None}


async def test_response_hook_recovers_an_upstream_error():
    def recover(req):
        if req.error is not None:
            return ResponseWriteResponse(modified=True, status_code=200, body=b'{"fallback":true}')
        return None

    async with PipelineRunner(Recorder("rescue", [], on_response=recover)) as runner:
        out = await runner.run(make_request("hi"), upstream=PluginError(status_code=503, message="upstream down"))
    assert out.status_code == 200 and out.error is None and out.body == b'{"fallback":true}'


async def test_response_hook_turns_a_response_into_an_error():
    def refuse(req):
        if b"leak" in req.body:
            return ResponseWriteResponse(error=PluginError(status_code=422, message="output policy", type="policy"))
        return None

    async with PipelineRunner(Recorder("dlp", [], on_response=refuse)) as runner:
        out = await runner.run(make_request("hi"), upstream=ok(b'{"text":"leak"}'))
    assert out.status_code == 422 and out.json()["error"]["type"] == "policy"


async def test_fail_open_skips_a_failing_plugin_and_logs_it(caplog):
    journal: list[str] = []
    async with PipelineRunner(Recorder("broken", journal, fail="raise"), Recorder("fine", journal)) as runner:
        out = await runner.run(make_request("hi"), upstream=ok())
    assert out.status_code == 200 and "x-fine" in out.upstream_request.headers
    assert [e.kind for e in out.contained_errors] == ["exception"]
    assert "secret internals" in caplog.text  # in the logs, for operators ...
    assert b"secret" not in out.body  # ... never to the client


async def test_fail_closed_exception_fails_the_request_with_500_without_internals():
    journal: list[str] = []
    runner = PipelineRunner(
        Recorder("strict", journal, fail="raise"), Recorder("later", journal), failure_policy={"strict": "closed"}
    )
    async with runner:
        out = await runner.run(make_request("hi"), upstream=ok())
    assert out.status_code == 500 and not out.upstream_called
    assert out.error.code == "plugin_exception" and out.error.allow_fallbacks is False
    assert "secret" not in out.error.message and "later:req" not in journal


async def test_fail_closed_timeout_is_504():
    runner = PipelineRunner(Recorder("slow", [], fail="sleep"), failure_policy={"slow": "closed"}, timeout_s=0.1)
    async with runner:
        out = await runner.run(make_request("hi"), upstream=ok())
    assert out.status_code == 504 and out.error.code == "plugin_timeout"


async def test_fail_open_timeout_lets_the_request_through():
    runner = PipelineRunner(Recorder("slow", [], fail="sleep"), timeout_s=0.1)
    async with runner:
        out = await runner.run(make_request("hi"), upstream=ok())
    assert out.status_code == 200 and out.contained_errors[0].kind == "timeout"


async def test_context_updates_reach_later_plugins():
    seen = {}

    class Reader(BasePlugin):
        name = "reader"

        async def handle_post_auth(self, ctx, req):
            seen.update(ctx.metadata)

    async with PipelineRunner(Recorder("a", []), Reader()) as runner:
        await runner.run(make_request("hi"))
    assert seen == {"seen_a": True}


async def test_fail_closed_chunk_hook_raises_for_the_edge_to_end_the_stream():
    def boom(req):
        raise RuntimeError("chunk hook bug")

    journal: list[str] = []
    runner = PipelineRunner(Recorder("c", journal, on_chunk=boom), failure_policy={"c": "closed"})
    async with runner:
        with pytest.raises(PluginCallError) as info:
            await runner.run(make_request("hi", stream=True), upstream=[b"x"])
    assert info.value.kind == "exception" and not info.value.fail_open


class TokenAuth(BasePlugin):
    name = "token-auth"

    def __init__(self, app_id=7):
        super().__init__()
        self.app_id = app_id

    async def handle_auth(self, ctx, req):
        if req.credential.startswith("tok-"):
            return AuthResponse(authenticated=True, app_id=self.app_id, user_id=3)
        return AuthResponse(error_message="bad token")

    async def get_app_by_credential(self, ctx, credential):
        return App(id=self.app_id, name="seven") if self.app_id else None

    async def get_user_by_credential(self, ctx, credential):
        return User(id=3, email="u@x")


async def test_auth_plugin_sets_app_and_user_for_post_auth():
    seen = {}

    class Who(BasePlugin):
        name = "who"

        async def handle_post_auth(self, ctx, req):
            seen["app"], seen["user"], seen["req_app"] = ctx.app.name, ctx.user.email, req.app_id

    async with PipelineRunner(TokenAuth(), Who()) as runner:
        good = await runner.run(make_request("hi"), credential="tok-1")
        bad = await runner.run(make_request("hi"), credential="nope")
    assert good.status_code == 200 and seen == {"app": "seven", "user": "u@x", "req_app": 7}
    assert bad.status_code == 401 and bad.json()["error"]["message"] == "bad token"


async def test_authenticated_without_an_app_is_refused():
    async with PipelineRunner(TokenAuth(app_id=None)) as runner:
        out = await runner.run(make_request("hi"), credential="tok-1")
    assert out.status_code == 401 and "not linked to an app" in out.json()["error"]["message"]


class Hook(BasePlugin):
    def __init__(self, name, priority, action):
        super().__init__(name=name)
        self.priority, self.action = priority, action

    def get_object_hook_registrations(self):
        return [ObjectHookRegistration(object_type="llm", hook_types=["before_create"], priority=self.priority)]

    async def handle_object_hook(self, ctx, req):
        return self.action(req)


async def test_object_hooks_run_by_priority_rewrite_then_reject():
    def tag(req):
        obj = msgspec.json.decode(req.object_json)
        obj["tags"] = [*obj.get("tags", []), "first"]
        return ObjectHookResponse(modified=True, modified_object_json=msgspec.json.encode(obj).decode())

    def check(req):
        if "first" not in msgspec.json.decode(req.object_json)["tags"]:
            return ObjectHookResponse(allow_operation=False, rejection_reason="not tagged")
        return ObjectHookResponse(plugin_metadata={"checked": True})

    def veto(req):
        return ObjectHookResponse(allow_operation=False, rejection_reason="vetoed")

    async with PipelineRunner(Hook("late", 50, veto), Hook("checker", 20, check), Hook("tagger", 10, tag)) as r:
        chain = await ObjectHookChain.build(r.handles)
        outcome = await chain.run(r.context(), ObjectHookRequest(hook_type="before_create", object_type="llm"))
    assert not outcome.allowed and outcome.rejected_by == "late" and outcome.rejection_reason == "vetoed"
    assert outcome.plugin_metadata == {"checker": {"checked": True}}
    assert msgspec.json.decode(outcome.object_json)["tags"] == ["first"]


async def test_a_chain_mixing_isolated_and_in_process_plugins():
    journal: list[str] = []
    isolated = PluginSpec(
        slug="everything", import_path="shared_sdk.tests.sample_plugins:EverythingPlugin", isolated=True
    )
    async with PipelineRunner(Recorder("local", journal), isolated) as runner:
        out = await runner.run(make_request("hi"), upstream=ok(b"{}"))
    assert out.status_code == 200
    assert out.headers["x-everything"] == "yes" and "x-resp-local" in out.headers
    assert out.body == b"{}!"  # the isolated plugin's body hook ran
    assert out.upstream_request.headers["x-greeting"] == "hello"


async def test_chain_rejects_duplicate_plugins():
    async with PipelineRunner(Recorder("a", [])) as runner:
        with pytest.raises(ValueError, match="twice"):
            HookChain([runner.handles[0], runner.handles[0]])


async def test_response_hooks_of_unreached_plugins_do_not_run_on_headers_phase():
    journal: list[str] = []
    async with PipelineRunner(Recorder("a", journal), Recorder("b", journal)) as runner:
        chain = runner.chain
        ctx = runner.context()
        await chain.run_response_headers(ctx, runner.handles[:1], ResponseWriteRequest())
    assert journal == ["a:headers"]


class SizeLimit(BasePlugin):
    """The pre-auth example of the docs: refuses bodies over `max_bytes` (default 1000)."""

    name = "size-limit"

    def get_config_schema(self):
        return {"type": "object", "properties": {"max_bytes": {"type": "integer", "default": 1000}}}

    def handle_pre_auth(self, ctx, req):
        if len(req.body) > self.config["max_bytes"]:
            return PluginResponse(block=True, status_code=413, error_message="too large")


async def test_runner_config_not_keyed_by_slug_is_refused_not_ignored():
    """`config={"max_bytes": 200}` (one plugin's config, as `PluginHarness` takes it) was looked up by slug,
    found nothing, and the plugin ran with its default: a 300-byte request passed, the test said nothing."""
    with pytest.raises(ValueError, match=r"keyed by plugin slug, and 'max_bytes' is none of \['size-limit'\]"):
        async with PipelineRunner(SizeLimit(), config={"max_bytes": 200}):
            pass
    async with PipelineRunner(SizeLimit(), config={"size-limit": {"max_bytes": 200}}) as runner:
        assert (await runner.run(make_request("x" * 300))).status_code == 413


async def test_runner_takes_one_failure_policy_for_every_plugin():
    """`failure_policy="closed"` (as `PluginHarness` takes it) used to crash the kit: 'str' has no attribute 'get'."""
    journal: list[str] = []
    async with PipelineRunner(Recorder("strict", journal, fail="raise"), failure_policy="closed") as runner:
        outcome = await runner.run(make_request("hi"))
    assert outcome.status_code == 500 and not outcome.upstream_called
    with pytest.raises(ValueError, match="failure_policy 'clsoed'"):
        async with PipelineRunner(SizeLimit(), failure_policy="clsoed"):
            pass
