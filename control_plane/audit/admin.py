"""The audit trail in the admin: searchable, filterable, read-only (entries are removed only by retention)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from .models import AuditEntry
from .selectors import audit_entries_visible


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_label", "actor_kind", "source", "action", "object_type", "object_id", "namespace")
    list_filter = ("action", "actor_kind", "source", "object_type", "namespace")
    search_fields = ("actor_label", "object_repr", "object_id", "remote_addr")
    date_hierarchy = "at"
    list_select_related = False
    readonly_fields = [f.name for f in AuditEntry._meta.fields if f.name != "changes"] + ["changes_table"]
    exclude = ("changes",)

    @admin.display(description="changes")
    def changes_table(self, entry: AuditEntry) -> str:
        rows = []
        for field, change in sorted(entry.changes.items()):
            if isinstance(change, list) and len(change) == 2:
                old, new = (json.dumps(v, default=str) for v in change)
            else:
                old, new = "", json.dumps(change, default=str)
            rows.append((field, old, new))
        if not rows:
            return "-"
        body = format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", rows)
        return format_html("<table><tr><th>field</th><th>before</th><th>after</th></tr>{}</table>", body)

    def get_queryset(self, request: HttpRequest) -> Any:
        from control_plane.accounts.admin_access import request_user_access

        queryset = super().get_queryset(request)
        return audit_entries_visible(queryset, access=request_user_access(request), user=request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
