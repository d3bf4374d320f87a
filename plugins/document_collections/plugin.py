"""document_collections: a bundled example of a `ResourceProvider`.

It offers one resource type, `document-collection`: named collections of documents (a wiki export, the HR
handbook, contracts), each with a privacy score (0-100) the operator sets in the plugin's config. Apps hold
collections as plugin resources; the control plane enforces the privacy rule with these scores (an app's LLMs
must have a privacy score at least as high as every collection it holds). A collection switched off in config
(`active: false`) is listed as inactive and refused in new selections.
"""

from __future__ import annotations

from typing import Any

from shared_sdk import BasePlugin, ConfigProvider, Context, ManifestProvider, ResourceProvider
from shared_sdk.messages import PluginManifest, ResourceInstance, ResourceSelectionValidation, ResourceType

TYPE_SLUG = "document-collection"
RESOURCE_TYPE = ResourceType(
    slug=TYPE_SLUG,
    name="Document collection",
    description="A named set of documents an app may use as context, with a privacy score.",
    icon="folder",
    has_privacy_score=True,
)


class DocumentCollections(BasePlugin, ResourceProvider, ConfigProvider, ManifestProvider):
    name = "document-collections"
    version = "1.0.0"
    description = "Document collections as a resource type apps can hold, each with a privacy score."

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}

    def get_config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "collections": {
                    "type": "array",
                    "title": "Collections",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
                            "name": {"type": "string", "minLength": 1, "maxLength": 120},
                            "description": {"type": "string", "maxLength": 500},
                            "privacy_score": {"type": "integer", "minimum": 0, "maximum": 100},
                            "documents": {"type": "integer", "minimum": 0},
                            "active": {"type": "boolean", "default": True},
                        },
                        "required": ["id", "name", "privacy_score"],
                        "additionalProperties": False,
                    },
                    "default": [],
                }
            },
            "additionalProperties": False,
        }

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(name=self.name, version=self.version, resource_types=[RESOURCE_TYPE])

    def get_resource_types(self) -> list[ResourceType]:
        return [RESOURCE_TYPE]

    def _instances(self) -> list[ResourceInstance]:
        return [
            ResourceInstance(
                id=str(c["id"]),
                type_slug=TYPE_SLUG,
                name=str(c["name"]),
                description=str(c.get("description", "")),
                privacy_score=int(c["privacy_score"]),
                metadata={"documents": int(c.get("documents", 0))},
                is_active=bool(c.get("active", True)),
            )
            for c in self.config.get("collections") or []
        ]

    async def list_resources(self, ctx: Context, type_slug: str) -> list[ResourceInstance]:
        return self._instances() if type_slug == TYPE_SLUG else []

    async def get_resource(self, ctx: Context, type_slug: str, resource_id: str) -> ResourceInstance | None:
        return next((r for r in await self.list_resources(ctx, type_slug) if r.id == resource_id), None)

    async def validate_resource_selection(
        self, ctx: Context, type_slug: str, resource_ids: list[str]
    ) -> ResourceSelectionValidation:
        known = {r.id: r for r in await self.list_resources(ctx, type_slug)}
        errors = [f"No collection {rid!r}." for rid in resource_ids if rid not in known]
        errors += [
            f"Collection {rid!r} is switched off." for rid in resource_ids if rid in known and not known[rid].is_active
        ]
        return ResourceSelectionValidation(valid=not errors, errors=errors)
