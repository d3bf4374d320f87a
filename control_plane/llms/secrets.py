"""Vendor API keys at rest and in transit.

At rest a key is a Fernet token made with `FJORDGATE_SECRET_KEY` (comma-separated, newest first: `MultiFernet`
decrypts with any listed key and encrypts with the first, so keys rotate without a flag day). In a config
snapshot the key is re-encrypted with `FJORDGATE_EDGE_SECRET`, which only edges hold. The clear key exists only
inside these functions' frames: it is never logged, returned by the API or shown to object hooks.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "vendor_key_decrypt",
    "vendor_key_edge_rotate",
    "vendor_key_encrypt",
    "vendor_key_for_edge",
    "vendor_keys_reencrypt",
]


def _at_rest() -> MultiFernet:
    keys = list(getattr(settings, "FJORDGATE_SECRET_KEYS", []) or [])
    if not keys:
        raise ImproperlyConfigured("FJORDGATE_SECRET_KEY is not set: vendor API keys cannot be encrypted")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured("FJORDGATE_SECRET_KEY must list url-safe base64 32-byte Fernet keys") from exc


def _edge() -> Fernet:
    key = getattr(settings, "FJORDGATE_EDGE_SECRET", None)
    if not key:
        raise ImproperlyConfigured("FJORDGATE_EDGE_SECRET is not set: snapshots cannot carry vendor keys")
    try:
        return Fernet(key)
    except ValueError as exc:
        raise ImproperlyConfigured("FJORDGATE_EDGE_SECRET must be a url-safe base64 32-byte Fernet key") from exc


def vendor_key_encrypt(plain: str) -> str:
    return _at_rest().encrypt(plain.encode()).decode() if plain else ""


def vendor_key_decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _at_rest().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured("a stored vendor key cannot be decrypted with any FJORDGATE_SECRET_KEY") from exc


def vendor_key_for_edge(token: str) -> str:
    """The at-rest token re-encrypted for edges; "" stays "" (an LLM without a key, e.g. a local model)."""
    plain = vendor_key_decrypt(token)
    return _edge().encrypt(plain.encode()).decode() if plain else ""


def vendor_keys_reencrypt(tokens: list[str]) -> list[str]:
    """Re-encrypt with the newest key (after prepending a new FJORDGATE_SECRET_KEY)."""
    fernet = _at_rest()
    return [fernet.rotate(t.encode()).decode() if t else "" for t in tokens]


def vendor_key_edge_rotate(edge_token: str, *, old_edge_secret: str) -> str:
    """An edge copy made with `old_edge_secret` re-encrypted with the current FJORDGATE_EDGE_SECRET.

    A copy already made with the current secret is accepted too (it is re-encrypted as well), so a rotation that
    stopped half way can simply be run again. Raises `InvalidToken` when neither secret opens it, and
    `ValueError` when `old_edge_secret` is not a Fernet key.
    """
    return MultiFernet([_edge(), Fernet(old_edge_secret)]).rotate(edge_token.encode()).decode()
