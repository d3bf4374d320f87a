"""`ConfigStore`: the edge's compiled configuration, swapped atomically when a new snapshot arrives.

Everything a request needs is computed once per config, never per request (`compile_snapshot.py`: credentials,
regexes, the model -> deployments index, decrypted vendor keys, prices; `plugin_loading.py`: the plugin
chains; the types are in `compiled.py`, routing in `routing.py`). `current` is a plain attribute read; a request
keeps the `CompiledConfig` it started with, so an `apply` in the middle of a request never mixes two configs.
That includes its plugins: an instance a new config replaced (its definition changed) or dropped is stopped only
once no request that started under an older config is still running (each config counts its `in_flight`), or
after RETIRE_AFTER_S, so a stream in flight does not find its plugin stopped at its next chunk; at most RETIRED_MAX
replaced instances wait (the oldest is stopped past it).
Deployment health (`deployments.HealthBook`) lives here, outside any one config, so breakers survive applies.

Interface for the sync client (`edge_gateway.sync`), which receives snapshots over NATS:

    await store.apply(snapshot)          # validate, compile, load/reload/unload plugins, swap; raises
                                         # ConfigRejected (config kept as it was) when the snapshot is unusable
    await store.apply(snapshot, restart_isolated=True)   # the same for a reload request: isolated plugins are
                                         # restarted even when unchanged (their new program runs)
    store.current                        # CompiledConfig | None (None until the first apply)
    store.current.version / .checksum    # what is loaded (for heartbeats)
    store.update_budget_spend(budget_id, spent, period_start)   # the control plane's spend figures
    store.add_listener(callback)         # callback(CompiledConfig) after each successful apply

Each applied snapshot is also written to `EDGE_STATE_DIR/snapshot.json`, and `load_persisted()` reads it
back, so an edge that restarts while the control plane is unreachable serves its last known config.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
from cryptography.fernet import Fernet, MultiFernet

from shared_sdk.host import RETIRE_AFTER_S, RETIRED_MAX, PluginHandle, PluginHost
from shared_sdk.pipeline import HookTiming
from shared_sdk.result_fields import set_body_limit
from shared_sdk.snapshot import ConfigSnapshot, decode_snapshot, encode_snapshot, snapshot_checksum

from .budgets import BudgetTracker
from .compile_snapshot import ConfigRejected, compile_snapshot
from .compiled import CompiledApp, CompiledConfig, CompiledLLM, PluginChain, literal_text
from .deployments import DEFAULT_COOLDOWN_S, DEFAULT_FAILURES, HealthBook
from .plugin_loading import ChainFactory, PluginLoader, plain_chain

__all__ = [
    "CompiledApp",
    "CompiledConfig",
    "CompiledLLM",
    "ConfigRejected",
    "ConfigStore",
    "PluginChain",
    "literal_text",
]

log = logging.getLogger("fjordgate.edge.config")

RETIRE_POLL_S = 0.1


class ConfigStore:
    """Holds the current `CompiledConfig`; see the module docstring for the sync client's interface."""

    def __init__(
        self,
        *,
        host: PluginHost,
        namespace: str | None = None,
        edge_secret: str | None = None,
        state_dir: str | None = None,
        budgets: BudgetTracker | None = None,
        hook_observer: Callable[[HookTiming], None] | None = None,
        chain_factory: ChainFactory = plain_chain,
        breaker_failures: int = DEFAULT_FAILURES,
        breaker_cooldown_s: float = DEFAULT_COOLDOWN_S,
        max_body_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.max_body_bytes = max_body_bytes
        """The largest client body this edge reads (`EDGE_MAX_BODY_BYTES`): with the LLMs' `max_response_bytes`,
        what bounds the body a plugin's hook may return (`_bound_plugin_bodies`)."""
        self.namespace = namespace
        self.state_dir = state_dir
        self.budgets = budgets or BudgetTracker()
        self.current: CompiledConfig | None = None
        self._fernet = MultiFernet([Fernet(k.strip()) for k in edge_secret.split(",")]) if edge_secret else None
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[CompiledConfig], Any]] = []
        self.hook_observer = hook_observer
        self._replaced: list[PluginHandle] = []
        """What the apply under way replaced or dropped (the loader hands them over instead of stopping them)."""
        self.plugins = PluginLoader(host, hook_observer, chain_factory, retire=self._replaced.append)
        self.health = HealthBook(breaker_failures, breaker_cooldown_s)
        """Each LLM's circuit breaker on this edge, kept across configs (`deployments.py`)."""
        self._superseded: list[CompiledConfig] = []
        """Configs replaced by a later apply whose requests may still be running."""
        self._retired: dict[PluginHandle, None] = {}
        """Plugin instances replaced or dropped by an apply, not stopped yet (oldest first)."""
        self._retiring: set[asyncio.Task[None]] = set()

    def add_listener(self, callback: Callable[[CompiledConfig], Any]) -> None:
        self._listeners.append(callback)

    def update_budget_spend(self, budget_id: int, spent: Decimal, period_start: float) -> None:
        self.budgets.update_spend(budget_id, spent, period_start)

    # -- snapshot sources ------------------------------------------------------------------------------

    async def apply_file(self, path: str) -> CompiledConfig:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ConfigRejected(f"cannot read {path}: {exc.strerror}") from None
        return await self.apply(self._decode(data, path))

    async def load_persisted(self) -> CompiledConfig | None:
        """Apply the last snapshot this edge stored, if any (start-up without the control plane)."""
        path = self._persist_path()
        if path is None or not os.path.isfile(path):
            return None
        return await self.apply_file(path)

    @staticmethod
    def _decode(data: bytes, source: str) -> ConfigSnapshot:
        try:
            return decode_snapshot(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ConfigRejected(f"{source} is not a valid config snapshot: {exc}") from None

    def _persist_path(self) -> str | None:
        return os.path.join(self.state_dir, "snapshot.json") if self.state_dir else None

    # -- apply -------------------------------------------------------------------------------------------

    def _bound_plugin_bodies(self, snapshot: ConfigSnapshot) -> None:
        """A hook's body may be as large as the largest body this edge holds from anyone else (a client's request, an
        LLM's reply), no larger: an in-process plugin returning 2 GB failed nowhere before, the edge held and sent it.
        Over it, the call fails under the plugin's failure policy (`shared_sdk.result_fields.set_body_limit`)."""
        set_body_limit(max([self.max_body_bytes, *(llm.max_response_bytes for llm in snapshot.llms)]))

    async def apply(self, snapshot: ConfigSnapshot, *, restart_isolated: bool = False) -> CompiledConfig:
        """Compile and swap in `snapshot`; raises `ConfigRejected` and keeps the old config on failure.

        A plugin is reloaded when its definition changed. `restart_isolated` (an operator's reload request) also
        restarts every isolated plugin, so a new version of its program is picked up; in-process plugins keep the
        code this process imported (new code needs an edge restart, see docs/plugins/host.md).
        """
        if self.namespace and snapshot.namespace != self.namespace:
            raise ConfigRejected(
                f"snapshot is for namespace {snapshot.namespace!r}, this edge serves {self.namespace!r}"
            )
        if snapshot.checksum and snapshot.checksum != snapshot_checksum(snapshot):
            raise ConfigRejected("snapshot checksum does not match its content (corrupted or tampered)")
        async with self._lock:
            compiled: CompiledConfig | None = None
            try:
                compiled = compile_snapshot(snapshot, self._fernet, self.health)
                self._bound_plugin_bodies(snapshot)
                stale = await self.plugins.load(snapshot, compiled, restart_isolated)
                self.budgets.load(list(snapshot.budgets))
                previous, self.current = self.current, compiled
                if previous is not None:
                    self._superseded = [c for c in self._superseded if c.in_flight]
                    self._superseded.append(previous)
                for key in stale:
                    await self.plugins.unload(key)
            finally:
                if self._replaced:  # also when the apply failed after a reload: the config still in force used them
                    in_use = list(self._superseded)
                    if self.current is not None and self.current is not compiled:
                        in_use.append(self.current)
                    await self._retire(self._replaced[:], in_use)
                    self._replaced.clear()
        await self._persist(snapshot)
        log.info(
            "config applied: namespace=%r version=%s llms=%d apps=%d plugins=%d",
            snapshot.namespace,
            snapshot.version,
            len(compiled.llms_by_id),
            len(compiled.apps),
            len(compiled.plugins),
        )
        for callback in self._listeners:
            callback(compiled)
        return compiled

    async def _retire(self, handles: list[PluginHandle], configs: list[CompiledConfig]) -> None:
        """Stop `handles` once no request of `configs` (every config before the one that replaced them) runs; the
        oldest replaced instances at once when more than RETIRED_MAX wait."""
        self._retired.update(dict.fromkeys(handles))
        task = asyncio.get_running_loop().create_task(self._stop_when_unused(handles, configs), name="plugin-retire")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        while len(self._retired) > RETIRED_MAX:
            oldest = next(iter(self._retired))
            del self._retired[oldest]
            log.warning(
                "plugin %s: more than %d replaced instances wait for requests; stopped the oldest",
                oldest.slug,
                RETIRED_MAX,
            )
            await self.host.stop_retired(oldest)

    async def _stop_when_unused(self, handles: list[PluginHandle], configs: list[CompiledConfig]) -> None:
        deadline = time.monotonic() + RETIRE_AFTER_S
        while any(c.in_flight for c in configs):
            if time.monotonic() >= deadline:
                log.warning(
                    "%d replaced plugin instance(s) stopped after %.0f s with requests of an older config running",
                    len(handles),
                    RETIRE_AFTER_S,
                )
                break
            await asyncio.sleep(RETIRE_POLL_S)
        for handle in handles:
            if handle in self._retired:  # not stopped by `aclose` meanwhile
                del self._retired[handle]
                await self.host.stop_retired(handle)

    async def aclose(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        for handle in list(self._retired):
            await self.host.stop_retired(handle)
        self._retired.clear()
        await self.host.aclose()

    async def _persist(self, snapshot: ConfigSnapshot) -> None:
        path = self._persist_path()
        if path is None:
            return
        data = encode_snapshot(snapshot)

        def write() -> None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            log.warning("could not persist the snapshot to %s: %s", path, exc)
