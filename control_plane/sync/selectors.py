"""Reads for the bridge: the namespace's config snapshot and the changes still to publish."""

from __future__ import annotations

from typing import Literal, cast

import msgspec
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone

from shared_sdk.snapshot import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    AppConfig,
    BudgetAction,
    BudgetConfig,
    BudgetPeriod,
    BudgetScope,
    ConfigSnapshot,
    CredentialConfig,
    FailurePolicy,
    FallbackTarget,
    LLMConfig,
    ModelPriceConfig,
    PluginBinding,
    PluginConfig,
    UserConfig,
    snapshot_checksum,
)
from shared_sdk.vendors import preset_base_url

from .models import ConfigChange

__all__ = ["config_changes_unpublished", "config_version_current", "snapshot_build"]


def config_changes_unpublished() -> QuerySet[ConfigChange]:
    """Changes the bridge should publish now: not published, not set aside, not waiting out a backoff."""
    return ConfigChange.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now()),
        published_at__isnull=True,
        dead_lettered_at__isnull=True,
    ).order_by("version")


def config_version_current(*, namespace: str) -> tuple[int, float]:
    """The namespace's version (its own or a global change, whichever is newer) and when it was made."""
    latest = (
        ConfigChange.objects.filter(namespace__in=("", namespace))
        .order_by("-version")
        .values("version", "created_at")
        .first()
    )
    if latest is None:
        return 0, 0.0
    return latest["version"], latest["created_at"].timestamp()


def _ts(moment) -> float | None:
    return moment.timestamp() if moment is not None else None


# Capabilities an edge calls on its request path. A plugin with none of them (a scheduler, an object hook, a
# studio UI) would only be loaded at every edge for nothing, so it stays out of the snapshot; an LLM chain that
# names one explicitly still ships it, and so does a plugin whose capabilities are not known yet.
EDGE_CAPABILITIES = frozenset({"pre_auth", "auth", "post_auth", "response", "data_collection", "custom_endpoints"})


def _runs_at_edge(capabilities: list[str]) -> bool:
    return not capabilities or not EDGE_CAPABILITIES.isdisjoint(capabilities)


def snapshot_build(*, namespace: str) -> ConfigSnapshot:
    """Everything an edge of `namespace` needs: global objects plus the namespace's own.

    `generated_at` is the time of the version's change (not of this call), so building the same version twice
    gives the same checksum.
    """
    from control_plane.accounts.models import Catalogue
    from control_plane.applications.models import App, Credential
    from control_plane.budgets.models import Budget
    from control_plane.catalog.models import ModelPrice
    from control_plane.llms.models import LLM
    from control_plane.plugins.merge import deep_merge
    from control_plane.plugins.models import Plugin
    from control_plane.plugins.services import plugin_config_hash

    scope = Q(namespace__in=("", namespace))
    version, generated_at = config_version_current(namespace=namespace)

    plugins = {p.pk: p for p in Plugin.objects.filter(scope, active=True) if _runs_at_edge(p.capabilities)}
    llms = []
    grants: dict[int, list[int]] = {}
    for llm_id, group_id in Catalogue.llms.through.objects.values_list("llm_id", "catalogue__group_id"):
        grants.setdefault(llm_id, []).append(group_id)
    for llm in LLM.objects.filter(scope).prefetch_related("plugin_bindings__plugin").order_by("pk"):
        chain = [
            PluginBinding(
                plugin_slug=b.plugin.slug, order=b.order_index, config=deep_merge(b.plugin.config, b.config_override)
            )
            for b in llm.plugin_bindings.all()
            if b.is_active and b.plugin.active
        ]
        for b in llm.plugin_bindings.all():
            if b.is_active and b.plugin.active:
                plugins.setdefault(b.plugin.pk, b.plugin)
        llms.append(
            LLMConfig(
                id=llm.pk,
                slug=llm.slug,
                name=llm.name,
                vendor=llm.vendor,
                api_base=llm.api_endpoint or preset_base_url(llm.vendor, (llm.metadata or {}).get("region")),
                api_key_encrypted=llm.api_key_edge_encrypted,
                default_model=llm.default_model,
                allowed_models=list(llm.allowed_models),
                privacy_score=llm.privacy_score,
                active=llm.is_active,
                namespace=llm.namespace,
                fallbacks=[FallbackTarget(llm_slug=f["llm_slug"], model=f.get("model")) for f in llm.fallbacks],
                plugin_chain=sorted(chain, key=lambda b: b.order),
                max_retries=llm.max_retries,
                connect_timeout_s=llm.connect_timeout_s,
                first_byte_timeout_s=llm.first_byte_timeout_s,
                max_response_bytes=llm.max_response_bytes,
                weight=llm.weight,
                priority=llm.priority,
                breaker_cooldown_s=llm.breaker_cooldown_s,
                metadata=dict(llm.metadata),
                granted_group_ids=sorted(grants.get(llm.pk, ())),
            )
        )

    apps, app_ids, user_ids = [], [], set()
    for app in App.objects.filter(scope).prefetch_related("llms", "tools", "datasources", "tags").order_by("pk"):
        app_ids.append(app.pk)
        if app.owner_id:
            user_ids.add(app.owner_id)
        apps.append(
            AppConfig(
                id=app.pk,
                name=app.name,
                owner_id=app.owner_id,
                active=app.is_active,
                approved=app.approved,
                namespace=app.namespace,
                llm_ids=sorted(x.pk for x in app.llms.all()),
                tool_ids=sorted(x.pk for x in app.tools.all()),
                datasource_ids=sorted(x.pk for x in app.datasources.all()),
                tags=sorted(t.name for t in app.tags.all()),
                metadata=dict(app.metadata),
                rate_limit_rpm=app.rate_limit_rpm,
                rate_limit_tpm=app.rate_limit_tpm,
                user_rate_limit_rpm=app.user_rate_limit_rpm,
                user_rate_limit_tpm=app.user_rate_limit_tpm,
                allowed_ips=list(app.allowed_ips),
            )
        )

    credentials = []
    for cred in Credential.objects.filter(app_id__in=app_ids, revoked_at__isnull=True).order_by("pk"):
        if cred.user_id:
            user_ids.add(cred.user_id)
        credentials.append(
            CredentialConfig(
                key_hash=cred.key_hash,
                app_id=cred.app_id,
                credential_id=cred.pk,
                prefix=cred.prefix,
                user_id=cred.user_id,
                expires_at=_ts(cred.expires_at),
                active=True,
            )
        )

    budgets = []
    for budget in Budget.objects.filter(scope, is_active=True).order_by("pk"):
        if budget.user_id:
            user_ids.add(budget.user_id)
        budgets.append(
            BudgetConfig(
                id=budget.pk,
                # The model's choices are the snapshot's literals; a CHECK constraint sets the scope's target.
                scope=cast(BudgetScope, budget.scope),
                target_id=cast(int, budget.target_id),
                limit=budget.limit,
                currency=budget.currency,
                period=cast(BudgetPeriod, budget.period),
                action=cast(BudgetAction, budget.action),
                period_start=budget.period_start.timestamp(),
                period_end=budget.period_end.timestamp(),
                spent=budget.spent,
                on_unreachable=cast(Literal["fail_closed", "fail_open"], budget.on_unreachable),
            )
        )

    users = [
        UserConfig(
            id=u.pk,
            email=u.email,
            name=u.get_full_name(),
            is_admin=u.is_staff,
            active=u.is_active,
            group_ids=sorted(g.pk for g in u.groups.all()),
            metadata=dict(getattr(getattr(u, "fjordgate_profile", None), "metadata", {}) or {}),
        )
        for u in get_user_model()
        .objects.filter(pk__in=user_ids)
        .prefetch_related("groups")
        .select_related("fjordgate_profile")
        .order_by("pk")
    ]

    plugin_configs = [
        PluginConfig(
            slug=p.slug,
            name=p.name,
            version=p.version,
            entry_point=p.entry_point or None,
            import_path=p.import_path or None,
            isolated=p.isolated,
            command=list(p.command) or None,
            config=dict(p.config),
            failure_policy=cast(FailurePolicy, p.failure_policy),
            timeout_ms=p.timeout_ms,
            namespace=p.namespace,
            global_order=p.global_order,
            capabilities=list(p.capabilities),
            extra_scopes=list(p.extra_scopes or ()),
            config_hash=plugin_config_hash(p.config),
        )
        for p in sorted(plugins.values(), key=lambda p: p.slug)
    ]
    prices = [
        ModelPriceConfig(
            vendor=p.vendor,
            model=p.model,
            prompt_per_million=p.prompt_per_million,
            completion_per_million=p.completion_per_million,
            cache_read_per_million=p.cache_read_per_million,
            cache_write_per_million=p.cache_write_per_million,
            currency=p.currency,
            # 0 was accepted before the field's validator: a bound of no tokens would reserve nothing
            max_output_tokens=p.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS,
            max_input_tokens=p.max_input_tokens or msgspec.UNSET,
        )
        for p in ModelPrice.objects.order_by("vendor", "model")
    ]
    snapshot = ConfigSnapshot(
        namespace=namespace,
        version=version,
        generated_at=generated_at,
        llms=llms,
        apps=apps,
        credentials=credentials,
        users=users,
        plugins=plugin_configs,
        prices=prices,
        budgets=budgets,
    )
    return msgspec.structs.replace(snapshot, checksum=snapshot_checksum(snapshot))
