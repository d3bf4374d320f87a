"""Bundled plugin; load with import path `plugins.pii_redactor.plugin:create_plugin`."""

from .plugin import NAME, PIIRedactor, create_plugin

__all__ = ["NAME", "PIIRedactor", "create_plugin"]
