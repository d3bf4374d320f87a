from __future__ import annotations

from django.contrib import admin

from control_plane.accounts.admin_access import request_user_access

from .models import KVEntry
from .selectors import kv_entries_visible


@admin.register(KVEntry)
class KVEntryAdmin(admin.ModelAdmin):
    """Read-only view of what plugins keep (values are the plugin's business; only their size is shown)."""

    list_display = ["plugin_slug", "key", "size", "expires_at", "updated_at"]
    list_filter = ["plugin_slug"]
    search_fields = ["plugin_slug", "key"]
    fields = readonly_fields = ("plugin_slug", "key", "size", "expires_at", "created_at", "updated_at")

    @admin.display(description="Bytes")
    def size(self, obj):
        return len(obj.value)

    def get_queryset(self, request):
        """Only the entries of plugins in namespaces the user may view (`selectors.kv_entries_visible`)."""
        return kv_entries_visible(super().get_queryset(request), request_user_access(request))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
