"""Plugins the SDK's tests load through the host, in-process and isolated (so they must be importable).

`EverythingPlugin` implements all fifteen capabilities plus session awareness. Faults are injected per
call through `ctx.metadata["fault"]` (or, for methods without a context, `handle_rpc("arm", b"<fault>")`
first), so the same instance can be driven into a timeout or an exception whichever way it runs:
    "sleep"  outlive any test timeout       "raise"  raise RuntimeError
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from shared_sdk import (
    AgentChunk,
    AgentChunkType,
    App,
    AuthResponse,
    BasePlugin,
    DataCollectionResponse,
    EndpointChunk,
    EndpointRegistration,
    EndpointResponse,
    ManifestPermissions,
    ObjectHookRegistration,
    ObjectHookResponse,
    PluginManifest,
    PluginResponse,
    ResourceInstance,
    ResourceSelectionValidation,
    ResourceType,
    ResponseWriteResponse,
    Runtime,
    StreamCompleteResponse,
    StreamEventsResponse,
    User,
)

SYNC_SLEEP_S = 1.5


class EverythingPlugin(BasePlugin):
    name = "everything"
    version = "1.2.3"
    description = "Implements every capability, for the SDK's own tests."

    def __init__(self) -> None:
        super().__init__()
        self.armed = ""
        self.subscription = ""

    # -- fault injection -----------------------------------------------------------------------------------

    async def _fault(self, ctx: Any = None) -> None:
        fault = (ctx.metadata.get("fault", "") if ctx is not None else "") or self.armed
        self.armed = ""
        if fault == "sleep":
            await asyncio.sleep(30)
        elif fault == "raise":
            raise RuntimeError("injected failure")

    def _sync_fault(self, ctx: Any = None) -> None:
        fault = (ctx.metadata.get("fault", "") if ctx is not None else "") or self.armed
        self.armed = ""
        if fault == "sleep":
            time.sleep(SYNC_SLEEP_S)
        elif fault == "raise":
            raise RuntimeError("injected failure")

    # -- lifecycle and config ------------------------------------------------------------------------------

    def get_config_schema(self) -> dict[str, Any]:
        self._sync_fault()
        return {
            "type": "object",
            "properties": {
                "greeting": {"type": "string", "default": "hello"},
                "limit": {"type": "integer", "minimum": 1, "default": 10},
            },
            "additionalProperties": False,
        }

    async def initialize(self, ctx, config):
        self.config = config
        ctx.services.logger.info("initialized", greeting=config["greeting"])

    async def on_session_ready(self, ctx):
        await self._fault(ctx)
        await ctx.services.kv.write("session", b"ready")

        async def on_ping(event):
            await ctx.services.kv.write("pinged", event.payload)

        self.subscription = await ctx.services.events.subscribe("everything.*", on_ping)

    async def on_session_closing(self, ctx):
        if self.subscription:
            await ctx.services.events.unsubscribe(self.subscription)

    # -- request phase -------------------------------------------------------------------------------------

    def handle_pre_auth(self, ctx, req):  # a plain def: runs in a worker thread with blocking services
        self._sync_fault(ctx)
        if "x-block" in req.headers:
            return PluginResponse(block=True, status_code=451, error_message="blocked by everything")
        count = int(ctx.services.kv.read("pre-count") or b"0") + 1
        ctx.services.kv.write("pre-count", str(count).encode())
        return PluginResponse(
            modified=True, request=msgspec.structs.replace(req, headers={**req.headers, "x-pre": "1"})
        )

    async def handle_auth(self, ctx, req):
        await self._fault(ctx)
        if req.credential == "good":
            return AuthResponse(authenticated=True, app_id=1, user_id=2, claims={"scope": "all"})
        return AuthResponse(authenticated=False, error_message="unknown credential")

    async def get_app_by_credential(self, ctx, credential):
        await self._fault(ctx)
        return App(id=1, name="app-one", metadata={"team": "blue"}) if credential == "good" else None

    async def get_user_by_credential(self, ctx, credential):
        await self._fault(ctx)
        return User(id=2, email="ada@example.com") if credential == "good" else None

    async def handle_post_auth(self, ctx, req):
        await self._fault(ctx)
        ctx.services.logger.info("post-auth", path=req.path)
        team = ctx.app.metadata.get("team", "none") if ctx.app else "none"
        return PluginResponse(
            modified=True,
            request=msgspec.structs.replace(
                req, headers={**req.headers, "x-team": team, "x-greeting": self.config["greeting"]}
            ),
            context_updates={"upstream_override": "secondary"},
        )

    # -- response phase ------------------------------------------------------------------------------------

    async def on_before_write_headers(self, ctx, req):
        await self._fault(ctx)
        return ResponseWriteResponse(modified=True, headers={**req.headers, "x-everything": "yes"})

    async def on_before_write(self, ctx, req):
        await self._fault(ctx)
        if req.is_stream_chunk:
            if req.body == b"drop":
                return ResponseWriteResponse(drop_chunk=True)
            return ResponseWriteResponse(modified=True, body=req.body.upper())
        return ResponseWriteResponse(modified=True, body=req.body + b"!")

    async def on_stream_complete(self, ctx, req):
        await self._fault(ctx)
        await ctx.services.kv.write("stream-complete", req.accumulated_response)
        return StreamCompleteResponse(handled=True)

    # -- data collection -----------------------------------------------------------------------------------

    async def handle_proxy_log(self, ctx, log):
        await self._fault(ctx)
        await ctx.services.kv.write(f"proxy:{log.request_id}", log.response_body)
        return DataCollectionResponse(handled=True)

    async def handle_analytics(self, ctx, record):
        await self._fault(ctx)
        await ctx.services.kv.write(f"analytics:{record.request_id}", str(record.cost).encode())
        return DataCollectionResponse(handled=True, metadata={"tokens": record.total_tokens})

    async def handle_budget_usage(self, ctx, usage):
        await self._fault(ctx)
        await ctx.services.kv.write(f"budget:{usage.app_id}", str(usage.cost).encode(), ttl_s=60)
        return DataCollectionResponse(handled=True)

    # -- custom endpoints ----------------------------------------------------------------------------------

    def get_endpoint_registrations(self):
        self._sync_fault()
        return [
            EndpointRegistration(path="/echo", methods=["GET", "POST"]),
            EndpointRegistration(path="/count", methods=["GET"], stream_response=True),
        ]

    async def handle_endpoint_request(self, ctx, req):
        await self._fault(ctx)
        if req.relative_path == "/count":
            return self._count(int(req.query_string.removeprefix("n=") or "3"))
        return EndpointResponse(status_code=201, headers={"content-type": "text/plain"}, body=b"echo:" + req.body)

    async def _count(self, n: int):
        for i in range(n):
            yield EndpointChunk(body=f"{i}\n".encode(), headers={"content-type": "text/plain"} if i == 0 else {})
        yield EndpointChunk(done=True)

    # -- UI, portal, manifest ------------------------------------------------------------------------------

    def get_asset(self, path):
        self._sync_fault()
        if path == "index.html":
            return b"<h1>everything</h1>", "text/html"
        return None

    def list_assets(self):
        self._sync_fault()
        return ["index.html"]

    async def handle_rpc(self, method, payload):
        if method == "arm":
            self.armed = payload.decode()
            return {"armed": self.armed}
        await self._fault()
        return {"method": method, "echo": payload.decode()}

    async def handle_portal_rpc(self, ctx, user, method, payload):
        await self._fault(ctx)
        return {"user": user.email, "method": method, "groups": user.groups}

    def get_manifest(self):
        self._sync_fault()
        return PluginManifest(
            id="everything",
            name=self.name,
            version=self.version,
            assets=["index.html"],
            permissions=ManifestPermissions(services=["llms.proxy"]),  # the agent calls an LLM in the studio
        )

    # -- agent ---------------------------------------------------------------------------------------------

    async def handle_agent_message(self, ctx, req):
        await self._fault(ctx)
        yield AgentChunk(type=AgentChunkType.THINKING, content="thinking about it")
        yield AgentChunk(type=AgentChunkType.TOOL_CALL, content="lookup", metadata={"args": {"q": req.user_message}})
        yield AgentChunk(type=AgentChunkType.TOOL_RESULT, content="42")
        if ctx.runtime is Runtime.STUDIO and req.available_llms:
            answer = await ctx.services.studio.call_llm(req.available_llms[0].id, [])
            yield AgentChunk(type=AgentChunkType.CONTENT, content=answer.content)
        else:
            yield AgentChunk(type=AgentChunkType.CONTENT, content=f"you said: {req.user_message}")
        if ctx.metadata.get("fault_mid_stream") == "raise":
            raise RuntimeError("agent failed mid-stream")
        yield AgentChunk(type=AgentChunkType.DONE, is_final=True)

    # -- object hooks --------------------------------------------------------------------------------------

    def get_object_hook_registrations(self):
        self._sync_fault()
        return [ObjectHookRegistration(object_type="llm", hook_types=["before_create", "after_create"], priority=5)]

    async def handle_object_hook(self, ctx, req):
        await self._fault(ctx)
        obj = msgspec.json.decode(req.object_json)
        if obj.get("name") == "forbidden":
            return ObjectHookResponse(allow_operation=False, rejection_reason="name not allowed")
        obj["checked_by"] = self.name
        return ObjectHookResponse(
            modified=True, modified_object_json=msgspec.json.encode(obj).decode(), plugin_metadata={"seen": True}
        )

    # -- scheduler, edge payloads --------------------------------------------------------------------------

    async def execute_scheduled_task(self, ctx, schedule):
        await self._fault(ctx)
        await ctx.services.kv.write(f"ran:{schedule.id}", schedule.config.get("note", "").encode())

    async def accept_edge_payload(self, ctx, payload):
        await self._fault(ctx)
        if payload.metadata.get("type") != "everything":
            return False
        await ctx.services.kv.write(f"payload:{payload.correlation_id}", payload.payload)
        return True

    # -- resources -----------------------------------------------------------------------------------------

    def get_resource_types(self):
        self._sync_fault()
        return [ResourceType(slug="vector-index", name="Vector index")]

    async def list_resources(self, ctx, type_slug):
        await self._fault(ctx)
        return [
            ResourceInstance(id="public", type_slug=type_slug, name="Public docs", privacy_score=10),
            ResourceInstance(id="hr", type_slug=type_slug, name="HR files", privacy_score=90),
        ]

    async def get_resource(self, ctx, type_slug, resource_id):
        await self._fault(ctx)
        found = [r for r in await self.list_resources(ctx, type_slug) if r.id == resource_id]
        return found[0] if found else None

    async def validate_resource_selection(self, ctx, type_slug, resource_ids):
        await self._fault(ctx)
        unknown = [r for r in resource_ids if r not in ("public", "hr")]
        return ResourceSelectionValidation(valid=not unknown, errors=[f"unknown resource {r}" for r in unknown])

    async def create_resource(self, ctx, type_slug, data):
        await self._fault(ctx)
        return ResourceInstance(id=data["name"].lower(), type_slug=type_slug, name=data["name"], privacy_score=50)


class MinimalPostAuth(BasePlugin):
    """The shortest useful plugin: one async hook."""

    name = "minimal"

    async def handle_post_auth(self, ctx, req):
        return PluginResponse(
            modified=True, request=msgspec.structs.replace(req, headers={**req.headers, "x-min": "1"})
        )


class Echo(BasePlugin):
    """For the benchmark and the overhead tests: returns the cheapest valid answer."""

    name = "echo"

    async def handle_post_auth(self, ctx, req):
        return PluginResponse()


class HalfAuth(BasePlugin):
    """Broken on purpose: implements handle_auth without the credential lookups."""

    name = "half-auth"

    async def handle_auth(self, ctx, req):
        return AuthResponse(authenticated=True, app_id=1)


class MisspelledHooks(BasePlugin):
    """Broken on purpose: `handle_postauth` and `initialise` are never called (the host finds methods by name)."""

    name = "misspelled-hooks"

    async def initialise(self, ctx, config):
        pass

    async def handle_postauth(self, ctx, req):
        return PluginResponse()


class HelpersNamedLikeHooks(BasePlugin):
    """Fine: helpers whose names resemble a hook it implements, or differ from one from the first letters."""

    name = "helpers"

    async def handle_post_auth(self, ctx, req):
        return self.handle_post_auth_sync()

    def handle_post_auth_sync(self):
        return PluginResponse()

    def stream_complete(self):
        return None


class BadInitialize(BasePlugin):
    name = "bad-init"

    async def initialize(self, ctx, config):
        raise ValueError("database url missing")

    async def handle_post_auth(self, ctx, req):
        return None


class ServiceProbe(BasePlugin):
    """Exercises every service from inside a handler; the RPC method names the probe."""

    name = "probe"

    def get_manifest(self):
        scopes = ["apps.read", "apps.write", "budget.read", "llms.proxy", "events.publish"]
        return PluginManifest(id="probe", permissions=ManifestPermissions(services=scopes))

    async def handle_portal_rpc(self, ctx, user, method, payload):
        s = ctx.services
        if method == "kv":
            await s.kv.write("a/1", b"one")
            await s.kv.write("a/2", b"two", ttl_s=300)
            await s.kv.write("b/1", b"bee")
            listed = await s.kv.list("a/")
            read = await s.kv.read("a/1")
            deleted = await s.kv.delete("a/1")
            missing = await s.kv.read("a/1")
            return {"listed": listed, "read": read.decode(), "deleted": deleted, "missing": missing}
        if method == "events":
            event = await s.events.publish("probe.up", {"n": 1}, direction="up")
            await s.events.publish("probe.local", b"x")
            return {"id": event.id, "source": event.source}
        if method == "gateway":
            app = await s.gateway.get_app(1)
            status = await s.gateway.get_budget_status(1)
            return {
                "app": app.name if app else None,
                "apps": len(await s.gateway.list_apps()),
                "valid": await s.gateway.validate_credential("k-1"),
                "spent": str(status.spent),
            }
        if method == "studio":
            apps = await s.studio.list_apps(1, 10, namespace="prod")
            meta = await s.studio.patch_app_metadata(1, "tier", "gold")
            answer = await s.studio.call_llm(7, [], model="m")
            chunks = [c.content async for c in s.studio.stream_llm(7, [])]
            return {"apps": [a.name for a in apps], "meta": meta, "answer": answer.content, "chunks": chunks}
        if method == "wrong-runtime":
            other = "studio" if ctx.runtime is Runtime.GATEWAY else "gateway"
            try:
                getattr(s, other)
            except Exception as exc:
                return {"error": type(exc).__name__, "message": str(exc)}
            return {"error": None}
        if method == "log":
            s.logger.info("probe says hi", n=3)
            return {"ok": True}
        return {"unknown": method}

    def handle_rpc(self, method, payload):  # sync handler using blocking services
        return {"sync": True}

    def get_asset(self, path):
        return None

    def list_assets(self):
        return []


class SyncProbe(BasePlugin):
    """A plain-def handler calling services: they must block and return values, not coroutines."""

    name = "sync-probe"

    def handle_post_auth(self, ctx, req):
        ctx.services.kv.write("sync", b"yes")
        value = ctx.services.kv.read("sync")
        keys = ctx.services.kv.list("")
        return PluginResponse(context_updates={"value": value.decode(), "keys": keys})


class BadReturn(BasePlugin):
    """Returns a dict with a wrongly typed field where a PluginResponse is expected."""

    name = "bad-return"

    async def handle_post_auth(self, ctx, req):
        return {"block": "yes please"}


class Hangs(BasePlugin):
    """`x-hang` blocks the plugin's event loop (a plugin calling blocking code from `async def`): a hung process
    that is still alive, which only the host's health pings can tell from a slow one."""

    name = "hangs"

    async def handle_post_auth(self, ctx, req):
        if "x-hang" in req.headers:
            time.sleep(float(req.headers["x-hang"]))
        return PluginResponse(context_updates={"pid": str(__import__("os").getpid())})


class SlowSync(BasePlugin):
    """A plain-def handler sleeping `x-sleep` seconds in its worker thread (the event loop stays free)."""

    name = "slow-sync"

    def handle_post_auth(self, ctx, req):
        time.sleep(float(req.headers.get("x-sleep", "0")))
        return PluginResponse()


class ScopeProbe(BasePlugin):
    """Calls the service named by the RPC method and reports a scope denial as data (no manifest)."""

    name = "scope-probe"

    async def handle_portal_rpc(self, ctx, user, method, payload):
        from shared_sdk import ServiceScopeDenied

        s = ctx.services
        calls = {
            "kv": lambda: s.kv.write("k", b"v"),
            "log": lambda: _done(s.logger.info("hello")),
            "local-event": lambda: s.events.publish("probe.local", b"x"),
            "subscribe": lambda: s.events.subscribe("probe.*", lambda e: None),
            "up-event": lambda: s.events.publish("probe.up", b"x", direction="up"),
            "down-event": lambda: s.events.publish("probe.down", b"x", direction="down"),
            "get-app": lambda: s.gateway.get_app(1),
            "studio-list-apps": lambda: s.studio.list_apps(),
            "studio-patch": lambda: s.studio.patch_app_metadata(1, "tier", "gold"),
            "studio-call-llm": lambda: s.studio.call_llm(7, []),
        }
        if method == "uncaught":
            await s.gateway.get_app(1)
        try:
            await calls[method]()
        except ServiceScopeDenied as exc:
            return {"denied": {"scope": exc.scope, "plugin": exc.plugin, "operation": exc.operation}, "msg": str(exc)}
        return {"ok": True}

    def handle_pre_auth(self, ctx, req):  # plain def: blocking services go through the same guard
        from shared_sdk import ServiceScopeDenied

        try:
            ctx.services.gateway.get_app(1)
        except ServiceScopeDenied as exc:
            return PluginResponse(context_updates={"denied": exc.scope})
        return PluginResponse(context_updates={"denied": ""})


async def _done(value: Any = None) -> Any:
    return value


class AppWriterProbe(ScopeProbe):
    """Declares apps.write (which includes apps.read) and events.publish."""

    name = "app-writer"

    def get_manifest(self):
        return PluginManifest(
            id="app-writer", permissions=ManifestPermissions(services=["apps.write", "events.publish"])
        )


class ControlSender(ScopeProbe):
    """Declares only control.send: events may go up to the control plane, not down to the edges."""

    name = "control-sender"

    def get_manifest(self):
        return PluginManifest(id="control-sender", permissions=ManifestPermissions(services=["control.send"]))


class TypoScopes(ScopeProbe):
    name = "typo-scopes"

    def get_manifest(self):
        return PluginManifest(id="typo", permissions=ManifestPermissions(services=["app.read", "llms.proxy"]))


class CallerProbe(BasePlugin):
    """Writes KV keys from its handlers, so the test's KV can note whose call each write was made for: `async` and
    `sync` while serving a call, `forged` under a call id it made up, `late` from a task that outlives the call."""

    name = "caller-probe"

    def __init__(self) -> None:
        super().__init__()
        self._late: set[asyncio.Task[None]] = set()

    async def handle_post_auth(self, ctx, req):
        from shared_sdk.isolated.calls import host_call_id

        kv = ctx.services.kv
        await kv.write("async", b"")
        forged = host_call_id.set("a-call-id-the-plugin-made-up")
        try:
            await kv.write("forged", b"")
        finally:
            host_call_id.reset(forged)

        async def late() -> None:
            await asyncio.sleep(0.3)
            await kv.write("late", b"")

        task = asyncio.create_task(late())
        self._late.add(task)
        task.add_done_callback(self._late.discard)
        return None

    def handle_pre_auth(self, ctx, req):
        ctx.services.kv.write("sync", b"")
        return None


class EventsUpper(BasePlugin):
    """A stream chunk hook that takes a read's events in one call: each upper-cased and prefixed with the size
    of the group it came in ("[3]"), any holding "drop" dropped."""

    name = "events-upper"

    async def on_before_write_events(self, ctx, req):
        tag = b"[%d]" % len(req.events)
        return StreamEventsResponse(modified=True, events=[tag + e.upper() for e in req.events if b"drop" not in e])
