"""Bundled plugin; register it by entry point `ip-filter` (or import path `plugins.ip_filter.plugin:create_plugin`)."""

from .plugin import NAME, IPFilter, create_plugin

__all__ = ["NAME", "IPFilter", "create_plugin"]
