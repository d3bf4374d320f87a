"""Bundled plugin; load with import path `plugins.ip_filter.plugin:create_plugin`."""

from .plugin import NAME, IPFilter, create_plugin

__all__ = ["NAME", "IPFilter", "create_plugin"]
