from __future__ import annotations

from django.contrib import admin

from .models import ObjectHookRegistration


@admin.register(ObjectHookRegistration)
class ObjectHookRegistrationAdmin(admin.ModelAdmin):
    """Discovered from plugins on registration; read-only here (change the plugin to change them)."""

    list_display = ["plugin", "object_type", "hook_type", "priority"]
    list_filter = ["object_type", "hook_type", "plugin"]
    search_fields = ["plugin__slug"]
    readonly_fields = ["plugin", "object_type", "hook_type", "priority"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
