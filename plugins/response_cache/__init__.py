"""Bundled plugin; register it by entry point `response-cache` (or import path `plugins.response_cache.plugin:create_plugin`)."""

from .plugin import NAME, ResponseCache, create_plugin

__all__ = ["NAME", "ResponseCache", "create_plugin"]
