"""Bundled plugin; register it by entry point `request-logger` (or import path `plugins.request_logger.plugin:create_plugin`)."""

from .plugin import NAME, RequestLogger, create_plugin

__all__ = ["NAME", "RequestLogger", "create_plugin"]
