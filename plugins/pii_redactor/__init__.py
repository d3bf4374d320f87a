"""Bundled plugin; register it by entry point `pii-redactor` (or import path `plugins.pii_redactor.plugin:create_plugin`)."""

from .plugin import NAME, PIIRedactor, create_plugin

__all__ = ["NAME", "PIIRedactor", "create_plugin"]
