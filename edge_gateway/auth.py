"""Who the caller is: auth plugins first, else the app key hashed and looked up in memory.

Keys arrive as `Authorization: Bearer <key>` (OpenAI clients), `x-api-key: <key>` (Anthropic clients) or
`api-key: <key>` (Azure OpenAI clients; read only when neither of the others holds a key, `client_credential`).
The snapshot carries only `sha256(key)`; the key itself is never stored, logged or sent upstream.

With auth plugins in the chain, their outcome (`HookChain.run_auth`) decides when it is a decision: an
authenticated credential with an app active here, or an explicit refusal (401). When every plugin declined
the credential (`AuthResult.handled` False), the app-key check runs as if there were no auth plugin. The LLM
routes and the plugins' custom endpoints (`require_auth`) follow the same rule (`accept_caller`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

from shared_sdk import AuthRequest, Context, EnrichedRequest
from shared_sdk.pipeline import AuthResult, HookChain
from shared_sdk.snapshot import CredentialConfig

from .config_store import CompiledApp, CompiledConfig
from .errors import GatewayError
from .exchange import Rejected

__all__ = [
    "accept_caller",
    "authenticate_key",
    "client_credential",
    "credential_from_headers",
    "find_credential",
    "plugin_auth",
]

_NOT_DECIDED = AuthResult(handled=False)


def credential_from_headers(authorization: str | None, api_key: str | None) -> tuple[str, str]:
    """(credential, auth_type) from the request headers; ("", "") when none was presented."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), "bearer"
    if api_key:
        return api_key.strip(), "api_key"
    return "", ""


def client_credential(headers: Mapping[str, str], api_key: str | None = None) -> tuple[str, str]:
    """(credential, auth_type) of a caller's lower-cased headers: `credential_from_headers` over `authorization`
    and `api_key` (default: `x-api-key`), else Azure's `api-key` header (what the `AzureOpenAI` client sends)."""
    credential, auth_type = credential_from_headers(
        headers.get("authorization"), headers.get("x-api-key") if api_key is None else api_key
    )
    if not credential and "api-key" in headers:
        return credential_from_headers(None, headers["api-key"])
    return credential, auth_type


def find_credential(cfg: CompiledConfig, credential: str) -> CredentialConfig | None:
    if not credential:
        return None
    return cfg.credentials.get(hashlib.sha256(credential.encode()).hexdigest())


def authenticate_key(
    cfg: CompiledConfig, credential: str, found: CredentialConfig | None
) -> tuple[CompiledApp, int | None]:
    """The app (and user id) of a client key (`found` = `find_credential(...)`); 401 when unusable."""
    if not credential:
        raise GatewayError.unauthenticated(
            "no API key provided (use 'Authorization: Bearer <key>', 'x-api-key' or 'api-key')"
        )
    if found is None:
        raise GatewayError.unauthenticated("invalid API key")
    if found.expires_at is not None and found.expires_at <= time.time():
        raise GatewayError.unauthenticated("API key has expired")
    app = cfg.apps.get(found.app_id)
    if app is None:
        raise GatewayError.unauthenticated("the API key's app is not active")
    if cfg.inactive_users and (found.user_id in cfg.inactive_users or app.config.owner_id in cfg.inactive_users):
        raise GatewayError.unauthenticated("the API key's user (or its app's owner) is deactivated")
    return app, found.user_id


def accept_caller(
    cfg: CompiledConfig, outcome: AuthResult, credential: str, found: CredentialConfig | None
) -> tuple[CompiledApp, int | None, dict[str, Any] | None]:
    """(app, user id, auth claims) of the caller, from the auth plugins' outcome when they decided, else from
    the app key; raises `Rejected` (401) otherwise. Claims are None for app keys."""
    if not outcome.handled:
        try:
            app, user_id = authenticate_key(cfg, credential, found)
        except GatewayError as err:
            raise Rejected(err, "unauthenticated") from None
        return app, user_id, None
    return _plugin_caller(cfg, outcome)


def _plugin_caller(cfg: CompiledConfig, outcome: AuthResult) -> tuple[CompiledApp, int | None, dict[str, Any] | None]:
    """The caller an auth plugin decided on: its error, or its app (active on this edge) and active user."""
    if outcome.error is not None:
        raise Rejected(outcome.error, "auth_plugin")
    plugin_app = outcome.app
    compiled = cfg.apps.get(plugin_app.id) if plugin_app is not None and plugin_app.id is not None else None
    if compiled is None:
        raise Rejected(GatewayError.unauthenticated("the credential's app is not active on this edge"), "unknown_app")
    response = outcome.response
    user_id = outcome.user.id if outcome.user is not None else (response.user_id if response is not None else None)
    if user_id is not None and user_id in cfg.inactive_users:
        raise Rejected(GatewayError.unauthenticated("the credential's user is deactivated"), "inactive_user")
    return compiled, user_id, response.claims if response is not None else {}


async def plugin_auth(
    hooks: HookChain | None, ctx: Context, credential: str, auth_type: str, request: EnrichedRequest
) -> AuthResult:
    """The auth plugins' outcome for a credential (not handled when the chain has none)."""
    if hooks is None or not hooks.hooks("handle_auth"):
        return _NOT_DECIDED
    auth_req = AuthRequest(credential=credential, auth_type=auth_type or "bearer", request=request, context=ctx.info())
    return await hooks.run_auth(ctx, auth_req)
