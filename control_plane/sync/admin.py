from __future__ import annotations

from django.contrib import admin, messages

from .models import ConfigChange
from .services import config_push_now


@admin.register(ConfigChange)
class ConfigChangeAdmin(admin.ModelAdmin):
    list_display = ["version", "namespace", "reason", "created_at", "published_at"]
    list_filter = ["namespace", ("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["reason", "namespace"]
    readonly_fields = ["version", "namespace", "reason", "created_at", "published_at"]
    actions = ["push_again"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Push config now (namespaces of the selected changes)")
    def push_again(self, request, queryset):
        for namespace in sorted(set(queryset.values_list("namespace", flat=True))):
            change = config_push_now(namespace=namespace, actor=request.user.get_username())
            messages.success(request, f"Config version {change.version} for namespace {namespace or '(global)'}")
