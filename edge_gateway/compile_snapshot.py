"""Snapshot -> `CompiledConfig`: everything a request needs, computed once per config, never per request.

Credentials by key hash, model regexes compiled, the model -> deployments index, vendor keys decrypted into
each LLM's `UpstreamSpec`, prices by (vendor, model), the SDK messages plugins see. Plugin chains are filled in
afterwards by `plugin_loading.load_plugins` (loading plugins is async and may fail per plugin).
"""

from __future__ import annotations

import ipaddress
import logging
import re

from cryptography.fernet import InvalidToken, MultiFernet

from shared_sdk import LLM, App, User
from shared_sdk.snapshot import AppConfig, ConfigSnapshot, LLMConfig, ModelPriceConfig, UserConfig

from .compiled import CompiledApp, CompiledConfig, CompiledLLM, PluginChain, literal_text
from .deployments import DeploymentGroup, HealthBook
from .providers import UpstreamSpec, provider_for

__all__ = ["ConfigRejected", "compile_snapshot"]

log = logging.getLogger("fjordgate.edge.config")


class ConfigRejected(ValueError):
    """The snapshot cannot be used; the message says why. The previous config stays in force."""


def compile_snapshot(snapshot: ConfigSnapshot, fernet: MultiFernet | None, health: HealthBook) -> CompiledConfig:
    """Compile `snapshot` (raises `ConfigRejected` for an invalid regex or network); `health` keeps each LLM's
    breaker across configs."""
    llms_by_id, exact, patterns = _compile_llms(snapshot, fernet, health)
    apps = _compile_apps(snapshot)
    users = {u.id: u for u in snapshot.users}
    by_model: dict[str, ModelPriceConfig] = {}
    for p in snapshot.prices:
        by_model.setdefault(p.model, p)
    return CompiledConfig(
        snapshot=snapshot,
        apps=apps,
        credentials={c.key_hash: c for c in snapshot.credentials if c.active and c.app_id in apps},
        users=users,
        user_messages={u.id: _user_message(u) for u in snapshot.users},
        llms_by_id=llms_by_id,
        llms_by_slug={x.slug: x for x in llms_by_id.values()},
        exact_models=exact,
        pattern_llms=patterns,
        prices={(p.vendor, p.model): p for p in snapshot.prices},
        prices_by_model=by_model,
        global_chain=PluginChain(),
        plugins={},
        inactive_users=frozenset(u.id for u in snapshot.users if not u.active),
        user_groups={u.id: frozenset(u.group_ids) for u in snapshot.users if not u.is_admin},
    )


def _user_message(user: UserConfig) -> User:
    return User(
        id=user.id,
        email=user.email,
        name=user.name,
        is_admin=user.is_admin,
        groups=[str(g) for g in user.group_ids],
        metadata=dict(user.metadata),
    )


def _compile_llms(
    snapshot: ConfigSnapshot, fernet: MultiFernet | None, health: HealthBook
) -> tuple[dict[int, CompiledLLM], dict[str, DeploymentGroup], list[CompiledLLM]]:
    """Active LLMs by id, the exact model-name index (groups in id order) and the LLMs with real regexes."""
    llms_by_id: dict[int, CompiledLLM] = {}
    exact: dict[str, list[tuple[CompiledLLM, bool]]] = {}
    patterns: list[CompiledLLM] = []
    priced: dict[str, set[str]] = {}
    for price in snapshot.prices:
        priced.setdefault(price.vendor, set()).add(price.model)
    for cfg in sorted(snapshot.llms, key=lambda x: x.id):
        if not cfg.active:
            continue
        llm = _compile_llm(cfg, fernet, priced.get(cfg.vendor, set()))
        llm.health = health.for_llm(cfg.id, cfg.breaker_cooldown_s)
        llms_by_id[cfg.id] = llm
        named, has_regex = _named_models(llm)
        for name in named | llm.served:
            exact.setdefault(name, []).append((llm, name not in named))
        if has_regex:
            patterns.append(llm)
    health.keep_only(set(llms_by_id))
    groups = {
        name: DeploymentGroup([m for m, _ in members], [implicit for _, implicit in members])
        for name, members in exact.items()
    }
    return llms_by_id, groups, patterns


def _named_models(llm: CompiledLLM) -> tuple[set[str], bool]:
    """The models an LLM names (its default model if allowed, literal allow-list entries); whether it has regexes.
    With an empty allow-list it also serves its vendor's priced models, but does not name them (`IMPLICIT_RANK`)."""
    cfg = llm.config
    named = {cfg.default_model} if cfg.default_model and llm.allows(cfg.default_model) else set()
    has_regex = False
    for pattern in cfg.allowed_models:
        literal = literal_text(pattern)
        if literal is None:
            has_regex = True
        else:
            named.add(literal)
    return named, has_regex


def _compile_llm(cfg: LLMConfig, fernet: MultiFernet | None, priced: set[str]) -> CompiledLLM:
    try:
        allowed = tuple(re.compile(p) for p in cfg.allowed_models)
    except re.error as exc:
        raise ConfigRejected(f"LLM {cfg.slug!r}: allowed model pattern is not a valid regex: {exc}") from None
    api_key, problem = _decrypt(cfg, fernet)
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
    served: frozenset[str] = frozenset()
    if not cfg.allowed_models:
        served = frozenset({cfg.default_model} if cfg.default_model else set()) | priced
    return CompiledLLM(
        cfg,
        message,
        spec,
        provider,
        allowed,
        unavailable=problem,
        granted_groups=frozenset(cfg.granted_group_ids),
        served=served,
    )


def _decrypt(llm: LLMConfig, fernet: MultiFernet | None) -> tuple[str, str | None]:
    if not llm.api_key_encrypted:
        return "", None
    if fernet is None:
        return "", "FJORDGATE_EDGE_SECRET is not set, so this edge cannot decrypt the LLM's vendor key"
    try:
        return fernet.decrypt(llm.api_key_encrypted.encode()).decode(), None
    except (InvalidToken, ValueError):
        return "", "the LLM's vendor key does not decrypt with FJORDGATE_EDGE_SECRET"


def _compile_apps(snapshot: ConfigSnapshot) -> dict[int, CompiledApp]:
    apps: dict[int, CompiledApp] = {}
    for app in snapshot.apps:
        if app.active and app.approved:
            apps[app.id] = _compile_app(app)
    return apps


def _compile_app(app: AppConfig) -> CompiledApp:
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
    return CompiledApp(app, message, frozenset(app.llm_ids), networks)
