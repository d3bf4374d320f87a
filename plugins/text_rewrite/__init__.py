"""Bundled plugin; register it by entry point `text-rewrite` (or import path `plugins.text_rewrite.plugin:create_plugin`)."""

from .plugin import NAME, TextRewrite, create_plugin

__all__ = ["NAME", "TextRewrite", "create_plugin"]
