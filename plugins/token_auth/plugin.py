"""Token authentication from the plugin's own store (the edge's KV), instead of the app credentials.

Tokens are configured as `{"tokens": [{"token": "...", "app_id": 1, "user_id": 7}]}`; at `initialize` each
is stored in the plugin's KV under `token:<sha256>` (the clear token is never kept), so tokens added later by
an admin endpoint or event survive restarts. A token must name an app that exists in the edge's config:
the plugin never authenticates a credential without an app.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from shared_sdk import (
    App,
    AuthRequest,
    AuthResponse,
    BasePlugin,
    Context,
    ManifestPermissions,
    PluginManifest,
    User,
)

NAME = "token-auth"

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tokens": {
            "type": "array",
            "default": [],
            "items": {
                "type": "object",
                "required": ["token", "app_id"],
                "properties": {
                    "token": {"type": "string", "minLength": 8},
                    "app_id": {"type": "integer"},
                    "user_id": {"type": ["integer", "null"]},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}


class TokenRecord(msgspec.Struct):
    app_id: int
    user_id: int | None = None


_decode = msgspec.json.Decoder(TokenRecord).decode


def _key(token: str) -> str:
    return "token:" + hashlib.sha256(token.encode()).hexdigest()


class TokenAuth(BasePlugin):
    name = NAME
    version = "1.0.1"
    description = "Authenticates clients by tokens kept in the plugin's own store."

    def get_config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    def get_manifest(self) -> PluginManifest:
        """Declares the gateway services it reads: the app and user a token maps to (`apps.read`, `users.read`)."""
        return PluginManifest(
            id=NAME,
            version=self.version,
            name="Token auth",
            description=self.description,
            permissions=ManifestPermissions(kv=True, services=["kv.readwrite", "apps.read", "users.read"]),
        )

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        kv = ctx.services.kv  # type: ignore[union-attr]
        for entry in config.get("tokens", []):
            record = TokenRecord(app_id=entry["app_id"], user_id=entry.get("user_id"))
            await kv.write(_key(entry["token"]), msgspec.json.encode(record))

    async def _lookup(self, ctx: Context, credential: str) -> TokenRecord | None:
        if not credential:
            return None
        raw = await ctx.services.kv.read(_key(credential))  # type: ignore[union-attr]
        return _decode(raw) if raw is not None else None

    async def handle_auth(self, ctx: Context, req: AuthRequest) -> AuthResponse:
        record = await self._lookup(ctx, req.credential)
        if record is None:
            return AuthResponse(authenticated=False, error_message="unknown token")
        return AuthResponse(authenticated=True, app_id=record.app_id, user_id=record.user_id, claims={"auth": NAME})

    async def get_app_by_credential(self, ctx: Context, credential: str) -> App | None:
        record = await self._lookup(ctx, credential)
        if record is None:
            return None
        return await ctx.services.gateway.get_app(record.app_id)  # type: ignore[union-attr]

    async def get_user_by_credential(self, ctx: Context, credential: str) -> User | None:
        record = await self._lookup(ctx, credential)
        if record is None or record.user_id is None:
            return None
        user = await ctx.services.gateway.get_user(record.user_id)  # type: ignore[union-attr]
        return user or User(id=record.user_id)


def create_plugin() -> TokenAuth:
    return TokenAuth()
