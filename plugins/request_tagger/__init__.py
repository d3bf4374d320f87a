"""Bundled plugin; load with import path `plugins.request_tagger.plugin:create_plugin`."""

from .plugin import NAME, RequestTagger, create_plugin

__all__ = ["NAME", "RequestTagger", "create_plugin"]
