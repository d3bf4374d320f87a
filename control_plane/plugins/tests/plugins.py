"""Small plugins the studio-runtime tests load (import paths `control_plane.plugins.tests.plugins:*`).

They import only `shared_sdk`, so the same classes also run isolated (`python -m shared_sdk.isolated.run ...`).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import ClassVar

import msgspec

from shared_sdk import (
    AgentPlugin,
    BasePlugin,
    EdgePayloadReceiver,
    ManifestProvider,
    PreAuthHandler,
    ResponseHandler,
    SchedulerPlugin,
    SessionAware,
)
from shared_sdk.messages import (
    AgentChunk,
    AgentChunkType,
    Direction,
    EdgePayload,
    Event,
    LLMMessage,
    ManifestPermissions,
    PluginManifest,
    PluginResponse,
    ResponseWriteResponse,
    StreamCompleteResponse,
)


class SlowScheduler(BasePlugin, SchedulerPlugin):
    """Sleeps `schedule.config["sleep_s"]` seconds, then returns: a job longer than a request-path call."""

    name = "slow-scheduler"
    version = "1.0.0"

    async def execute_scheduled_task(self, ctx, schedule) -> None:
        await asyncio.sleep(float(schedule.config.get("sleep_s", 0)))


class StudioProbe(BasePlugin, SchedulerPlugin, ManifestProvider):
    """Uses every studio service a scheduled job typically needs, and leaves proof of each in its KV.

    Writes a value and reads it back, lists the apps, tags one app's metadata (a write that goes through the
    control plane's app service), then stores what it saw under `probe:result`. Raises when a read-back differs,
    so a broken service fails the call instead of passing quietly.
    """

    name = "studio-probe"
    version = "1.0.0"

    def get_manifest(self) -> PluginManifest:
        # The service scopes the host grants it: listing apps and changing their metadata (its KV is baseline).
        return PluginManifest(
            id="studio-probe", permissions=ManifestPermissions(kv=True, services=["apps.write", "kv.readwrite"])
        )

    async def execute_scheduled_task(self, ctx, schedule) -> None:
        kv = ctx.services.kv
        marker = f"written by {schedule.execution_id}".encode()
        await kv.write("probe:marker", marker)
        read_back = await kv.read("probe:marker")
        if read_back != marker:
            raise RuntimeError(f"KV read back {read_back!r}, wrote {marker!r}")
        apps = await ctx.services.studio.list_apps(page=1, limit=50)
        tagged = None
        if apps:
            metadata = await ctx.services.studio.patch_app_metadata(apps[0].id, "probed_by", schedule.execution_id)
            tagged = {"app_id": apps[0].id, "metadata": metadata}
        result = {
            "execution_id": schedule.execution_id,
            "plugin_slug": ctx.plugin_slug,
            "namespace": ctx.namespace,
            "pid": os.getpid(),
            "apps": sorted(app.name for app in apps),
            "keys": sorted(await kv.list("probe:")),
            "tagged": tagged,
        }
        await kv.write("probe:result", json.dumps(result, sort_keys=True).encode())


class AppLister(BasePlugin, SchedulerPlugin):
    """Declares no manifest, yet lists apps: allowed only when an operator grants `apps.read` (extra_scopes)."""

    name = "app-lister"
    version = "1.0.0"

    async def execute_scheduled_task(self, ctx, schedule) -> None:
        apps = await ctx.services.studio.list_apps(page=1, limit=10)
        await ctx.services.kv.write("seen", json.dumps([app.name for app in apps]).encode())


class DownAnnouncer(BasePlugin, SchedulerPlugin, ManifestProvider):
    """Publishes one `Direction.DOWN` event per run: topic, namespace, payload and a claimed `source` from the
    schedule's config.

    With `config["later_s"]` it also publishes a second event (topic + ".later") from a task that outlives the call.
    """

    name = "down-announcer"
    version = "1.0.0"

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(id="down-announcer", permissions=ManifestPermissions(services=["events.publish"]))

    async def execute_scheduled_task(self, ctx, schedule) -> None:
        config = schedule.config
        event = Event(
            topic=config["topic"],
            payload=str(config.get("payload", "")).encode(),
            direction=Direction.DOWN,
            namespace=config.get("namespace", ""),
            source=config.get("source", ""),
        )
        await ctx.services.events.publish_event(event)
        if "later_s" in config:

            async def later() -> None:
                await asyncio.sleep(float(config["later_s"]))
                await ctx.services.events.publish(f"{config['topic']}.later", b"later", Direction.DOWN)

            self._later = asyncio.get_running_loop().create_task(later())


class LLMCaller(BasePlugin, SchedulerPlugin, ManifestProvider):
    """Calls `config["llm_id"]` through the studio services and keeps the answer in its KV under `answer`."""

    name = "llm-caller"
    version = "1.0.0"

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(id="llm-caller", permissions=ManifestPermissions(services=["llms.proxy"]))

    async def execute_scheduled_task(self, ctx, schedule) -> None:
        config = schedule.config
        answer = await ctx.services.studio.call_llm(
            int(config["llm_id"]),
            [LLMMessage(role="user", content=config["prompt"])],
            max_tokens=config.get("max_tokens"),
        )
        await ctx.services.kv.write("answer", json.dumps(msgspec.to_builtins(answer)).encode())


class WordGuard(BasePlugin, PreAuthHandler, ResponseHandler):
    """An edge plugin as an operator would chain it to an LLM: refuses requests that mention `config["word"]`
    (pre-auth block with its own message) and writes `config["find"]` as `config["replace"]` in replies, whole
    or streamed chunk by chunk. Counts finished streams in its KV (`streams`), proof that `on_stream_complete` ran."""

    name = "word-guard"
    version = "1.0.0"

    async def handle_pre_auth(self, ctx, req) -> PluginResponse:
        word = str(self.config.get("word", ""))
        if word and word.lower() in req.body.decode().lower():
            return PluginResponse(block=True, error_message=f"{self.config.get('label', 'word-guard')}: no {word!r}")
        return PluginResponse()

    async def on_before_write(self, ctx, req) -> ResponseWriteResponse:
        find, replace = str(self.config.get("find", "")).encode(), str(self.config.get("replace", "")).encode()
        if not find or find not in req.body:
            return ResponseWriteResponse()
        return ResponseWriteResponse(modified=True, body=req.body.replace(find, replace))

    async def on_stream_complete(self, ctx, req) -> StreamCompleteResponse:
        count = int((await ctx.services.kv.read("streams")) or b"0")
        await ctx.services.kv.write("streams", str(count + 1).encode())
        return StreamCompleteResponse(handled=True)


RECEIVED: list[tuple[str, str]] = []
"""(config label, event id) for every `counter.ping` event an `EventCounter` instance handled, in this process."""


class EventCounter(BasePlugin, SchedulerPlugin, SessionAware):
    """Subscribes to `counter.ping` when its session opens and never unsubscribes (as most plugins): whether a
    reload leaves the old instance's handler behind shows in `RECEIVED`."""

    name = "event-counter"
    version = "1.0.0"

    async def on_session_ready(self, ctx) -> None:
        await ctx.services.events.subscribe("counter.ping", self._count)

    async def _count(self, event: Event) -> None:
        RECEIVED.append((str(self.config.get("label", "")), event.id))

    async def execute_scheduled_task(self, ctx, schedule) -> None:
        return None


class TopicListener(BasePlugin, ManifestProvider):
    """Subscribes in `initialize` to the topics its manifest lists in `events` (no other capability): nothing
    ever calls it, so only the runtime's loading of event subscribers makes it hear anything."""

    name = "topic-listener"
    version = "1.0.0"
    heard: ClassVar[list[str]] = []

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(events=["notes.*"])

    async def initialize(self, ctx, config) -> None:
        await super().initialize(ctx, config)
        await ctx.services.events.subscribe("notes.*", self._hear)

    async def _hear(self, event: Event) -> None:
        type(self).heard.append(event.id)


class PayloadTaker(BasePlugin, EdgePayloadReceiver):
    """Takes every payload its edge half sends up (and keeps the ids)."""

    name = "payload-taker"
    version = "1.0.0"
    taken: ClassVar[list[str]] = []

    async def accept_edge_payload(self, ctx, payload: EdgePayload) -> bool:
        type(self).taken.append(payload.correlation_id)
        return True


class NamespaceProbe(BasePlugin, SchedulerPlugin, ManifestProvider):
    """Tries every studio service on the objects its schedule names (`config[kind][label] = id`) and stores what
    each answered under `probe:seen`: a name or `None` for reads, "ok" or the error's message for writes. The
    tests read it to see which namespaces' objects a plugin of a given namespace reaches."""

    name = "namespace-probe"
    version = "1.0.0"

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(
            id="namespace-probe",
            permissions=ManifestPermissions(services=["apps.write", "users.read", "llms.read", "tools.read"]),
        )

    async def execute_scheduled_task(self, ctx, schedule) -> None:
        studio, ids = ctx.services.studio, schedule.config
        got, replaced, patched = {}, {}, {}
        for label, app_id in ids["apps"].items():
            app = await studio.get_app(app_id)
            got[label] = app.name if app else None
            replaced[label] = await _outcome(studio.update_app_metadata(app_id, {"probed": True}))
            patched[label] = await _outcome(studio.patch_app_metadata(app_id, "patched", True))
        seen: dict[str, object] = {"get_app": got, "update_app_metadata": replaced, "patch_app_metadata": patched}
        seen["list_apps"] = sorted(app.name for app in await studio.list_apps(1, 100))
        seen["list_apps_of_b"] = sorted(app.name for app in await studio.list_apps(1, 100, namespace="team-b"))
        llms = {label: await studio.get_llm(llm_id) for label, llm_id in ids["llms"].items()}
        seen["get_llm"] = {label: llm.slug if llm else None for label, llm in llms.items()}
        seen["list_llms"] = sorted(llm.slug for llm in await studio.list_llms(1, 100))
        seen["list_tools"] = sorted(tool.slug for tool in await studio.list_tools(1, 100))
        users = {label: await studio.get_user(user_id) for label, user_id in ids["users"].items()}
        seen["get_user"] = {label: user.email if user else None for label, user in users.items()}
        await ctx.services.kv.write("probe:seen", json.dumps(seen, sort_keys=True).encode())


async def _outcome(call) -> str:
    try:
        await call
    except Exception as exc:
        return str(exc)
    return "ok"


class HeldCall(BasePlugin, SchedulerPlugin, AgentPlugin):
    """Holds a call, or a stream between its two items, until the test lets it go, and notes what each instance did.

    Works through files, so it runs isolated too: `config["dir"]` is a directory where each instance appends
    "<config label> <what>" lines to `log` ("holding <id>", "<id>" when a call returns, "shutdown" once it served
    one: registering initializes and stops an instance of its own first, which logs nothing), and a call
    whose schedule config has `hold` (every agent message does) waits until a file named `release` exists there.
    """

    name = "held-call"
    version = "1.0.0"

    async def execute_scheduled_task(self, ctx, schedule) -> None:
        if schedule.config.get("hold"):
            await self._hold(schedule.id)
        self._note(schedule.id)

    async def handle_agent_message(self, ctx, req):
        yield AgentChunk(content=f"{self.config['label']} first")
        await self._hold(req.user_message)
        yield AgentChunk(content=f"{self.config['label']} second")  # the stream's next step, on the same instance
        self._note(req.user_message)
        yield AgentChunk(type=AgentChunkType.DONE, is_final=True)

    async def shutdown(self, ctx) -> None:
        if getattr(self, "served", False):  # not the instance registering tried aside (`plugin_initialize_check`)
            self._note("shutdown")

    async def _hold(self, what: str) -> None:
        self._note(f"holding {what}")
        while not os.path.exists(os.path.join(self.config["dir"], "release")):
            await asyncio.sleep(0.01)

    def _note(self, what: str) -> None:
        config = getattr(self, "config", None)  # none yet when it was only described (shut down uninitialized)
        if not config:
            return
        self.served = True
        with open(os.path.join(config["dir"], "log"), "a") as fh:
            fh.write(f"{self.config['label']} {what}\n")


class MisspelledScope(BasePlugin, ManifestProvider):
    """A post-auth plugin whose manifest asks for `app.read` (the scope is `apps.read`)."""

    name = "misspelled-scope"

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(permissions=ManifestPermissions(services=["app.read"]))

    async def handle_post_auth(self, ctx, req) -> None:
        return None


class MisspelledHook(BasePlugin):
    """A first plugin's typo: `handle_postauth` for `handle_post_auth`, a method the host never calls."""

    name = "misspelled-hook"

    async def handle_postauth(self, ctx, req) -> None:
        return None
