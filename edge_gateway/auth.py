"""Built-in client authentication: the presented key is hashed and looked up in memory.

Keys arrive as `Authorization: Bearer <key>` (OpenAI clients) or `x-api-key: <key>` (Anthropic clients).
The snapshot carries only `sha256(key)`; the key itself is never stored, logged or sent upstream.
"""

from __future__ import annotations

import hashlib
import time

from shared_sdk.snapshot import CredentialConfig

from .config_store import CompiledApp, CompiledConfig
from .errors import GatewayError

__all__ = ["authenticate_key", "credential_from_headers", "find_credential"]


def credential_from_headers(authorization: str | None, api_key: str | None) -> tuple[str, str]:
    """(credential, auth_type) from the request headers; ("", "") when none was presented."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), "bearer"
    if api_key:
        return api_key.strip(), "api_key"
    return "", ""


def find_credential(cfg: CompiledConfig, credential: str) -> CredentialConfig | None:
    if not credential:
        return None
    return cfg.credentials.get(hashlib.sha256(credential.encode()).hexdigest())


def authenticate_key(
    cfg: CompiledConfig, credential: str, found: CredentialConfig | None
) -> tuple[CompiledApp, int | None]:
    """The app (and user id) of a client key (`found` = `find_credential(...)`); 401 when unusable."""
    if not credential:
        raise GatewayError.unauthenticated("no API key provided (use 'Authorization: Bearer <key>' or 'x-api-key')")
    if found is None:
        raise GatewayError.unauthenticated("invalid API key")
    if found.expires_at is not None and found.expires_at <= time.time():
        raise GatewayError.unauthenticated("API key has expired")
    app = cfg.apps.get(found.app_id)
    if app is None:
        raise GatewayError.unauthenticated("the API key's app is not active")
    return app, found.user_id
