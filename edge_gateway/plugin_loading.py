"""Plugins of a snapshot: which to load (one instance per plugin, plus `slug@llm` for a binding whose config
differs), loading and reloading them in the host, and the chains each LLM runs (global plugins first).

Why separate from compiling: loading is async and fails per plugin (a broken plugin must not reject the whole
config; a fail-closed one makes its chains refuse requests, `PluginChain.broken`), and it is stateful across
configs (a plugin whose definition did not change keeps running).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from shared_sdk import PluginCallError
from shared_sdk.errors import FjordgateSDKError, PluginConfigError, PluginLoadError
from shared_sdk.host import ENTRY_POINT_PREFIX, PluginHandle, PluginHost, PluginSpec
from shared_sdk.pipeline import HookChain, HookTiming
from shared_sdk.snapshot import ConfigSnapshot, PluginConfig

from .compiled import CompiledConfig, PluginChain

__all__ = ["PluginLoader"]

log = logging.getLogger("fjordgate.edge.config")

Observer = Callable[[HookTiming], None] | None
ChainFactory = Callable[[Sequence[PluginHandle], Observer], HookChain]
"""Builds a request chain: `HookChain` itself, or the tracing edge's spanned chain (`tracing.EdgeTracing.chain`)."""


def plain_chain(handles: Sequence[PluginHandle], observer: Observer) -> HookChain:
    return HookChain(handles, observer=observer)


class PluginLoader:
    """The host's loaded plugins and the specs they were loaded with (to tell unchanged from changed)."""

    def __init__(
        self,
        host: PluginHost,
        observer: Observer,
        chain_factory: ChainFactory = plain_chain,
        retire: Callable[[PluginHandle], None] | None = None,
    ) -> None:
        self.host = host
        self.retire = retire
        """Handed each instance a reload or unload replaced, instead of it being stopped (`PluginHost.reload`)."""
        self.observer = observer
        self.chain_factory = chain_factory
        self.specs: dict[str, PluginSpec] = {}

    async def load(
        self, snapshot: ConfigSnapshot, compiled: CompiledConfig, restart_isolated: bool = False
    ) -> list[str]:
        """Load new plugins, reload changed ones, fill in `compiled`'s plugins, collectors, endpoints and chains;
        returns the keys to unload once the new config is in force."""
        wanted = desired_specs(snapshot)
        failed = await self._load_wanted(wanted, restart_isolated)
        handles = {key: h for key, h in self.host.handles.items() if key in wanted and key not in failed}
        compiled.plugins = handles
        compiled.plugins_not_loaded = sorted(({p.slug for p in snapshot.plugins} | wanted.keys()) - handles.keys())
        compiled.plugin_load_errors = {key: failed.get(key, UNUSABLE) for key in compiled.plugins_not_loaded}
        collectors = [h for h in handles.values() if "data_collection" in h.capabilities]
        compiled.collectors = HookChain(collectors, observer=self.observer) if collectors else None
        await _ask_endpoints(handles, compiled)
        self._build_chains(snapshot, compiled, handles, wanted)
        return [key for key in self.specs if key not in wanted]

    async def unload(self, key: str) -> None:
        await self.host.unload(key, retire=self.retire)
        self.specs.pop(key, None)

    async def _load_wanted(self, wanted: dict[str, PluginSpec], restart_isolated: bool) -> dict[str, str]:
        """Load or reload what changed; returns the keys that failed -> why (`load_failure`)."""
        failed: dict[str, str] = {}
        for key, spec in wanted.items():
            old = self.specs.get(key)
            if old == spec and key in self.host and not (restart_isolated and spec.runs_isolated):
                continue
            try:
                if key in self.host:
                    await self.host.reload(spec, retire=self.retire)
                else:
                    await self.host.load(spec)
                self.specs[key] = spec
            except (FjordgateSDKError, PluginCallError) as exc:
                failed[key] = load_failure(exc)
                log.error("plugin %s not loaded: %s", key, exc)
        return failed

    def _build_chains(
        self,
        snapshot: ConfigSnapshot,
        compiled: CompiledConfig,
        handles: dict[str, PluginHandle],
        wanted: dict[str, PluginSpec],
    ) -> None:
        by_slug = {p.slug: p for p in snapshot.plugins}
        global_plugins = sorted(
            (p for p in snapshot.plugins if p.global_order is not None), key=lambda p: (p.global_order, p.slug)
        )
        compiled.global_chain = _chain(
            [(p.slug, p) for p in global_plugins], handles, self.observer, self.chain_factory
        )
        for llm in compiled.llms_by_id.values():
            entries = [(p.slug, p) for p in global_plugins]
            for binding in sorted(llm.config.plugin_chain, key=lambda b: (b.order, b.plugin_slug)):
                plugin = by_slug.get(binding.plugin_slug)
                if plugin is None:
                    log.error("LLM %s names unknown plugin %s in its chain", llm.slug, binding.plugin_slug)
                    continue
                if plugin.global_order is not None:
                    continue  # already runs for every request
                key = f"{plugin.slug}@{llm.slug}"
                entries.append((key if key in wanted else plugin.slug, plugin))
            llm.chain = _chain(entries, handles, self.observer, self.chain_factory)


UNUSABLE = "unusable definition"
"""Why a plugin of the snapshot was not even tried: `_spec` refused its definition (the log says what)."""


def load_failure(exc: FjordgateSDKError | PluginCallError) -> str:
    """Why a plugin did not load, as a fixed phrase for the control plane (the heartbeat): never the error's
    message, which may quote the plugin's config (`ip-filter: bad network ...`); the edge's log has it."""
    if isinstance(exc, PluginCallError):
        return f"{exc.method} raised" if exc.kind == "exception" else f"{exc.method} {exc.kind}"
    if isinstance(exc, PluginConfigError):
        return "config refused by its schema"
    if isinstance(exc, PluginLoadError):
        # an isolated plugin's initialize that raised: the host's own prefix (`isolated/supervisor.py`), not the plugin's
        return "initialize raised" if exc.message.startswith("initialize failed: ") else "code not loadable"
    return type(exc).__name__


def desired_specs(snapshot: ConfigSnapshot) -> dict[str, PluginSpec]:
    """Every plugin of the snapshot, plus `slug@llm` for an active LLM's binding with a config of its own."""
    by_slug = {p.slug: p for p in snapshot.plugins}
    wanted: dict[str, PluginSpec] = {}
    for plugin in snapshot.plugins:
        spec = _spec(plugin, plugin.config, plugin.slug)
        if spec is not None:
            wanted[plugin.slug] = spec
    for llm in snapshot.llms:
        if not llm.active:
            continue
        for binding in llm.plugin_chain:
            bound = by_slug.get(binding.plugin_slug)
            if bound is None or not binding.config or binding.config == bound.config:
                continue
            key = f"{bound.slug}@{llm.slug}"
            spec = _spec(bound, binding.config, key)
            if spec is not None:
                wanted[key] = spec
    return wanted


async def _ask_endpoints(handles: dict[str, PluginHandle], compiled: CompiledConfig) -> None:
    """Custom endpoint registrations, asked once per config (not of `slug@llm` instances)."""
    for key, handle in handles.items():
        if "custom_endpoints" in handle.capabilities and "@" not in key:
            try:
                compiled.endpoints[key] = list(await handle.call("get_endpoint_registrations", None))
            except PluginCallError as exc:
                log.error("plugin %s: endpoint registrations unavailable: %s", key, exc)


def _spec(plugin: PluginConfig, config: dict[str, Any], key: str) -> PluginSpec | None:
    if sum(map(bool, (plugin.entry_point, plugin.import_path, plugin.command))) != 1:
        log.error("plugin %s must name exactly one of entry_point, import_path and command", plugin.slug)
        return None
    try:
        return PluginSpec(
            slug=key,
            import_path=ENTRY_POINT_PREFIX + plugin.entry_point if plugin.entry_point else plugin.import_path,
            command=list(plugin.command) if plugin.command else None,
            isolated=plugin.isolated,
            config=json.loads(json.dumps(config)),
            failure_policy=plugin.failure_policy,
            timeout_s=max(plugin.timeout_ms, 1) / 1000.0,
            extra_scopes=tuple(plugin.extra_scopes),
        )
    except ValueError as exc:
        log.error("plugin %s has an unusable definition: %s", plugin.slug, exc)
        return None


def _chain(
    entries: list[tuple[str, PluginConfig]],
    handles: dict[str, PluginHandle],
    observer: Observer,
    chain_factory: ChainFactory,
) -> PluginChain:
    out: list[PluginHandle] = []
    broken: str | None = None
    for key, plugin in entries:
        handle = handles.get(key)
        if handle is None:
            if plugin.failure_policy == "closed" and broken is None:
                broken = plugin.slug
            continue
        out.append(handle)
    return PluginChain(chain_factory(out, observer) if out else None, broken)
