"""Small in-process plugins the control-plane tests register (import paths `control_plane.hooks.tests.plugins:*`)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from shared_sdk import BasePlugin, ObjectHookRegistration, ObjectHookRequest, ObjectHookResponse, PluginResponse
from shared_sdk.messages import ResourceInstance, ResourceType


class RecordingPlugin(BasePlugin):
    """Records every object-hook request it receives (class-level, shared across reloads)."""

    name = "recording"
    version = "1.0.0"
    received: ClassVar[list[ObjectHookRequest]] = []

    def get_object_hook_registrations(self) -> list[ObjectHookRegistration]:
        kinds = ["before_create", "after_create", "before_update", "after_update", "before_delete", "after_delete"]
        return [
            ObjectHookRegistration(object_type=t, hook_types=kinds, priority=50)
            for t in ("llm", "app", "tool", "datasource", "user")
        ]

    async def handle_object_hook(self, ctx, req: ObjectHookRequest) -> ObjectHookResponse:
        type(self).received.append(req)
        return ObjectHookResponse()


class RejectExperimentalPlugin(BasePlugin):
    """Refuses LLMs and apps whose name contains "experimental"."""

    name = "reject-experimental"
    version = "1.0.0"

    def get_object_hook_registrations(self) -> list[ObjectHookRegistration]:
        return [
            ObjectHookRegistration(object_type=t, hook_types=["before_create", "before_update"], priority=10)
            for t in ("llm", "app")
        ]

    async def handle_object_hook(self, ctx, req: ObjectHookRequest) -> ObjectHookResponse:
        obj = json.loads(req.object_json)
        if "experimental" in obj.get("name", "").lower():
            return ObjectHookResponse(allow_operation=False, rejection_reason="experimental models need sign-off")
        return ObjectHookResponse()


class TagOwnerPlugin(BasePlugin):
    """Rewrites an LLM before create: upper-cases its name, sets a default model, and adds plugin metadata."""

    name = "tag-owner"
    version = "1.0.0"

    def get_object_hook_registrations(self) -> list[ObjectHookRegistration]:
        return [ObjectHookRegistration(object_type="llm", hook_types=["before_create"], priority=20)]

    async def handle_object_hook(self, ctx, req: ObjectHookRequest) -> ObjectHookResponse:
        obj = json.loads(req.object_json)
        obj["name"] = obj["name"].upper()
        obj["default_model"] = obj.get("default_model") or "gpt-4o-mini"
        return ObjectHookResponse(
            modified=True, modified_object_json=json.dumps(obj), plugin_metadata={"reviewed_by": "tag-owner"}
        )


class ConfiguredPlugin(BasePlugin):
    """Declares a config schema, so registration validates config against it."""

    name = "configured"
    version = "2.1.0"

    def get_config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "threshold": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
                "mode": {"type": "string", "enum": ["log", "block"]},
                "enabled": {"type": "boolean", "default": True},
            },
            "required": ["mode"],
            "additionalProperties": False,
        }


class ResourcePlugin(BasePlugin):
    """Provides "vault" resources with privacy scores (for the privacy rule)."""

    name = "vaults"
    version = "1.0.0"
    scores: ClassVar[dict[str, int]] = {"public": 10, "secret": 90}

    def get_resource_types(self) -> list[ResourceType]:
        return [ResourceType(slug="vault", name="Vault")]

    async def list_resources(self, ctx, type_slug: str) -> list[ResourceInstance]:
        return [ResourceInstance(id=k, type_slug="vault", name=k, privacy_score=v) for k, v in self.scores.items()]

    async def get_resource(self, ctx, type_slug: str, resource_id: str) -> ResourceInstance | None:
        score = self.scores.get(resource_id)
        if score is None:
            return None
        return ResourceInstance(id=resource_id, type_slug=type_slug, name=resource_id, privacy_score=score)


class EdgeSidePlugin(BasePlugin):
    """A request-path plugin (post-auth): the snapshot must carry it to the edges."""

    name = "edge-side"

    async def handle_post_auth(self, ctx, req):
        return PluginResponse()
