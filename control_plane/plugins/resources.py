"""Resource types of `ResourceProvider` plugins and their instances, for the API, the admin and the portal.

Types are read from what each plugin declared when it was registered (`get_resource_types`, kept in its
manifest's `resource_types`), so listing them calls no plugin; instances are asked from the plugin
(`list_resources`) each time, since the plugin owns them (a collection switched off shows at once).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
from django.db.models import QuerySet

from shared_sdk import FjordgateSDKError

from .models import Plugin

__all__ = ["ResourceChoice", "resource_choices", "resource_instances", "resource_types"]

logger = logging.getLogger(__name__)


def _providers(type_slug: str | None = None, plugins: QuerySet[Plugin] | None = None) -> list[tuple[Plugin, dict]]:
    """Active resource providers (of `plugins`: those a caller may see; default every plugin) with their types."""
    found = []
    for plugin in (Plugin.objects.all() if plugins is None else plugins).filter(active=True).order_by("slug"):
        if "resource_provider" not in (plugin.capabilities or []):
            continue
        manifest = plugin.manifest if isinstance(plugin.manifest, dict) else {}
        for rtype in manifest.get("resource_types") or []:
            if isinstance(rtype, dict) and rtype.get("slug") and (type_slug is None or rtype["slug"] == type_slug):
                found.append((plugin, rtype))
    return found


def resource_types(plugins: QuerySet[Plugin] | None = None) -> list[dict[str, Any]]:
    """Every resource type of every active resource provider (of `plugins`, when given: the API and the admin page
    pass what the caller may see): `{plugin, plugin_name, slug, name, ...}`."""
    return [
        {
            "plugin": plugin.slug,
            "plugin_name": plugin.name,
            "slug": str(rtype["slug"]),
            "name": str(rtype.get("name") or rtype["slug"]),
            "description": str(rtype.get("description") or ""),
            "icon": str(rtype.get("icon") or ""),
            "has_privacy_score": bool(rtype.get("has_privacy_score", True)),
        }
        for plugin, rtype in _providers(plugins=plugins)
    ]


def resource_instances(
    type_slug: str, plugins: QuerySet[Plugin] | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The instances of `type_slug` from each plugin providing it (of `plugins`, when given), and a sentence per
    plugin that failed."""
    from .runtime import call_plugin

    instances: list[dict[str, Any]] = []
    problems = []
    for plugin, _ in _providers(type_slug, plugins):
        try:
            listed = call_plugin(plugin.slug, "list_resources", type_slug) or []
        except FjordgateSDKError as exc:
            logger.warning("plugin %s could not list %s: %s", plugin.slug, type_slug, exc)
            problems.append(f"Plugin {plugin.slug!r} could not list its {type_slug} resources: {exc}")
            continue
        for instance in listed:
            # asdict, not to_builtins: SDK messages omit default fields (is_active=True) when encoded
            item = msgspec.to_builtins(msgspec.structs.asdict(instance)) if isinstance(instance, msgspec.Struct) else {}
            item["type_slug"] = item.get("type_slug") or type_slug
            instances.append({"plugin": plugin.slug, **item})
    return instances, problems


@dataclass(frozen=True)
class ResourceChoice:
    """One instance as a form choice: `value` is `plugin|type|id`; the label shows its privacy score."""

    value: str
    label: str
    plugin: str
    resource_type: str
    resource_id: str
    privacy_score: int
    extra: dict[str, Any] = field(default_factory=dict)

    def as_resource(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "resource_type": self.resource_type, "resource_id": self.resource_id}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resource_choices(plugins: QuerySet[Plugin] | None = None) -> list[ResourceChoice]:
    """Every active instance of every type (of `plugins`, when given: the admin's app form passes those the user may
    view), for the admin's and the portal's pickers (inactive ones left out)."""
    choices = []
    for rtype in resource_types(plugins):
        instances, _ = resource_instances(rtype["slug"], plugins)
        for item in instances:
            if item["plugin"] != rtype["plugin"] or not item.get("is_active", True):
                continue
            rid = str(item.get("id"))
            choices.append(
                ResourceChoice(
                    value=f"{item['plugin']}|{rtype['slug']}|{rid}",
                    label=f"{rtype['name']}: {item.get('name') or rid} (privacy score {item.get('privacy_score', 0)})",
                    plugin=item["plugin"],
                    resource_type=rtype["slug"],
                    resource_id=rid,
                    privacy_score=int(item.get("privacy_score") or 0),
                )
            )
    return choices
