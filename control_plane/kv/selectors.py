"""Which KV entries a caller may read: those of the plugins of the namespaces it may view.

A KV entry belongs to a plugin by slug (no foreign key: an entry outlives its plugin until it expires or is
purged), so `accounts.access.NAMESPACE_PATHS` cannot name a lookup for it and the policy counted it a global
object: any role holder, a viewer of one namespace included, read every plugin's stored values, those of the
other namespaces' plugins too. Entries of a plugin now live in that plugin's namespace; entries whose plugin is
gone stay global.
"""

from __future__ import annotations

from django.db.models import QuerySet

from control_plane.accounts.access import ALL, Access, model_key
from control_plane.plugins.models import Plugin

from .models import KVEntry

__all__ = ["kv_entries_visible"]


def kv_entries_visible(queryset: QuerySet[KVEntry], access: Access) -> QuerySet[KVEntry]:
    """`queryset` without the entries of plugins in namespaces `access` may not view."""
    allowed = access.viewable(model_key(Plugin))
    if allowed is ALL:
        return queryset
    hidden = Plugin.objects.exclude(namespace__in=sorted(allowed)).values("slug")
    return queryset.exclude(plugin_slug__in=hidden)
