"""Bundled plugin; load with import path `plugins.error_recovery.plugin:create_plugin`."""

from .plugin import NAME, ErrorRecovery, create_plugin

__all__ = ["NAME", "ErrorRecovery", "create_plugin"]
