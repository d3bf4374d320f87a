"""The compiled config: what one snapshot becomes at the edge, built once per config (`compile_snapshot.py`).

A request reads only these objects: apps, credentials by key hash, LLMs by id and slug, the model -> deployments
index (`routing.py` picks from it), prices, plugin chains. Nothing here does I/O or compiles a regex per request.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from shared_sdk import LLM, App, User
from shared_sdk.host import PluginHandle
from shared_sdk.pipeline import HookChain
from shared_sdk.snapshot import AppConfig, ConfigSnapshot, CredentialConfig, LLMConfig, ModelPriceConfig, UserConfig

from .deployments import DeploymentGroup, DeploymentHealth
from .providers import Provider, UpstreamSpec

__all__ = ["CompiledApp", "CompiledConfig", "CompiledLLM", "IPNetwork", "PluginChain", "literal_text"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    granted_groups: frozenset[int] = frozenset()
    """Groups whose catalogue offers the LLM; empty: no group grant needed (see `CompiledConfig.user_may_use`)."""
    health: DeploymentHealth = field(default_factory=DeploymentHealth)
    """This LLM's circuit breaker and in-flight count on this edge (kept across configs by `HealthBook`)."""
    served: frozenset[str] = frozenset()
    """With an empty allow-list, the only models the LLM answers: its default model and the models the price
    list has for its vendor (an empty allow-list used to answer any model name, even one nobody priced)."""

    @property
    def id(self) -> int:
        return self.config.id

    @property
    def slug(self) -> str:
        return self.config.slug

    def allows(self, model: str) -> bool:
        if not self.allowed:
            return model in self.served
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
    exact_models: dict[str, DeploymentGroup]
    """Model name -> the deployments naming it as default model or as a literal allowed model (id order)."""
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
    plugins_not_loaded: list[str] = field(default_factory=list)
    """Plugins of the snapshot (and `slug@llm` instances) this edge could not load (an `initialize` that raised, code
    not installed or not allowed, a bad definition), listed by `/ready` so an operator sees them without reading the
    log (which says why: `plugin X not loaded: ...`). Only the keys: `/ready` is unauthenticated, and a plugin's error
    may quote its config."""
    plugin_load_errors: dict[str, str] = field(default_factory=dict)
    """The same keys -> why, as a fixed phrase (`initialize raised`, `config refused`, `not loadable`, `unusable
    definition`), never the error's message: carried in the heartbeat to the control plane's edge registry."""
    pattern_groups: dict[tuple[int, ...], DeploymentGroup] = field(default_factory=dict)
    """Deployment groups of pattern-matched models, by the matching LLMs' ids (filled as requests find them,
    bounded by `routing.MAX_PATTERN_GROUPS`), so their round-robin state lasts across requests."""
    inactive_users: frozenset[int] = frozenset()
    """Deactivated users: their keys and their apps' keys are refused (401)."""
    user_groups: dict[int, frozenset[int]] = field(default_factory=dict)
    """Non-admin users' groups, for the group grants of catalogued LLMs (admins are not listed: not restricted)."""
    in_flight: int = 0
    """Requests (and collector batches, plugin endpoint calls) using this config now, each inside `with cfg:`: the
    plugin instances a later config replaced are stopped once every older config's count is back to 0
    (`ConfigStore`)."""

    def __enter__(self) -> CompiledConfig:
        self.in_flight += 1
        return self

    def __exit__(self, *_: object) -> None:
        self.in_flight -= 1

    def user_may_use(self, llm: CompiledLLM, app: CompiledApp, user_id: int | None) -> bool:
        """Whether the caller's groups grant `llm`: the key's user, else the app's owner, must be in one of the
        LLM's granting groups when it has any. Admins, users the snapshot does not know and app-only callers
        pass (the app-LLM link is checked separately)."""
        if not llm.granted_groups:
            return True
        uid = user_id if user_id is not None else app.config.owner_id
        groups = self.user_groups.get(uid) if uid is not None else None
        return groups is None or not groups.isdisjoint(llm.granted_groups)

    @property
    def version(self) -> int:
        return self.snapshot.version

    @property
    def checksum(self) -> str:
        return self.snapshot.checksum

    def price(self, vendor: str, model: str) -> ModelPriceConfig | None:
        return self.prices.get((vendor, model)) or self.prices_by_model.get(model)

    def route(self, model: str, app: CompiledApp | None) -> tuple[CompiledLLM, str]:
        """The LLM and upstream model for `model` as `app` may use it (`routing.resolve` says how)."""
        from .routing import resolve  # routing reads these types; imported here to keep the modules acyclic

        llm, target, _ = resolve(self, model, app)
        return llm, target

    def models_for(self, app: CompiledApp) -> list[tuple[str, CompiledLLM]]:
        """What `/v1/models` lists for an app: each linked LLM's default and literal allowed models."""
        seen: set[str] = set()
        out: list[tuple[str, CompiledLLM]] = []
        for llm_id in sorted(app.llm_ids):
            llm = self.llms_by_id.get(llm_id)
            if llm is None:
                continue
            names = [
                llm.config.default_model,
                *(literal_text(p.pattern) or "" for p in llm.allowed),
                *sorted(llm.served),
            ]
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
