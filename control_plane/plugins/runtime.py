"""The studio plugin runtime: one `PluginHost` per control-plane process, on a background event loop.

Django code is synchronous, plugins are async; this module is the bridge. `call_plugin(slug, method, ...)`
loads the plugin on first use (from its `Plugin` row), notices when another process changed that row (its
`updated_at` moved) and reloads it, then runs the call on the host's loop and waits for it. Each plugin gets the
studio services: its own PostgreSQL KV namespace, a logger bound to it, the studio event bus and the studio
management services (`StudioServicesImpl`). DOWN events a plugin publishes during a call are written to the event
outbox on the caller's thread, inside its transaction when it has one (see `studio_services.EventCollector`).

A reload or unload (the row edited, deactivated or deleted) replaces an instance that other threads may be using:
a call, an agent's stream (`plugin_stream_handle`) or a studio LLM call's chain (`chain_loader`) counts itself as a
user of the handle it took (`handle_users`), and the replaced instance is stopped only once its last user is done
(bounded as at the edge: at most 32 wait, none longer than 600 s; `shutdown_runtime` stops them all).

Nothing here runs at import time: the loop thread starts on the first call, so management commands that never
touch a plugin never start it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import dataclasses
import functools
import gc
import json
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import msgspec

from control_plane.audit.actor import acting_as
from shared_sdk import Context, PluginCallError, PluginLoadError, Runtime, Services
from shared_sdk.context import StdlibPluginLogger, topic_matches
from shared_sdk.host import (
    InProcessHandle,
    PluginHandle,
    PluginHost,
    PluginSourceRefused,
    PluginSpec,
    load_plugin_object,
)
from shared_sdk.messages import Direction, Event, PluginManifest
from shared_sdk.scopes import declared_scopes

from . import handle_users
from .handle_users import HandleUsers
from .reach import PluginReach
from .sources import plugin_host_import_path, plugin_sources
from .studio_chain import ChainEntry
from .studio_services import (
    EventCollector,
    StudioEventBus,
    StudioKV,
    StudioServicesImpl,
    current_collector,
    serving_chat_user,
)

__all__ = [
    "call_plugin",
    "chain_loader",
    "plugin_describe",
    "plugin_host",
    "plugin_initialize_trial",
    "plugin_release",
    "plugin_reload",
    "plugin_spec",
    "plugin_stream_handle",
    "plugins_load_at_start",
    "plugins_load_session_aware",
    "publish_local_event",
    "publish_studio_event",
    "shutdown_runtime",
]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_host: PluginHost | None = None
_loaded_versions: dict[str, str] = {}
# The timeout each loaded plugin's spec had (for an isolated plugin: the one its process was spawned with).
_spawn_timeouts: dict[str, float] = {}
_event_bus = StudioEventBus()
# The namespace of each plugin, from the `Plugin` row this process is (re)loading it from: the host asks for a
# plugin's services on its loop, where the ORM cannot be used, so the row's namespace is noted here first.
_namespaces: dict[str, str] = {}
_T = TypeVar("_T")


def _services(key: str, namespace: str | None = None) -> Services:
    """The studio services of plugin instance `key`, confined to its plugin's namespace (`reach.PluginReach`).

    A `slug@llm` instance of an LLM's chain shares its plugin's KV and namespace (as at an edge). The namespace
    comes from the plugin's registration (`namespace`, or what `_note_namespace` recorded before the host loads
    it), never from the plugin: an isolated plugin's broker serves exactly these objects."""
    slug = key.split("@", 1)[0]
    if namespace is None:
        if slug not in _namespaces:  # fail closed: a plugin of unknown namespace gets no services at all
            raise RuntimeError(f"plugin {slug!r} is loaded without its registration's namespace")
        namespace = _namespaces[slug]
    reach = PluginReach(namespace)
    return Services(
        runtime=Runtime.STUDIO,
        kv=StudioKV(slug),
        logger=StdlibPluginLogger(slug),
        events=_event_bus.bound(slug, reach),
        studio=StudioServicesImpl(slug, reach=reach),  # bound to the plugin: its LLM calls are accounted to it
    )


def _note_namespace(plugin: Any) -> None:
    _namespaces[plugin.slug] = plugin.namespace or ""


def _ensure_loop() -> tuple[asyncio.AbstractEventLoop, PluginHost]:
    global _loop, _thread, _host
    with _lock:
        if _loop is None or _host is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="fjordgate-studio-plugins", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
            # an agent answering a chat turn spends the user's budget, isolated too (its calls carry the turn's id)
            _host = PluginHost(Runtime.STUDIO, _services, sources=plugin_sources(), carried=(serving_chat_user,))
        return _loop, _host


def _run(coro: Any, timeout_s: float | None = None) -> Any:
    loop, _ = _ensure_loop()
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout_s)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise


def plugin_host() -> PluginHost:
    """The process-wide studio host (started on first use)."""
    return _ensure_loop()[1]


_stopping: set[concurrent.futures.Future[None]] = set()
"""Stops of replaced instances under way (`shutdown_runtime` waits for them before it closes the loop)."""


def _stop_retired(handle: PluginHandle) -> None:
    """Stop a replaced instance nobody uses any more, without waiting: scheduled on the loop from any thread (the
    last user's, or the loop's own for an expired wait)."""
    with _lock:  # never waits on the loop: it may be the loop's own thread
        loop, host = _loop, _host
        if loop is None or host is None:
            return  # shut down meanwhile: `shutdown_runtime` stopped what waited
        future = asyncio.run_coroutine_threadsafe(host.stop_retired(handle), loop)
        _stopping.add(future)
    future.add_done_callback(functools.partial(_stopped, handle.slug))


def _stopped(slug: str, future: concurrent.futures.Future[None]) -> None:
    with _lock:
        _stopping.discard(future)
    if future.cancelled():
        logger.warning("plugin %s: the stop of its replaced instance was cancelled", slug)
    elif (exc := future.exception()) is not None:
        logger.warning("plugin %s: its replaced instance did not stop cleanly: %s", slug, exc)


_users = HandleUsers(_stop_retired)
"""The users of each loaded handle: a replaced one is stopped once they are done (see the module docstring)."""


def _expire(ref: weakref.ref[PluginHandle]) -> None:
    handle = ref()  # a weak reference: the timer does not keep an instance stopped meanwhile alive for 600 s
    if handle is not None:
        _users.expire(handle)


async def _retiring(host: PluginHost, change: Callable[[Callable[[PluginHandle], None]], Awaitable[_T]]) -> _T:
    """Run `change(retire)` (the host's `reload` or `unload`) on the loop, the instance it replaces handed to
    `_users` instead of being stopped: stopped here when nobody uses it (as before: the reload returns with it
    stopped), else once its last user is done, or RETIRE_AFTER_S from now."""
    replaced: list[PluginHandle] = []
    try:
        return await change(replaced.append)
    finally:
        loop = asyncio.get_running_loop()
        for handle in replaced:
            stop_now = _users.retire(handle)
            if handle not in stop_now:
                loop.call_later(handle_users.RETIRE_AFTER_S, _expire, weakref.ref(handle))
            for unused in stop_now:
                await host.stop_retired(unused)


def _reload(spec: PluginSpec) -> PluginHandle:
    """`host.reload(spec)` from a Django thread, the replaced instance retired (`_retiring`)."""
    host = plugin_host()
    return _run(_retiring(host, lambda retire: host.reload(spec, retire=retire)))


def _unload(key: str) -> None:
    """`host.unload(key)` from a Django thread when it is loaded, the instance retired (`_retiring`)."""
    host = plugin_host()
    if key in host:
        _run(_retiring(host, lambda retire: host.unload(key, retire=retire)))


def _taken(fetch: Callable[[], tuple[PluginHandle, _T]]) -> tuple[PluginHandle, _T]:
    """`fetch()`'s handle, the caller counted as its user (release it with `plugin_release`). Fetched again when a
    reload on another thread retired it between the fetch and the count."""
    while True:
        handle, rest = fetch()
        if _users.acquire((handle,)):
            return handle, rest


def plugin_release(handle: PluginHandle) -> None:
    """The caller is done with a handle `plugin_stream_handle` gave it: stopped now if a reload replaced it."""
    _users.release((handle,))


def plugin_spec(plugin: Any) -> PluginSpec:
    """A host spec from a `Plugin` row."""
    return PluginSpec(
        slug=plugin.slug,
        import_path=plugin_host_import_path(plugin),
        command=list(plugin.command) or None,
        isolated=bool(plugin.isolated),
        config=dict(plugin.config or {}),
        failure_policy=plugin.failure_policy,
        timeout_s=plugin.timeout_ms / 1000.0,
        extra_scopes=tuple(plugin.extra_scopes or ()),
    )


def _version(plugin: Any) -> str:
    return plugin.updated_at.isoformat() if plugin.updated_at else ""


def _handle(slug: str, method: str, call_timeout_s: float | None) -> tuple[PluginHandle, float]:
    """The loaded handle of an active plugin and the timeout this call gets (the plugin's own unless overridden).

    The handle is (re)loaded when the plugin's row changed since this process loaded it. An isolated plugin's
    process also enforces a deadline of its own, derived from the timeout it was spawned with (about 1.5 times
    that), so it is spawned with the longest timeout any call asked for so far and respawned once when a call
    asks for a longer one; each call's limit is then applied per call (`_with_call_timeout`).
    """
    from .models import Plugin

    plugin = Plugin.objects.filter(slug=slug).first()
    host = plugin_host()
    if plugin is None or not plugin.active:
        if slug in host:
            _unload(slug)
            _loaded_versions.pop(slug, None)
            _spawn_timeouts.pop(slug, None)
        fail_open = plugin is None or plugin.failure_policy == "open"
        raise PluginCallError(slug, method, "unavailable", fail_open, "plugin is not registered or not active")
    spec = plugin_spec(plugin)
    effective = spec.timeout_s if call_timeout_s is None else call_timeout_s
    handle = host.get(slug)
    stale = handle is None or _loaded_versions.get(slug) != _version(plugin)
    if spec.runs_isolated:
        spawned = 0.0 if stale else _spawn_timeouts.get(slug, 0.0)
        needed = max(spec.timeout_s, effective, spawned)
        stale = stale or needed > spawned
        spec = dataclasses.replace(spec, timeout_s=needed)
    if stale:
        _note_namespace(plugin)
        handle = _load(spec, method)
        _loaded_versions[slug] = _version(plugin)
        _spawn_timeouts[slug] = spec.timeout_s
    assert handle is not None
    return handle, effective


def _load(spec: PluginSpec, method: str) -> PluginHandle:
    """(Re)load `spec` in the host; a load error is the plugin being unavailable (the caller applies its policy)."""
    plugin_host().sources = plugin_sources()
    try:
        return _reload(spec)
    except PluginCallError:
        raise
    except Exception as exc:
        raise PluginCallError(spec.slug, method, "unavailable", spec.fail_open, f"{type(exc).__name__}: {exc}") from exc


class _ChainLoader:
    """The studio host's side of `studio_chain`: the plugin instances an LLM's chain runs in this process.

    A plugin's own instance is the one `call_plugin` uses (same load, same refresh when its row changed); a
    binding with a config override of its own runs as `slug@llm`, loaded with the merged config and reloaded
    when that config or the plugin changes. A studio LLM call takes its chain's handles for its whole length
    (`take`, `release`), so an instance replaced meanwhile is stopped only once the call is over.
    """

    def load(self, entry: ChainEntry) -> PluginHandle:
        if entry.key == entry.slug:
            return _handle(entry.slug, "initialize", None)[0]
        from .models import Plugin

        plugin = Plugin.objects.filter(slug=entry.slug, active=True).first()
        if plugin is None:
            raise PluginCallError(entry.key, "initialize", "unavailable", not entry.fail_closed, "plugin is not active")
        handle = plugin_host().get(entry.key)
        if handle is None or _loaded_versions.get(entry.key) != entry.version:
            spec = dataclasses.replace(plugin_spec(plugin), slug=entry.key, config=dict(entry.config))
            _note_namespace(plugin)
            handle = _load(spec, "initialize")
            _loaded_versions[entry.key] = entry.version
        return handle

    def current(self, key: str) -> PluginHandle | None:
        return plugin_host().get(key)

    def unload(self, key: str) -> None:
        _unload(key)
        _loaded_versions.pop(key, None)

    def take(self, handles: Iterable[PluginHandle]) -> bool:
        return _users.acquire(handles)

    def release(self, handles: Iterable[PluginHandle]) -> None:
        _users.release(handles)

    def loop(self) -> asyncio.AbstractEventLoop:
        return _ensure_loop()[0]


chain_loader = _ChainLoader()
"""What `PluginsConfig.ready` hands to `studio_chain` (which sits below the runtime and cannot import it)."""


def _with_call_timeout(handle: PluginHandle, timeout_s: float) -> PluginHandle:
    """The same loaded plugin (same object or process, same threads) with its own timeout for one call.

    The SDK's handles take a single timeout from their spec; a shallow copy with `timeout_s` replaced gives one
    call another limit without changing it for the calls in flight on the shared handle.
    """
    if handle.timeout_s == timeout_s:
        return handle
    if isinstance(handle, InProcessHandle):
        handle._pool()  # the plugin's thread pool lives on the shared handle, so the copy runs on the same threads
    view = copy.copy(handle)
    view.timeout_s = timeout_s
    return view


def plugin_stream_handle(slug: str, method: str) -> tuple[PluginHandle, asyncio.AbstractEventLoop]:
    """The loaded handle of `slug` (loaded or refreshed as `call_plugin` does) and the loop its calls must run on,
    for callers that iterate a streaming method from another loop (`plugins.streaming`). The caller is counted as
    the handle's user until it calls `plugin_release(handle)`: a reload meanwhile leaves the instance running until
    then. Blocking: call it from a worker thread. Raises `PluginCallError` when the plugin is not registered or not
    active."""
    handle, _ = _taken(lambda: _handle(slug, method, None))
    return handle, _ensure_loop()[0]


def call_plugin(
    slug: str,
    method: str,
    *args: Any,
    ctx: Context | None = None,
    timeout_s: float | None = None,
    call_timeout_s: float | None = None,
) -> Any:
    """Call `method` of plugin `slug` from synchronous Django code and return its result.

    Raises `PluginCallError` (timeout, exception, crash, unavailable) like the host does.
    - `call_timeout_s` replaces the plugin's own call timeout (`Plugin.timeout_ms`) for this call, longer or
      shorter: a scheduled job may run for minutes where the plugin's request-path calls get seconds.
    - `timeout_s` only bounds the wait on top of whichever timeout applies (object hooks cap theirs with it).
    """
    if call_timeout_s is not None and call_timeout_s <= 0:
        raise ValueError("call_timeout_s must be positive")
    handle, effective = _taken(lambda: _handle(slug, method, call_timeout_s))
    try:
        return _call(handle, effective, slug, method, args, ctx, timeout_s)
    finally:
        _users.release((handle,))  # the handle, not the copy `_with_call_timeout` may make of it


def _call(
    handle: PluginHandle,
    effective: float,
    slug: str,
    method: str,
    args: tuple[Any, ...],
    ctx: Context | None,
    timeout_s: float | None,
) -> Any:
    view = _with_call_timeout(handle, effective)
    if ctx is None:
        ctx = Context(runtime=Runtime.STUDIO)
    collector = EventCollector()
    token = current_collector.set(collector)  # copied into the call's task by run_coroutine_threadsafe
    try:
        with acting_as("plugin", slug, "plugin"):  # writes the plugin makes through studio services are its own
            return _run(view.call(method, ctx, *args), timeout_s)
    except concurrent.futures.TimeoutError:
        raise PluginCallError(slug, method, "timeout", view.fail_open, f"no answer within {timeout_s:g}s") from None
    finally:
        current_collector.reset(token)
        events = collector.close()
        if events:  # on this thread's connection: part of the caller's transaction when it has one
            from .event_outbox import outbound_event_add

            outbound_event_add(events=events)


def publish_local_event(event: Event, *, timeout_s: float = 30.0) -> None:
    """Deliver `event` to this process's studio plugins as `Direction.LOCAL` and wait until they had it.

    For what arrives from the other tier (the bridge hands over UP events from edges): re-published as LOCAL, it
    is never sent anywhere again, so nothing echoes back. Safe to call from any thread except the plugin loop's.
    """
    local = event if event.direction is Direction.LOCAL else msgspec.structs.replace(event, direction=Direction.LOCAL)
    _load_event_subscribers(local.topic)
    _run(_event_bus.publish_event(local), timeout_s)


def _load_event_subscribers(topic: str) -> None:
    """Load (or refresh) the active plugins whose manifest subscribes to `topic`, before it is published."""
    from .models import Plugin

    for plugin in Plugin.objects.filter(active=True, manifest__has_key="events").only("slug", "manifest"):
        patterns = plugin.manifest.get("events") or []
        if any(topic_matches(pattern, topic) for pattern in patterns if isinstance(pattern, str)):
            try:
                _handle(plugin.slug, "initialize", None)
            except PluginCallError as exc:
                logger.warning("event subscriber %s not loaded: %s", plugin.slug, exc)


def publish_studio_event(
    topic: str, payload: dict[str, Any], *, namespace: str = "", source: str = "control-plane"
) -> None:
    """Publish a control-plane event (LOCAL) to this process's studio plugins without waiting for them.

    For events the control plane itself raises (audit entries, budget alerts). Plugins whose manifest lists the
    topic in `events` are loaded first; when none is and no plugin runtime runs in this process, nothing starts.
    """
    _load_event_subscribers(topic)
    if _loop is None:
        return
    event = Event(
        topic=topic,
        payload=json.dumps(payload, default=str).encode(),
        direction=Direction.LOCAL,
        source=source,
        namespace=namespace,
    )
    asyncio.run_coroutine_threadsafe(_event_bus.publish_event(event), _loop)


def _loads_at_start(plugin: Any) -> bool:
    """A plugin that hears things without being called: events (subscribed in `on_session_ready`, or topics its
    manifest lists in `events`) or payloads from its edge half. Loaded lazily, it would miss the first ones."""
    capabilities = plugin.capabilities or []
    if "session_aware" in capabilities or "edge_payload" in capabilities:
        return True
    manifest = plugin.manifest if isinstance(plugin.manifest, dict) else {}
    return bool(manifest.get("events"))


def plugins_load_at_start() -> list[str]:
    """Load every active plugin that receives events or edge payloads in this process; returns their slugs.

    The bridge calls this when it starts and then every 30 s (a plugin registered meanwhile is loaded within
    that time; an event for a topic in a plugin's manifest `events` loads it at once, see `publish_local_event`),
    so what edges send up and what the control plane raises reaches such plugins from the first event on.
    Already loaded, unchanged plugins cost one query; a plugin that cannot load is logged and skipped.
    """
    from .models import Plugin

    loaded = []
    for plugin in Plugin.objects.filter(active=True).order_by("slug").only("slug", "capabilities", "manifest"):
        if not _loads_at_start(plugin):
            continue
        try:
            _handle(plugin.slug, "initialize", None)
        except PluginCallError as exc:
            logger.warning("plugin %s could not be loaded at start: %s", plugin.slug, exc)
            continue
        loaded.append(plugin.slug)
    return loaded


plugins_load_session_aware = plugins_load_at_start  # the name the bridge used before edge payloads were included


def plugin_reload(slug: str) -> None:
    """Reload (or unload, when deleted or inactive) a plugin loaded in this process; no-op if it is not loaded."""
    from .models import Plugin

    host = plugin_host()
    if slug not in host:
        return
    plugin = Plugin.objects.filter(slug=slug, active=True).first()
    if plugin is None:
        _unload(slug)
        _loaded_versions.pop(slug, None)
        _spawn_timeouts.pop(slug, None)
        return
    spec = plugin_spec(plugin)
    host.sources = plugin_sources()
    _note_namespace(plugin)
    _reload(spec)
    _loaded_versions[slug] = _version(plugin)
    _spawn_timeouts[slug] = spec.timeout_s


async def _describe(spec: PluginSpec, services: Services) -> dict[str, Any]:
    sources = plugin_sources()
    try:
        sources.check(import_path=spec.import_path, command=spec.command)  # before importing or spawning
    except PluginSourceRefused as exc:
        raise PluginLoadError(spec.slug, exc.message) from None
    if spec.runs_isolated:
        from shared_sdk.isolated.supervisor import IsolatedHandle

        handle: PluginHandle = IsolatedHandle(spec, Runtime.STUDIO, services, import_roots=sources.import_roots)
    else:
        plugin = load_plugin_object(spec.slug, spec.import_path or "", allows_module=sources.allows_module)
        handle = InProcessHandle(spec, Runtime.STUDIO, services, plugin)
    start: Callable | None = getattr(handle, "start", None)
    try:
        if start is not None:
            await start()
        schema = await handle.read_config_schema()
        manifest = await handle.read_manifest() or PluginManifest()
        # Every host refuses to load a plugin whose manifest names a scope it does not know (a typo such as
        # `app.read`): refuse it here too, or the registration succeeds and every edge logs it as not loaded.
        declared_scopes(spec.slug, manifest)
        handle.healthy = True  # describe-only calls, before initialize (as read_config_schema does)
        registrations = []
        if handle.implements("get_object_hook_registrations"):
            registrations = await handle.call("get_object_hook_registrations", None)
        if handle.implements("get_resource_types") and not manifest.resource_types:
            # kept with the manifest, so lists of resource types never call a plugin
            manifest = msgspec.structs.replace(manifest, resource_types=await handle.call("get_resource_types", None))
        return {
            "name": handle.name,
            "version": handle.version,
            "description": handle.description,
            "capabilities": sorted(handle.capabilities),
            "config_schema": schema or {},
            "manifest": msgspec.to_builtins(manifest),
            "hook_registrations": msgspec.to_builtins(registrations),
        }
    finally:
        handle.healthy = False
        await handle.stop()


def plugin_describe(plugin: Any) -> dict[str, Any]:
    """Ask a plugin (not yet registered, so loaded aside from the host) what it is and what it can do.

    Raises the SDK's `PluginLoadError` when it cannot be imported or started.
    """
    spec = plugin_spec(plugin)
    services = _services(spec.slug, plugin.namespace or "")
    return _run(_describe(spec, services), spec.startup_timeout_s + spec.timeout_s)


async def _initialize_trial(spec: PluginSpec, namespace: str) -> None:
    host = PluginHost(
        Runtime.STUDIO, lambda key: _services(key, namespace), sources=plugin_sources(), loop_stall_s=None
    )
    try:
        await host.load(spec)
    finally:
        await host.aclose()


def plugin_initialize_trial(plugin: Any, config: dict[str, Any] | None = None) -> None:
    """Load a registration (saved or not) aside from the process' host as the studio loads it: code source, manifest,
    config, `initialize` and `on_session_ready`, then stop it. `config` replaces the plugin's own: an LLM's override
    merged over it, the config its `slug@llm` instance is loaded with.

    Why: describing a plugin reads what it declares but never initializes it, so a plugin whose `initialize` raises
    (a config its schema allows but the plugin cannot use) was registered, and then failed at every call and in every
    host. Raises the SDK's `PluginLoadError` / `PluginCallError` / `PluginConfigError` naming the plugin."""
    spec = plugin_spec(plugin)
    if config is not None:
        spec = dataclasses.replace(spec, config=dict(config))
    limit = spec.startup_timeout_s + 2 * spec.timeout_s + 5
    try:
        _run(_initialize_trial(spec, plugin.namespace or ""), limit)
    except concurrent.futures.TimeoutError:
        raise PluginLoadError(spec.slug, f"initialize did not finish within {limit:g}s") from None


def shutdown_runtime() -> None:
    """Unload every plugin, stop the replaced instances still waiting for their users, and stop the loop (tests,
    and process exit)."""
    global _loop, _thread, _host
    with _lock:
        loop, thread, host = _loop, _thread, _host
        _loop = _thread = _host = None
        _loaded_versions.clear()
        _spawn_timeouts.clear()
        stopping = list(_stopping)
    if loop is None or host is None:
        return
    retired = _users.drain()

    async def close(host: PluginHost) -> None:
        waits = [asyncio.wrap_future(future) for future in stopping]  # an isolated instance: until its process exits
        await asyncio.gather(*waits, *(host.stop_retired(handle) for handle in retired), return_exceptions=True)
        await host.aclose()

    asyncio.run_coroutine_threadsafe(close(host), loop).result(30)
    # The studio services' ORM calls ran in the loop's default executor, each thread keeping its persistent
    # (CONN_MAX_AGE) database connection. Join those threads, then collect: Django's connection wrapper is a
    # reference cycle, so its socket closes only when the cycle is collected (tests drop the database next).
    asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    if thread is not None:
        thread.join(10)
    loop.close()
    gc.collect()
