"""Writes to apps and their credentials.

Apps run the object hooks and the privacy rule on every write; credentials are generated here, shown once
(the clear key is only in the return value) and stored as `hash_credential(key)` with a display prefix.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from control_plane.budgets.currency_rule import app_llm_currency_errors
from control_plane.catalog.models import Datasource, Tag, Tool
from control_plane.hooks.services import HookOutcome, field_default, guarded_delete, guarded_write
from control_plane.llms.models import LLM
from control_plane.plugins.models import Plugin
from control_plane.sync.services import config_change_record
from shared_sdk.snapshot import hash_credential

from .models import App, Credential, PluginResource

__all__ = [
    "APP_FIELDS",
    "KEY_PREFIX",
    "KEYS_AWAIT_APPROVAL",
    "PRIVACY_RULE",
    "app_approve",
    "app_check_privacy",
    "app_create",
    "app_delete",
    "app_hook_view",
    "app_owner_namespace",
    "app_owner_resource_plugins",
    "app_takes_owner_keys",
    "app_update",
    "credential_create",
    "credential_import",
    "credential_revoke",
    "credential_rotate",
    "privacy_errors",
]

KEY_PREFIX = "fjg_"
KEYS_AWAIT_APPROVAL = "Keys can be created once an administrator has approved the app."
PREFIX_LENGTH = 12
PRIVACY_RULE = (
    "{kind} {name!r} has privacy score {score}, above the highest privacy score of the app's LLMs ({limit}); "
    "add a more private LLM to the app or remove the {kind_lower}."
)

APP_FIELDS = (
    "name",
    "description",
    "owner_id",
    "namespace",
    "is_active",
    "approved",
    "metadata",
    "rate_limit_rpm",
    "rate_limit_tpm",
    "user_rate_limit_rpm",
    "user_rate_limit_tpm",
    "allowed_ips",
)
APP_RELATIONS = ("llm_ids", "tool_ids", "datasource_ids", "tags", "plugin_resources")


# ----------------------------------------------------------------------------------------------------------------
# Privacy rule
# ----------------------------------------------------------------------------------------------------------------


def privacy_errors(
    *, llm_ids: list[int], tool_ids: list[int], datasource_ids: list[int], resources: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Every resource the app may not hold, as a sentence naming it, its score and the limit."""
    scores = list(LLM.objects.filter(pk__in=llm_ids).values_list("privacy_score", flat=True))
    limit = max(scores, default=0)
    errors = []
    for kind, model, ids in (("Tool", Tool, tool_ids), ("Datasource", Datasource, datasource_ids)):
        for name, score in model.objects.filter(pk__in=ids, privacy_score__gt=limit).values_list(
            "slug", "privacy_score"
        ):
            errors.append(PRIVACY_RULE.format(kind=kind, kind_lower=kind.lower(), name=name, score=score, limit=limit))
    for res in resources:
        if int(res.get("privacy_score", 0)) > limit:
            errors.append(
                PRIVACY_RULE.format(
                    kind="Plugin resource",
                    kind_lower="plugin resource",
                    name=f"{res.get('resource_type')}/{res.get('resource_id')}",
                    score=res.get("privacy_score"),
                    limit=limit,
                )
            )
    return errors


def app_check_privacy(*, app: App) -> None:
    errors = privacy_errors(
        llm_ids=list(app.llms.values_list("pk", flat=True)),
        tool_ids=list(app.tools.values_list("pk", flat=True)),
        datasource_ids=list(app.datasources.values_list("pk", flat=True)),
        resources=list(app.plugin_resources.values("resource_type", "resource_id", "privacy_score")),
    )
    if errors:
        raise ValidationError(f"App {app.name!r}: {errors[0]}", code="privacy_rule")


# ----------------------------------------------------------------------------------------------------------------
# Apps
# ----------------------------------------------------------------------------------------------------------------


def app_hook_view(app: App | None, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The app as object hooks see it: SDK `App` fields (ids of related objects, tag names) plus ours."""
    view: dict[str, Any] = {"id": app.pk if app else None}
    for name in APP_FIELDS:
        view[name] = getattr(app, name) if app else field_default(App, name)
    if app is not None and app.pk:
        view["llm_ids"] = sorted(app.llms.values_list("pk", flat=True))
        view["tool_ids"] = sorted(app.tools.values_list("pk", flat=True))
        view["datasource_ids"] = sorted(app.datasources.values_list("pk", flat=True))
        view["tags"] = sorted(app.tags.values_list("name", flat=True))
        view["plugin_resources"] = [
            {
                "plugin": r.plugin.slug,
                "resource_type": r.resource_type,
                "resource_id": r.resource_id,
                "name": r.name,
                "privacy_score": r.privacy_score,
            }
            for r in app.plugin_resources.select_related("plugin")
        ]
    else:
        view.update(llm_ids=[], tool_ids=[], datasource_ids=[], tags=[], plugin_resources=[])
    for key, value in (data or {}).items():
        if key in APP_FIELDS or key in APP_RELATIONS:
            view[key] = value
    return view


def _validate_ips(ips: Any) -> None:
    if not isinstance(ips, list):
        raise ValidationError({"allowed_ips": "Give a list of addresses or CIDR networks."})
    for ip in ips:
        try:
            ipaddress.ip_network(str(ip), strict=False)
        except ValueError:
            raise ValidationError({"allowed_ips": f"{ip!r} is not an IP address or CIDR network."}) from None


def _ids(model, ids: Any, field: str) -> list[int]:
    if not isinstance(ids, list | tuple):
        raise ValidationError({field: "Give a list of ids."})
    wanted = {int(i) for i in ids}
    found = set(model.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    if wanted - found:
        raise ValidationError({field: f"Unknown ids: {sorted(wanted - found)}."})
    return sorted(wanted)


def _resources(items: Any) -> list[dict[str, Any]]:
    """Resolve plugin resources; the privacy score comes from the plugin when it provides resources."""
    if not isinstance(items, list):
        raise ValidationError({"plugin_resources": "Give a list of {plugin, resource_type, resource_id} objects."})
    resolved = []
    for item in items:
        if not isinstance(item, dict) or not {"plugin", "resource_type", "resource_id"} <= item.keys():
            raise ValidationError({"plugin_resources": "Each resource needs plugin, resource_type and resource_id."})
        plugin = Plugin.objects.filter(slug=item["plugin"]).first()
        if plugin is None:
            raise ValidationError({"plugin_resources": f"No plugin {item['plugin']!r}."})
        score, name = int(item.get("privacy_score") or 0), str(item.get("name") or "")
        if "resource_provider" in (plugin.capabilities or []):
            from control_plane.plugins.services import plugin_get_resource

            instance = plugin_get_resource(
                plugin=plugin, type_slug=str(item["resource_type"]), resource_id=str(item["resource_id"])
            )
            if instance is None:
                raise ValidationError(
                    {
                        "plugin_resources": f"Plugin {plugin.slug!r} has no resource "
                        f"{item['resource_type']}/{item['resource_id']}."
                    }
                )
            score, name = instance.privacy_score, instance.name
        resolved.append(
            {
                "plugin": plugin,
                "resource_type": str(item["resource_type"]),
                "resource_id": str(item["resource_id"]),
                "name": name,
                "privacy_score": score,
            }
        )
    return resolved


def _apply(app: App, outcome: HookOutcome) -> App:
    obj = outcome.obj
    for name in APP_FIELDS:
        if name in obj:
            setattr(app, name, obj[name])
    if outcome.metadata:
        app.metadata = {**(app.metadata or {}), **outcome.metadata}
    if obj.get("approved") and app.approved_at is None:
        app.approved_at = timezone.now()
    if not obj.get("approved", app.approved):
        app.approved_at = None
    _validate_ips(app.allowed_ips)
    if app.owner_id is not None and not get_user_model().objects.filter(pk=app.owner_id).exists():
        raise ValidationError({"owner_id": f"No user with id {app.owner_id}."})
    app.full_clean(exclude=["owner"])
    app.save()
    if "llm_ids" in obj:
        held = set(app.llms.values_list("pk", flat=True))
        wanted = _ids(LLM, obj["llm_ids"], "llm_ids")
        app.llms.set(wanted)
        currency_errors = app_llm_currency_errors(app=app, llm_ids=set(wanted) - held)
        if currency_errors:
            raise ValidationError({"llm_ids": currency_errors})
    if "tool_ids" in obj:
        app.tools.set(_ids(Tool, obj["tool_ids"], "tool_ids"))
    if "datasource_ids" in obj:
        app.datasources.set(_ids(Datasource, obj["datasource_ids"], "datasource_ids"))
    if "tags" in obj:
        tags = obj["tags"]
        if not isinstance(tags, list):
            raise ValidationError({"tags": "Give a list of tag names."})
        app.tags.set([Tag.objects.get_or_create(name=str(t))[0] for t in tags])
    if "plugin_resources" in obj:
        app.plugin_resources.all().delete()
        for res in _resources(obj["plugin_resources"]):
            PluginResource.objects.create(app=app, **res)
    errors = privacy_errors(
        llm_ids=list(app.llms.values_list("pk", flat=True)),
        tool_ids=list(app.tools.values_list("pk", flat=True)),
        datasource_ids=list(app.datasources.values_list("pk", flat=True)),
        resources=list(app.plugin_resources.values("resource_type", "resource_id", "privacy_score")),
    )
    if errors:
        raise ValidationError(errors, code="privacy_rule")
    return app


def app_create(*, data: dict[str, Any], actor_id: int | None = None, hook_outcome: HookOutcome | None = None) -> App:
    def apply(outcome: HookOutcome) -> App:
        app = _apply(App(), outcome)
        config_change_record(namespace=app.namespace, reason=f"app {app.pk} created")
        return app

    return guarded_write(
        object_type="app",
        operation="create",
        view=app_hook_view(None, data),
        actor_id=actor_id,
        apply=apply,
        after_view=app_hook_view,
        hook_outcome=hook_outcome,
    )


def app_update(
    *, app: App, data: dict[str, Any], actor_id: int | None = None, hook_outcome: HookOutcome | None = None
) -> App:
    old_namespace = app.namespace

    def apply(outcome: HookOutcome) -> App:
        result = _apply(App.objects.select_for_update().get(pk=app.pk), outcome)
        config_change_record(namespace=result.namespace, reason=f"app {result.pk} updated")
        if old_namespace != result.namespace:
            config_change_record(namespace=old_namespace, reason=f"app {result.pk} moved out")
        return result

    return guarded_write(
        object_type="app",
        operation="update",
        view=app_hook_view(app, data),
        actor_id=actor_id,
        apply=apply,
        after_view=app_hook_view,
        hook_outcome=hook_outcome,
    )


def app_delete(*, app: App, actor_id: int | None = None, hook_outcome: HookOutcome | None = None) -> None:
    guarded_delete(
        object_type="app",
        instance=app,
        view=app_hook_view(app),
        changed_namespaces=lambda: [app.namespace],
        label=f"app {app.pk}",
        actor_id=actor_id,
        hook_outcome=hook_outcome,
    )


def app_approve(*, app: App, actor_id: int | None = None) -> App:
    """Approval is an update (hooks see `approved: true`) that also switches the app on; the owner is mailed
    when the app was waiting (approving an approved app again mails nobody)."""
    from .notifications import notify_app_approved

    was_approved = App.objects.filter(pk=app.pk, approved=True).exists()
    with transaction.atomic():
        approved = app_update(app=app, data={"approved": True, "is_active": True}, actor_id=actor_id)
        if not was_approved and approved.approved:
            notify_app_approved(approved)
    return approved


# ----------------------------------------------------------------------------------------------------------------
# Credentials
# ----------------------------------------------------------------------------------------------------------------


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits


def app_owner_namespace(user: Any) -> str:
    """Where a self-service app (made by a user who administers nothing, in the portal or the API) lives: its
    owner's `app_namespace` (a profile field), so that namespace's administrators approve it, its edges serve it
    and its hooks see it."""
    from control_plane.accounts.models import Profile

    return Profile.objects.filter(user=user).values_list("app_namespace", flat=True).first() or ""


def app_owner_resource_plugins(namespace: str) -> Any:
    """The plugins whose resources a self-service app of `namespace` may hold: the global ones and its
    namespace's (another namespace's document collections are not its owner's to attach)."""
    return Plugin.objects.filter(namespace__in=("", namespace))


def app_takes_owner_keys(app: App) -> bool:
    """Whether its owner may create keys for `app` (the portal and the API ask): only once it is approved and
    active. A key minted while the app waits starts working the moment an administrator approves it, so the owner
    would hold a key the administrator never saw being made; administrators who may approve the app still create
    keys for it (the admin's "Create key", the API)."""
    return app.approved and app.is_active


@transaction.atomic
def credential_create(
    *, app: App, name: str = "", user_id: int | None = None, expires_at: datetime | None = None
) -> tuple[Credential, str]:
    """A new key for `app`. Returns the credential and the clear key, which is not stored anywhere."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    key = _new_key()
    credential = Credential.objects.create(
        app=app,
        name=name,
        user_id=user_id,
        expires_at=expires_at,
        prefix=key[:PREFIX_LENGTH],
        key_hash=hash_credential(key),
    )
    config_change_record(namespace=app.namespace, reason=f"credential {credential.prefix} created")
    return credential, key


@transaction.atomic
def credential_import(*, app: App, key: str, name: str = "") -> Credential:
    """Store a key generated elsewhere (the demo seed's fixed key); idempotent for the same key and app."""
    if len(key) < 20:
        raise ValidationError({"key": "A client key must be at least 20 characters."})
    digest = hash_credential(key)
    existing = Credential.objects.filter(key_hash=digest).first()
    if existing is not None:
        if existing.app_id != app.pk:
            raise ValidationError({"key": "This key belongs to another app."})
        if existing.revoked_at is not None:
            existing.revoked_at = None
            existing.save(update_fields=["revoked_at"])
            config_change_record(namespace=app.namespace, reason=f"credential {existing.prefix} restored")
        return existing
    credential = Credential.objects.create(app=app, name=name, prefix=key[:PREFIX_LENGTH], key_hash=digest)
    config_change_record(namespace=app.namespace, reason=f"credential {credential.prefix} imported")
    return credential


@transaction.atomic
def credential_revoke(*, credential: Credential) -> Credential:
    credential = Credential.objects.select_for_update().select_related("app").get(pk=credential.pk)
    if credential.revoked_at is None:
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["revoked_at"])
        config_change_record(namespace=credential.app.namespace, reason=f"credential {credential.prefix} revoked")
    return credential


@transaction.atomic
def credential_rotate(*, credential: Credential, grace_seconds: int = 0) -> tuple[Credential, str]:
    """Replace a key: the new one inherits name, user and expiry; the old one is revoked now, or after
    `grace_seconds` so clients can switch over without an outage."""
    old = Credential.objects.select_for_update().select_related("app").get(pk=credential.pk)
    if old.revoked_at is not None:
        raise ValidationError("A revoked key cannot be rotated; create a new one.")
    if grace_seconds < 0:
        raise ValidationError({"grace_seconds": "Must be zero or more."})
    key = _new_key()
    new = Credential.objects.create(
        app=old.app,
        name=old.name,
        user_id=old.user_id,
        expires_at=old.expires_at,
        prefix=key[:PREFIX_LENGTH],
        key_hash=hash_credential(key),
        rotated_from=old,
    )
    if grace_seconds:
        grace_end = timezone.now() + timedelta(seconds=grace_seconds)
        old.expires_at = min(old.expires_at, grace_end) if old.expires_at else grace_end
        old.save(update_fields=["expires_at"])
    else:
        old.revoked_at = timezone.now()
        old.save(update_fields=["revoked_at"])
    config_change_record(namespace=old.app.namespace, reason=f"credential {old.prefix} rotated to {new.prefix}")
    return new, key
