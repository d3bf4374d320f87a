"""Bundled plugin; register it by entry point `request-tagger` (or import path `plugins.request_tagger.plugin:create_plugin`)."""

from .plugin import NAME, RequestTagger, create_plugin

__all__ = ["NAME", "RequestTagger", "create_plugin"]
