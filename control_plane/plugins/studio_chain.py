"""Which plugins a studio LLM call runs, and their loaded chain, built once per change of that plugin set.

An edge runs, for each request to an LLM, the global plugins of its namespace (by `global_order`, then slug) and
then the LLM's own chain (its active bindings by order, then slug; a global plugin is not repeated), each binding
whose config override changes the plugin's config as an instance of its own (`slug@llm`). The studio's own calls
to that LLM (`StudioServicesImpl.call_llm` / `stream_llm`: plugins, agents, the portal's chat) run the same chain,
selected here the same way (`edge_gateway.plugin_loading` is the edge's version; the two tiers share no code but
the SDK). The studio has no edge namespace: an LLM's namespace decides which global plugins apply ("" and its
own), so a plugin of another namespace, bound to another namespace's LLM or global there, never runs.

Only plugins with request or response hooks (`pre_auth`, `post_auth`, `response`) are loaded for a studio call:
authentication and data collection are edge matters (a studio caller is already known; studio calls are
accounted by `studio_llm`).

Loading happens in the studio host (`runtime`, which installs the loader at start-up through
`studio_chain_install`: the runtime sits above the studio services, so they cannot import it). Per call, one read
of the plugin rows tells whether the set changed (a plugin, binding or override edited, added or removed); only
then are plugins (re)loaded and a new `HookChain` built. A fail-closed plugin that cannot be loaded makes the
chain `broken` (the call is refused, as an edge refuses with 503); such a chain is retried on the next call.

A call holds its chain's plugin instances from its request hooks to its last chunk (`studio_chain_take`, then
`studio_chain_release`): a plugin reloaded meanwhile (edited) keeps its replaced instance running for that call, and
the runtime stops it once the last call holding it is over (as an edge keeps a replaced config's plugins).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from shared_sdk import PluginCallError
from shared_sdk.host import PluginHandle
from shared_sdk.pipeline import HookChain

from .merge import deep_merge

__all__ = [
    "HOOK_CAPABILITIES",
    "ChainEntry",
    "ChainLoader",
    "StudioChain",
    "studio_chain_get",
    "studio_chain_install",
    "studio_chain_plan",
    "studio_chain_release",
    "studio_chain_take",
]

logger = logging.getLogger(__name__)

HOOK_CAPABILITIES = frozenset({"pre_auth", "post_auth", "response"})
"""What a studio call runs of a plugin; a plugin with none of them is left out of its chain."""


@dataclasses.dataclass(frozen=True, slots=True)
class ChainEntry:
    """One plugin of a chain: `key` is its instance in the host (`slug`, or `slug@llm` for an override)."""

    key: str
    slug: str
    config: dict[str, Any]
    version: str
    """Changes whenever the instance must be reloaded: the plugin row's `updated_at` and the config's hash."""
    fail_closed: bool


@dataclasses.dataclass(slots=True)
class StudioChain:
    """An LLM's loaded chain; `hooks` is None when no plugin of it is loaded."""

    hooks: HookChain | None
    broken: str | None = None
    """A fail-closed plugin of the chain that could not be loaded: calls are refused."""
    signature: tuple[tuple[str, str], ...] = ()
    loop: asyncio.AbstractEventLoop | None = None
    """The studio host's loop: the chain's hooks run there, whichever loop the call comes from."""


class ChainLoader(Protocol):
    """The studio host's side: loads plugin instances and says which one is current (`runtime` implements it)."""

    def load(self, entry: ChainEntry) -> PluginHandle:
        """The loaded instance of `entry`, (re)loaded when its version changed; raises `PluginCallError`."""
        ...

    def current(self, key: str) -> PluginHandle | None: ...

    def unload(self, key: str) -> None: ...

    def take(self, handles: Iterable[PluginHandle]) -> bool:
        """Count the caller as a user of each of `handles` (all or none); False when one was replaced already."""
        ...

    def release(self, handles: Iterable[PluginHandle]) -> None: ...

    def loop(self) -> asyncio.AbstractEventLoop: ...


_loader: ChainLoader | None = None
_lock = threading.Lock()
_chains: dict[int, StudioChain] = {}


def studio_chain_install(loader: ChainLoader) -> None:
    """Hand this module the studio host's loader (`PluginsConfig.ready` does, at start-up)."""
    global _loader
    _loader = loader
    _chains.clear()


def _hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _runs_hooks(capabilities: list[str]) -> bool:
    return not capabilities or not HOOK_CAPABILITIES.isdisjoint(capabilities)


def _entry(plugin: Any, key: str, config: dict[str, Any]) -> ChainEntry:
    stamp = plugin.updated_at.isoformat() if plugin.updated_at else ""
    return ChainEntry(
        key=key,
        slug=plugin.slug,
        config=config,
        version=f"{stamp}/{_hash(config)}",
        fail_closed=plugin.failure_policy == "closed",
    )


def studio_chain_plan(llm_id: int) -> list[ChainEntry]:
    """The plugins a call to `llm_id` runs, in request-hook order (global ones first): an edge's selection."""
    from django.db.models import Q

    from control_plane.llms.models import LLM, LLMPluginBinding

    from .models import Plugin

    llm = LLM.objects.filter(pk=llm_id).only("slug", "namespace").first()
    if llm is None:
        return []
    global_plugins = sorted(
        Plugin.objects.filter(Q(namespace__in=("", llm.namespace)), active=True, global_order__isnull=False),
        key=lambda p: (p.global_order, p.slug),
    )
    entries = [_entry(p, p.slug, dict(p.config)) for p in global_plugins if _runs_hooks(p.capabilities)]
    global_slugs = {p.slug for p in global_plugins}
    bindings = sorted(
        LLMPluginBinding.objects.filter(llm_id=llm_id, is_active=True, plugin__active=True).select_related("plugin"),
        key=lambda b: (b.order_index, b.plugin.slug),
    )
    for binding in bindings:
        plugin = binding.plugin
        if plugin.slug in global_slugs or not _runs_hooks(plugin.capabilities):
            continue  # a global plugin already runs for every call
        config = deep_merge(plugin.config, binding.config_override)
        own = bool(binding.config_override) and config != plugin.config
        entries.append(_entry(plugin, f"{plugin.slug}@{llm.slug}" if own else plugin.slug, config))
    return entries


def studio_chain_get(llm_id: int) -> StudioChain:
    """The loaded chain of `llm_id`: the cached one while its plugins are unchanged, else rebuilt. Blocking (it
    reads the database and may load plugins): call it from a worker thread."""
    plan = studio_chain_plan(llm_id)
    signature = tuple((e.key, e.version) for e in plan)
    if _loader is None or not plan:
        return StudioChain(None, signature=signature)
    with _lock:
        cached = _chains.get(llm_id)
        if cached is not None and _still_valid(cached, signature, _loader):
            return cached
        chain = _build(plan, signature, _loader)
        if cached is not None and cached.hooks is not None:
            _unload_dropped(cached, chain, _loader)
        _chains[llm_id] = chain
        return chain


def studio_chain_take(llm_id: int) -> StudioChain:
    """`studio_chain_get`, the caller counted as a user of the chain's plugin instances until it hands the chain to
    `studio_chain_release`: one replaced meanwhile is stopped only then. Built again when a reload on another thread
    replaced one of them between the build and the count. Blocking: call it from a worker thread."""
    while True:
        chain = studio_chain_get(llm_id)
        if _loader is None or chain.hooks is None or _loader.take(chain.hooks.handles):
            return chain


def studio_chain_release(chain: StudioChain) -> None:
    """The call that took `chain` (`studio_chain_take`) is over."""
    if _loader is not None and chain.hooks is not None:
        _loader.release(chain.hooks.handles)


def _still_valid(chain: StudioChain, signature: tuple[tuple[str, str], ...], loader: ChainLoader) -> bool:
    """Same plugins, same versions, and every handle still the host's (a reload elsewhere replaces it)."""
    if chain.signature != signature or chain.broken is not None:
        return False
    handles = chain.hooks.handles if chain.hooks is not None else ()
    return all(loader.current(h.slug) is h for h in handles)


def _build(plan: list[ChainEntry], signature: tuple[tuple[str, str], ...], loader: ChainLoader) -> StudioChain:
    handles: list[PluginHandle] = []
    broken: str | None = None
    for entry in plan:
        try:
            handles.append(loader.load(entry))
        except PluginCallError as exc:
            logger.error("plugin %s of a studio LLM chain not loaded: %s", entry.key, exc)
            if entry.fail_closed and broken is None:
                broken = entry.slug
    hooks = HookChain(handles) if handles else None
    return StudioChain(hooks, broken, signature, loader.loop())


def _unload_dropped(old: StudioChain, new: StudioChain, loader: ChainLoader) -> None:
    """`slug@llm` instances belong to one LLM's chain: unloaded once it no longer names them."""
    kept = {h.slug for h in new.hooks.handles} if new.hooks is not None else set()
    assert old.hooks is not None
    for handle in old.hooks.handles:
        if "@" in handle.slug and handle.slug not in kept:
            loader.unload(handle.slug)
