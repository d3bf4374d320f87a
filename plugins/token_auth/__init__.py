"""Bundled plugin; register it by entry point `token-auth` (or import path `plugins.token_auth.plugin:create_plugin`)."""

from .plugin import NAME, TokenAuth, create_plugin

__all__ = ["NAME", "TokenAuth", "create_plugin"]
