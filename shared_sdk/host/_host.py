"""`PluginHost`: loads, reloads and unloads plugins for one runtime (an edge or the control plane).

Loading is the only place that may be slow or fail loudly: import or spawn, describe, read the manifest
(it decides the plugin's service scopes), validate the config against the plugin's JSON Schema,
`initialize`, open the session. After that, callers only use the returned `PluginHandle`, whose calls never
raise anything but `PluginCallError`.

A host built with `sources` (the edge's and the control plane's are) checks every spec against the operator's
rules for plugin code (`PluginSources`) before it imports or spawns anything. Stopping a plugin (unload, or the
old instance after a reload) drops the event subscriptions that load made, so a reloaded plugin gets each event
once. Reloading never re-imports Python modules: an in-process plugin's new code needs a process restart, an
isolated plugin's new code is picked up by the fresh process each (re)load spawns.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..context import Services
from ..errors import PluginCallError, PluginLoadError
from ..messages import Runtime
from ..scopes import ScopeGuard, scoped_services
from ._config import validate_config
from ._loader import load_plugin_object
from ._subscriptions import TrackedEvents
from .handle import DEFAULT_SYNC_WORKERS, InProcessHandle, PluginHandle
from .health import PluginHealth
from .sources import PluginSourceRefused, PluginSources
from .spec import PluginSpec
from .watchdog import DEFAULT_STALL_THRESHOLD_S, LoopStall, LoopWatchdog

__all__ = ["RETIRED_MAX", "RETIRE_AFTER_S", "PluginHost"]

log = logging.getLogger("fjordgate.plugins.host")

RETIRE_AFTER_S = 600.0
"""How long a host's caller keeps an instance `reload`/`unload` handed to `retire` for the calls still using it, at
most (the edge's `ConfigStore`, the studio's `handle_users`): the edge's default upstream deadline
(`EDGE_UPSTREAM_DEADLINE_S`), past which no call has anything left to hook."""
RETIRED_MAX = 32
"""Retired instances kept waiting at most: past it (changes faster than calls end) the oldest is stopped at once, so
neither memory nor isolated plugins' processes grow with the rate of changes."""


class PluginHost:
    """Owns the loaded plugins of one process.

    `services_factory(slug)` returns the `Services` a plugin gets (its own KV namespace, a logger bound to
    it, the event bus, the runtime's services). It is called once per load, never per request; the host
    wraps what it returns so the plugin reaches only the services its scopes allow (`shared_sdk.scopes`).

    `ping_interval_s` and `sync_workers` are the defaults for specs that leave theirs unset: how often
    isolated plugins are health-pinged, and how many threads run each plugin's plain-`def` handlers.

    `loop_stall_s` arms a `LoopWatchdog` (`host.watchdog`) from the first load: an `async` handler that blocks
    the loop longer is logged with its plugin's name and counted; `on_loop_stall(stall)` lets the runtime meter
    it. `None` turns the watchdog off.
    `sources` (the operator's allow-list for plugin code) refuses any spec outside it with `PluginLoadError`
    before importing or spawning; `None` trusts every spec (embedding, the testing kit).
    `carried` are context variables of the caller that a plugin's service calls made during a call see: in-process
    they do by themselves (same task, same context); an isolated plugin's calls get them through call ids
    (`shared_sdk.isolated.calls`), and only while the call that set them is running.
    """

    def __init__(
        self,
        runtime: Runtime | str,
        services_factory: Callable[[str], Services],
        *,
        ping_interval_s: float = 30.0,
        sync_workers: int = DEFAULT_SYNC_WORKERS,
        loop_stall_s: float | None = DEFAULT_STALL_THRESHOLD_S,
        on_loop_stall: Callable[[LoopStall], None] | None = None,
        sources: PluginSources | None = None,
        carried: Sequence[contextvars.ContextVar[Any]] = (),
    ) -> None:
        if ping_interval_s <= 0:
            raise ValueError("ping_interval_s must be positive")
        if sync_workers < 1:
            raise ValueError("sync_workers must be at least 1")
        self.runtime = Runtime(runtime)
        self.services_factory = services_factory
        self.ping_interval_s = ping_interval_s
        self.sync_workers = sync_workers
        self.sources = sources
        self.carried = tuple(carried)
        self._handles: dict[str, PluginHandle] = {}
        self._lock = asyncio.Lock()
        self.watchdog = LoopWatchdog(loop_stall_s, on_loop_stall) if loop_stall_s is not None else None

    def get(self, slug: str) -> PluginHandle | None:
        return self._handles.get(slug)

    def __contains__(self, slug: object) -> bool:
        return slug in self._handles

    @property
    def handles(self) -> dict[str, PluginHandle]:
        """Loaded plugins by slug (a copy; safe to iterate while loading)."""
        return dict(self._handles)

    def health(self) -> dict[str, PluginHealth]:
        """Every loaded plugin's health by slug (for `/ready` and the admin); no I/O."""
        return {slug: handle.health() for slug, handle in list(self._handles.items())}

    async def load(self, spec: PluginSpec) -> PluginHandle:
        """Load, validate config, initialize; raises `PluginLoadError` or `PluginConfigError`."""
        async with self._lock:
            if spec.slug in self._handles:
                raise PluginLoadError(spec.slug, "a plugin with this slug is already loaded (use reload)")
            handle = await self._start(spec)
            self._handles[spec.slug] = handle
            return handle

    async def load_instance(self, plugin: object, spec: PluginSpec) -> PluginHandle:
        """Load an already constructed plugin object in-process (embedding and tests); `spec.import_path` is
        informational only."""
        async with self._lock:
            if spec.slug in self._handles:
                raise PluginLoadError(spec.slug, "a plugin with this slug is already loaded (use reload)")
            handle = await self._start(spec, plugin)
            self._handles[spec.slug] = handle
            return handle

    async def reload(self, spec: PluginSpec, *, retire: Callable[[PluginHandle], None] | None = None) -> PluginHandle:
        """Start the new version first; swap only once it initialized, so a bad config keeps the old one running.

        `retire`: handed the replaced handle instead of it being stopped here, for a caller whose requests in flight
        still call it (the edge's, until they finished); the caller stops it with `stop_retired`."""
        async with self._lock:
            new = await self._start(spec)
            old = self._handles.get(spec.slug)
            self._handles[spec.slug] = new
        if old is not None:
            if retire is not None:
                await self._retire(old, retire)
            else:
                await self._stop(old)
        if not spec.runs_isolated:
            log.info(
                "plugin %s reloaded with its new definition; in-process plugins keep the code this process "
                "imported: restart the process to run changed code",
                spec.slug,
                extra={"plugin": spec.slug},
            )
        return new

    async def unload(self, slug: str, *, retire: Callable[[PluginHandle], None] | None = None) -> None:
        """Stop and forget a plugin; `retire` as for `reload`."""
        async with self._lock:
            handle = self._handles.pop(slug, None)
        if handle is not None:
            if retire is not None:
                await self._retire(handle, retire)
            else:
                await self._stop(handle)

    @staticmethod
    async def _retire(handle: PluginHandle, retire: Callable[[PluginHandle], None]) -> None:
        """Its event subscriptions end now (each event reaches the plugin once, through its new instance); its calls
        go on until the caller stops it."""
        if handle.subscriptions is not None:
            await handle.subscriptions.drop_all()
        retire(handle)

    async def stop_retired(self, handle: PluginHandle) -> None:
        """Stop a handle `reload` or `unload` handed to `retire` (its session closing, shutdown, subscriptions)."""
        await self._stop(handle)

    async def aclose(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
        async with self._lock:
            handles = list(self._handles.values())
            self._handles.clear()
        await asyncio.gather(*(self._stop(h) for h in handles))

    async def _start(self, spec: PluginSpec, plugin: object | None = None) -> PluginHandle:
        if self.watchdog is not None:
            self.watchdog.start()
        spec = self._with_defaults(spec)
        if plugin is None and self.sources is not None:
            try:
                self.sources.check(import_path=spec.import_path, command=spec.command)
            except PluginSourceRefused as exc:
                raise PluginLoadError(spec.slug, exc.message) from None
        guard = ScopeGuard(spec.slug)
        services = self.services_factory(spec.slug)
        subscriptions: TrackedEvents | None = None
        if services is not None:
            services = scoped_services(services, guard)
            subscriptions = TrackedEvents(services.events)
            services.events = subscriptions
        handle: PluginHandle
        if plugin is not None:
            handle = InProcessHandle(spec, self.runtime, services, plugin)
        elif spec.runs_isolated:
            from ..isolated.supervisor import IsolatedHandle

            roots = self.sources.import_roots if self.sources is not None else None
            handle = IsolatedHandle(spec, self.runtime, services, carried=self.carried, import_roots=roots)
        else:
            assert spec.import_path is not None
            allows = self.sources.allows_module if self.sources is not None else None
            plugin = load_plugin_object(spec.slug, spec.import_path, allows_module=allows)
            handle = InProcessHandle(spec, self.runtime, services, plugin)
        handle.scope_guard = guard
        handle.subscriptions = subscriptions
        try:
            await handle.start()
            try:
                manifest = await handle.read_manifest()
            except PluginCallError as exc:
                raise PluginLoadError(spec.slug, f"its manifest could not be read: {exc}") from exc
            handle.manifest = manifest
            guard.grant(manifest, spec.extra_scopes)
            schema = await handle.read_config_schema()
            handle.config_schema = schema
            config = validate_config(spec.slug, schema, spec.config)
            await handle.initialize(config)
        except BaseException:
            await self._stop(handle)
            raise
        log.info(
            "plugin loaded",
            extra={
                "plugin": spec.slug,
                "fields": {
                    "isolated": spec.runs_isolated,
                    "capabilities": sorted(handle.capabilities),
                    "scopes": sorted(guard.scopes),
                },
            },
        )
        return handle

    def _with_defaults(self, spec: PluginSpec) -> PluginSpec:
        changes: dict[str, object] = {}
        if spec.sync_workers is None:
            changes["sync_workers"] = self.sync_workers
        if spec.ping_interval_s is None:
            changes["ping_interval_s"] = self.ping_interval_s
        return dataclasses.replace(spec, **changes) if changes else spec  # type: ignore[arg-type]

    async def _stop(self, handle: PluginHandle) -> None:
        try:
            await handle.stop()
        except Exception as exc:  # a plugin failing to shut down must not stop the others
            log.warning("plugin %s did not shut down cleanly: %s", handle.slug, exc)
        if handle.subscriptions is not None:
            left = await handle.subscriptions.drop_all()
            if left:
                log.info("plugin %s: dropped %d event subscription(s) it left behind", handle.slug, left)
