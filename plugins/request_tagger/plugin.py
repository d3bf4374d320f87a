"""Request tagging and header injection after authentication.

Tags (static ones from config, plus `app:<name>` and the app's own tags) are put in the request context as
`request_tagger.tags`, where later plugins and the analytics record's context see them. Configured headers
are added to the request; the edge forwards headers a hook added to the upstream (never auth headers).
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared_sdk import BasePlugin, Context, EnrichedRequest, PluginResponse

NAME = "request-tagger"

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tags": {"type": "array", "items": {"type": "string"}, "default": []},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
        "tag_app": {"type": "boolean", "default": True},
    },
    "additionalProperties": False,
}


class RequestTagger(BasePlugin):
    name = NAME
    version = "1.0.0"
    description = "Tags requests in their context and injects headers (post-auth)."

    def get_config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        self.tags = list(config.get("tags", []))
        self.headers = {k.lower(): v for k, v in config.get("headers", {}).items()}
        self.tag_app = bool(config.get("tag_app", True))

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse:
        tags = list(self.tags)
        if self.tag_app and ctx.app is not None:
            tags.append(f"app:{ctx.app.name}")
            tags.extend(ctx.app.tags)
        updates = {f"{NAME.replace('-', '_')}.tags": tags}
        if not self.headers:
            return PluginResponse(context_updates=updates)
        request = msgspec.structs.replace(req, headers={**req.headers, **self.headers})
        return PluginResponse(modified=True, request=request, context_updates=updates)


def create_plugin() -> RequestTagger:
    return RequestTagger()
