"""prompt_library: the portal's "Prompt library" page, a bundled example of a `PortalUIProvider`.

Each signed-in portal user keeps their own prompts (KV key `prompts:<user id>`); the team's shared prompts come
from the plugin's config (`shared`, edited in the admin as a form from the JSON Schema below). The user is the
one the control plane passes (`PortalUserContext`, from the session): a page cannot read another user's prompts
by sending an id.

RPC (`POST /portal/plugins/prompt-library/rpc/<method>`): `list` -> `{"mine": [...], "shared": [...]}`;
`save` `{"title", "text"}` -> the saved prompt; `delete` `{"id"}` -> `{"deleted": bool}`.
"""

from __future__ import annotations

import json
import uuid
from importlib import resources
from typing import Any

from shared_sdk import BasePlugin, ConfigProvider, Context, ManifestProvider, PortalUIProvider, UIProvider
from shared_sdk.messages import Asset, ManifestPermissions, ManifestSlot, PluginManifest, PortalUserContext

ASSETS = {"index.html": "text/html; charset=utf-8", "library.js": "text/javascript"}
MAX_PROMPTS = 200
MAX_TITLE = 120
MAX_TEXT = 8000


class PromptLibrary(BasePlugin, UIProvider, PortalUIProvider, ManifestProvider, ConfigProvider):
    name = "prompt-library"
    version = "1.0.0"
    description = "Portal page where each user keeps prompts and finds the team's shared ones."

    def get_config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "shared": {
                    "type": "array",
                    "title": "Shared prompts",
                    "description": "Prompts every portal user sees.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "title": {"type": "string", "maxLength": MAX_TITLE},
                            "text": {"type": "string", "maxLength": MAX_TEXT},
                        },
                        "required": ["title", "text"],
                    },
                    "default": [],
                }
            },
            "additionalProperties": False,
        }

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(
            name=self.name,
            version=self.version,
            permissions=ManifestPermissions(portal_ui=True, rpc=True, services=["kv.readwrite"]),
            rpc=["list", "save", "delete"],
            portal_slots=[ManifestSlot(slot="portal.menu", label="Prompt library", component="index.html")],
            assets=list(ASSETS),
        )

    def list_assets(self) -> list[str]:
        return list(ASSETS)

    def get_asset(self, path: str) -> Asset | None:
        if path not in ASSETS:
            return None
        content = resources.files(__package__).joinpath("static", path).read_bytes()
        return Asset(path=path, content=content, content_type=ASSETS[path])

    async def handle_portal_rpc(self, ctx: Context, user: PortalUserContext, method: str, payload: bytes) -> bytes:
        if user.user_id is None:
            return _answer({"error": "Sign in first."})
        key = f"prompts:{user.user_id}"
        assert ctx.services is not None, "the host always binds services to a call's context"
        kv = ctx.services.kv
        raw = await kv.read(key)
        mine: list[dict[str, str]] = json.loads(raw) if raw else []
        try:
            data = json.loads(payload or b"{}")  # no `or {}`: a `[]` or `null` body is no empty request
        except RecursionError:
            return _answer({"error": "The request nests too deeply: send a flat JSON object."})
        except ValueError:
            return _answer({"error": "The request is not JSON."})
        if not isinstance(data, dict):
            return _answer({"error": "Send a JSON object."})
        if method == "list":
            return _answer({"user": user.name, "mine": mine, "shared": list(self.config.get("shared") or [])})
        if method == "save":
            title, text = str(data.get("title") or "").strip(), str(data.get("text") or "").strip()
            if not title or not text:
                return _answer({"error": "A prompt needs a title and a text."})
            if len(title) > MAX_TITLE or len(text) > MAX_TEXT:
                return _answer({"error": f"Keep titles under {MAX_TITLE} and texts under {MAX_TEXT} characters."})
            if len(mine) >= MAX_PROMPTS:
                return _answer({"error": f"At most {MAX_PROMPTS} prompts: delete one first."})
            prompt = {"id": uuid.uuid4().hex[:12], "title": title, "text": text}
            await kv.write(key, json.dumps([*mine, prompt]).encode())
            return _answer({"prompt": prompt})
        if method == "delete":
            kept = [p for p in mine if p["id"] != data.get("id")]
            await kv.write(key, json.dumps(kept).encode())
            return _answer({"deleted": len(kept) < len(mine)})
        return _answer({"error": f"Unknown method {method!r}."})


def _answer(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
