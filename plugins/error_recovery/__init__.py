"""Bundled plugin; register it by entry point `error-recovery` (or import path `plugins.error_recovery.plugin:create_plugin`)."""

from .plugin import NAME, ErrorRecovery, create_plugin

__all__ = ["NAME", "ErrorRecovery", "create_plugin"]
