"""Bundled plugin; load with import path `plugins.request_logger.plugin:create_plugin`."""

from .plugin import NAME, RequestLogger, create_plugin

__all__ = ["NAME", "RequestLogger", "create_plugin"]
