"""`ConfigStore`: the edge's compiled configuration, swapped atomically when a new snapshot arrives.

Everything a request needs is computed here, once per config, never per request: the credential hash map,
compiled model regexes, the model -> LLM routing index, decrypted vendor keys (`UpstreamSpec`), prices,
budgets, and the loaded plugin chains. `current` is a plain attribute read; a request keeps the
`CompiledConfig` it started with, so an `apply` in the middle of a request never mixes two configs.

Interface for the sync client (`edge_gateway.sync`), which receives snapshots over NATS:

    await store.apply(snapshot)          # validate, compile, load/reload/unload plugins, swap; raises
                                         # ConfigRejected (config kept as it was) when the snapshot is unusable
    store.current                        # CompiledConfig | None (None until the first apply)
    store.current.version / .checksum    # what is loaded (for heartbeats)
    store.update_budget_spend(budget_id, spent, period_start)   # the control plane's spend figures
    store.add_listener(callback)         # callback(CompiledConfig) after each successful apply

Each applied snapshot is also written to `EDGE_STATE_DIR/snapshot.json`, and `load_persisted()` reads it
back, so an edge that restarts while the control plane is unreachable serves its last known config.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared_sdk import LLM, App, PluginCallError, User
from shared_sdk.errors import FjordgateSDKError
from shared_sdk.host import PluginHandle, PluginHost, PluginSpec
from shared_sdk.pipeline import HookChain, HookTiming
from shared_sdk.snapshot import (
    AppConfig,
    ConfigSnapshot,
    CredentialConfig,
    LLMConfig,
    ModelPriceConfig,
    PluginConfig,
    UserConfig,
    decode_snapshot,
    encode_snapshot,
    snapshot_checksum,
)

from .budgets import BudgetTracker
from .errors import GatewayError
from .providers import Provider, UpstreamSpec, provider_for

__all__ = ["CompiledApp", "CompiledConfig", "CompiledLLM", "ConfigRejected", "ConfigStore", "PluginChain"]

log = logging.getLogger("fjordgate.edge.config")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigRejected(ValueError):
    """The snapshot cannot be used; the message says why. The previous config stays in force."""


@dataclass(frozen=True, slots=True)
class PluginChain:
    """Plugins in the order their request hooks run (global plugins first, then the LLM's chain).

    `broken` names a fail-closed plugin of the chain that could not be loaded: such a chain refuses requests
    (503) rather than silently skipping a plugin an admin declared mandatory.
    """

    hooks: HookChain | None = None
    """`None` when the chain is empty: the request path then skips every hook phase outright."""
    broken: str | None = None


@dataclass(slots=True)
class CompiledApp:
    config: AppConfig
    message: App
    llm_ids: frozenset[int]
    networks: tuple[IPNetwork, ...]

    @property
    def id(self) -> int:
        return self.config.id

    def ip_allowed(self, address: str) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


@dataclass(slots=True)
class CompiledLLM:
    config: LLMConfig
    message: LLM
    spec: UpstreamSpec
    provider: Provider | None
    allowed: tuple[re.Pattern[str], ...]
    chain: PluginChain = field(default_factory=PluginChain)
    unavailable: str | None = None
    """Why this edge cannot call the LLM (unknown vendor, undecryptable key); requests get a 502 saying so."""

    @property
    def id(self) -> int:
        return self.config.id

    @property
    def slug(self) -> str:
        return self.config.slug

    def allows(self, model: str) -> bool:
        if not self.allowed:
            return True
        return any(p.fullmatch(model) for p in self.allowed)


@dataclass(slots=True)
class CompiledConfig:
    snapshot: ConfigSnapshot
    apps: dict[int, CompiledApp]
    credentials: dict[str, CredentialConfig]
    users: dict[int, UserConfig]
    user_messages: dict[int, User]
    llms_by_id: dict[int, CompiledLLM]
    llms_by_slug: dict[str, CompiledLLM]
    exact_models: dict[str, list[CompiledLLM]]
    """Model name -> LLMs naming it as default model or as a literal allowed model (id order)."""
    pattern_llms: list[CompiledLLM]
    """LLMs whose allow-list has real regexes, tried in id order after the exact index."""
    prices: dict[tuple[str, str], ModelPriceConfig]
    prices_by_model: dict[str, ModelPriceConfig]
    global_chain: PluginChain
    plugins: dict[str, PluginHandle]
    """Loaded plugins by slug (LLM-specific config overrides appear as `slug@llm_slug`)."""
    collectors: HookChain | None = None
    """Every loaded plugin implementing a data-collection method (they see all records of the namespace)."""
    endpoints: dict[str, list[Any]] = field(default_factory=dict)
    """Plugin slug -> its custom endpoint registrations (asked once per config)."""

    @property
    def version(self) -> int:
        return self.snapshot.version

    @property
    def checksum(self) -> str:
        return self.snapshot.checksum

    def price(self, vendor: str, model: str) -> ModelPriceConfig | None:
        return self.prices.get((vendor, model)) or self.prices_by_model.get(model)

    def route(self, model: str, app: CompiledApp | None) -> tuple[CompiledLLM, str]:
        """Pick the LLM and upstream model for `model` as `app` may use it.

        Forms: `llm-slug/model` (that LLM, that model), `llm-slug` (its default model), or a bare model name
        (the first LLM, in id order, that lists it or whose allow-list matches it). Among LLMs serving the
        model, those linked to the app win; if only unlinked ones serve it the answer is 403, if none 404.
        """
        if not model:
            raise GatewayError.bad_request("'model' is required", param="model", code="missing_model")
        slug, sep, rest = model.partition("/")
        explicit = self.llms_by_slug.get(slug) if sep else None
        if explicit is not None:
            target = rest or explicit.config.default_model
            return self._check(explicit, target, app), target
        by_slug = self.llms_by_slug.get(model)
        if by_slug is not None and by_slug.config.default_model:
            return self._check(by_slug, by_slug.config.default_model, app), by_slug.config.default_model
        exact = self.exact_models.get(model, ())
        if app is not None:
            for llm in exact:
                if llm.id in app.llm_ids:
                    return llm, model
        matching = [llm for llm in self.pattern_llms if llm.allows(model)]
        if app is not None:
            for llm in matching:
                if llm.id in app.llm_ids:
                    return llm, model
        if not exact and not matching:
            raise GatewayError.not_found(f"the model {model!r} does not exist or is not served here", param="model")
        if app is not None:
            raise GatewayError.forbidden(f"this app may not use the model {model!r}", code="model_not_allowed")
        return (exact or matching)[0], model

    def _check(self, llm: CompiledLLM, model: str, app: CompiledApp | None) -> CompiledLLM:
        if app is not None and llm.id not in app.llm_ids:
            raise GatewayError.forbidden(f"this app may not use the LLM {llm.slug!r}", code="llm_not_allowed")
        if not model:
            raise GatewayError.bad_request(f"LLM {llm.slug!r} has no default model; name one", param="model")
        if not llm.allows(model):
            raise GatewayError.forbidden(
                f"the model {model!r} is not allowed on LLM {llm.slug!r}", code="model_not_allowed"
            )
        return llm

    def models_for(self, app: CompiledApp) -> list[tuple[str, CompiledLLM]]:
        """What `/v1/models` lists for an app: each linked LLM's default and literal allowed models."""
        seen: set[str] = set()
        out: list[tuple[str, CompiledLLM]] = []
        for llm_id in sorted(app.llm_ids):
            llm = self.llms_by_id.get(llm_id)
            if llm is None:
                continue
            names = [llm.config.default_model, *(literal_text(p.pattern) or "" for p in llm.allowed)]
            for name in names:
                if name and name not in seen:
                    seen.add(name)
                    out.append((name, llm))
        return out


_REGEX_META = re.compile(r"[.^$*+?{}\[\]\\|()]")


def literal_text(pattern: str) -> str | None:
    """The one string a pattern matches when it has no regex meaning beyond escaped dots (`gpt-4o`, `gpt\\.5`)."""
    text = pattern.replace(r"\.", ".").replace(r"\-", "-")
    if _REGEX_META.search(text.replace(".", "")):
        return None
    return text if re.fullmatch(pattern, text) else None


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
    ) -> None:
        self.host = host
        self.namespace = namespace
        self.state_dir = state_dir
        self.budgets = budgets or BudgetTracker()
        self.current: CompiledConfig | None = None
        self._fernet = MultiFernet([Fernet(k.strip()) for k in edge_secret.split(",")]) if edge_secret else None
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[CompiledConfig], Any]] = []
        self._specs: dict[str, PluginSpec] = {}
        self.hook_observer = hook_observer

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

    async def apply(self, snapshot: ConfigSnapshot) -> CompiledConfig:
        """Compile and swap in `snapshot`; raises `ConfigRejected` and keeps the old config on failure."""
        if self.namespace and snapshot.namespace != self.namespace:
            raise ConfigRejected(
                f"snapshot is for namespace {snapshot.namespace!r}, this edge serves {self.namespace!r}"
            )
        if snapshot.checksum and snapshot.checksum != snapshot_checksum(snapshot):
            raise ConfigRejected("snapshot checksum does not match its content (corrupted or tampered)")
        async with self._lock:
            compiled = self._compile(snapshot)
            stale = await self._load_plugins(snapshot, compiled)
            self.budgets.load(list(snapshot.budgets))
            self.current = compiled
            for slug in stale:
                await self.host.unload(slug)
                self._specs.pop(slug, None)
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

    async def aclose(self) -> None:
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

    def _decrypt(self, llm: LLMConfig) -> tuple[str, str | None]:
        if not llm.api_key_encrypted:
            return "", None
        if self._fernet is None:
            return "", "FJORDGATE_EDGE_SECRET is not set, so this edge cannot decrypt the LLM's vendor key"
        try:
            return self._fernet.decrypt(llm.api_key_encrypted.encode()).decode(), None
        except (InvalidToken, ValueError):
            return "", "the LLM's vendor key does not decrypt with FJORDGATE_EDGE_SECRET"

    def _compile(self, snapshot: ConfigSnapshot) -> CompiledConfig:
        llms_by_id: dict[int, CompiledLLM] = {}
        exact: dict[str, list[CompiledLLM]] = {}
        patterns: list[CompiledLLM] = []
        for cfg in sorted(snapshot.llms, key=lambda x: x.id):
            if not cfg.active:
                continue
            try:
                allowed = tuple(re.compile(p) for p in cfg.allowed_models)
            except re.error as exc:
                raise ConfigRejected(f"LLM {cfg.slug!r}: allowed model pattern is not a valid regex: {exc}") from None
            api_key, problem = self._decrypt(cfg)
            provider = provider_for(cfg.vendor)
            if provider is None:
                problem = f"vendor {cfg.vendor!r} is not supported by this edge"
            if problem:
                log.error("LLM %s cannot be called: %s", cfg.slug, problem)
            spec = UpstreamSpec(
                cfg.id,
                cfg.slug,
                cfg.vendor,
                cfg.api_base,
                api_key,
                dict(cfg.extra_headers),
                cfg.connect_timeout_s,
                cfg.first_byte_timeout_s,
                cfg.idle_stream_timeout_s,
                dict(cfg.metadata),
                cfg.max_response_bytes,
            )
            message = LLM(
                id=cfg.id,
                slug=cfg.slug,
                name=cfg.name,
                vendor=cfg.vendor,
                api_endpoint=cfg.api_base,
                default_model=cfg.default_model,
                allowed_models=list(cfg.allowed_models),
                privacy_score=cfg.privacy_score,
                is_active=cfg.active,
                namespace=cfg.namespace,
                metadata=dict(cfg.metadata),
            )
            llm = CompiledLLM(cfg, message, spec, provider, allowed, unavailable=problem)
            llms_by_id[cfg.id] = llm
            names = {cfg.default_model} if cfg.default_model else set()
            has_regex = False
            for pattern in cfg.allowed_models:
                literal = literal_text(pattern)
                if literal is None:
                    has_regex = True
                else:
                    names.add(literal)
            if cfg.default_model and not llm.allows(cfg.default_model):
                names.discard(cfg.default_model)
            for name in names:
                exact.setdefault(name, []).append(llm)
            if has_regex or not cfg.allowed_models:
                patterns.append(llm)
        # An LLM with an empty allow-list serves any model name, but only after every exact match.
        patterns.sort(key=lambda x: (not x.allowed, x.id))
        apps: dict[int, CompiledApp] = {}
        for app in snapshot.apps:
            if not (app.active and app.approved):
                continue
            try:
                networks = tuple(ipaddress.ip_network(n, strict=False) for n in app.allowed_ips)
            except ValueError as exc:
                raise ConfigRejected(f"app {app.id}: allowed_ips: {exc}") from None
            message = App(
                id=app.id,
                name=app.name,
                owner_id=app.owner_id,
                namespace=app.namespace,
                is_active=app.active,
                llm_ids=list(app.llm_ids),
                tool_ids=list(app.tool_ids),
                datasource_ids=list(app.datasource_ids),
                tags=list(app.tags),
                rate_limit_rpm=app.rate_limit_rpm,
                allowed_ips=list(app.allowed_ips),
                metadata=dict(app.metadata),
            )
            apps[app.id] = CompiledApp(app, message, frozenset(app.llm_ids), networks)
        credentials = {c.key_hash: c for c in snapshot.credentials if c.active and c.app_id in apps}
        users = {u.id: u for u in snapshot.users}
        user_messages = {
            u.id: User(
                id=u.id,
                email=u.email,
                name=u.name,
                is_admin=u.is_admin,
                groups=[str(g) for g in u.group_ids],
                metadata=dict(u.metadata),
            )
            for u in snapshot.users
        }
        prices = {(p.vendor, p.model): p for p in snapshot.prices}
        by_model: dict[str, ModelPriceConfig] = {}
        for p in snapshot.prices:
            by_model.setdefault(p.model, p)
        return CompiledConfig(
            snapshot=snapshot,
            apps=apps,
            credentials=credentials,
            users=users,
            user_messages=user_messages,
            llms_by_id=llms_by_id,
            llms_by_slug={x.slug: x for x in llms_by_id.values()},
            exact_models=exact,
            pattern_llms=patterns,
            prices=prices,
            prices_by_model=by_model,
            global_chain=PluginChain(),
            plugins={},
        )

    # -- plugins -----------------------------------------------------------------------------------------

    def _desired_specs(self, snapshot: ConfigSnapshot) -> dict[str, PluginSpec]:
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
                plugin = by_slug.get(binding.plugin_slug)
                if plugin is None or not binding.config or binding.config == plugin.config:
                    continue
                key = f"{plugin.slug}@{llm.slug}"
                spec = _spec(plugin, binding.config, key)
                if spec is not None:
                    wanted[key] = spec
        return wanted

    async def _load_plugins(self, snapshot: ConfigSnapshot, compiled: CompiledConfig) -> list[str]:
        """Load new plugins, reload changed ones; returns slugs to unload once the new config is in force."""
        wanted = self._desired_specs(snapshot)
        failed: set[str] = set()
        for key, spec in wanted.items():
            old = self._specs.get(key)
            if old == spec and key in self.host:
                continue
            try:
                if key in self.host:
                    await self.host.reload(spec)
                else:
                    await self.host.load(spec)
                self._specs[key] = spec
            except (FjordgateSDKError, PluginCallError) as exc:
                failed.add(key)
                log.error("plugin %s not loaded: %s", key, exc)
        handles = {key: h for key, h in self.host.handles.items() if key in wanted and key not in failed}
        compiled.plugins = handles
        collectors = [h for h in handles.values() if "data_collection" in h.capabilities]
        compiled.collectors = HookChain(collectors, observer=self.hook_observer) if collectors else None
        for key, handle in handles.items():
            if "custom_endpoints" in handle.capabilities and "@" not in key:
                try:
                    compiled.endpoints[key] = list(await handle.call("get_endpoint_registrations", None))
                except PluginCallError as exc:
                    log.error("plugin %s: endpoint registrations unavailable: %s", key, exc)
        by_slug = {p.slug: p for p in snapshot.plugins}
        global_plugins = sorted(
            (p for p in snapshot.plugins if p.global_order is not None), key=lambda p: (p.global_order, p.slug)
        )
        compiled.global_chain = _chain([(p.slug, p) for p in global_plugins], handles, self.hook_observer)
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
            llm.chain = _chain(entries, handles, self.hook_observer)
        return [key for key in self._specs if key not in wanted]


def _spec(plugin: PluginConfig, config: dict[str, Any], key: str) -> PluginSpec | None:
    try:
        return PluginSpec(
            slug=key,
            import_path=plugin.import_path,
            command=list(plugin.command) if plugin.command else None,
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
    observer: Callable[[HookTiming], None] | None,
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
    return PluginChain(HookChain(out, observer=observer) if out else None, broken)
