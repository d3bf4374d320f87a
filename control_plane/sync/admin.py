from __future__ import annotations

from django.contrib import admin, messages

from .models import ConfigChange
from .services import config_change_retry, config_push_now


class OutboxStateFilter(admin.SimpleListFilter):
    """Where a change stands: waiting (maybe backing off after a failure), published, or set aside."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("pending", "pending"), ("failing", "failing (retrying)"), ("dead", "dead-lettered"), ("sent", "sent")]

    def queryset(self, request, queryset):
        unpublished = queryset.filter(published_at__isnull=True)
        return {
            "pending": unpublished.filter(dead_lettered_at__isnull=True),
            "failing": unpublished.filter(dead_lettered_at__isnull=True, attempts__gt=0),
            "dead": unpublished.filter(dead_lettered_at__isnull=False),
            "sent": queryset.filter(published_at__isnull=False),
        }.get(self.value(), queryset)


@admin.register(ConfigChange)
class ConfigChangeAdmin(admin.ModelAdmin):
    list_display = [
        "version",
        "namespace",
        "reason",
        "created_at",
        "published_at",
        "attempts",
        "dead_lettered_at",
        "last_error",
    ]
    list_filter = [OutboxStateFilter, "namespace", ("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["reason", "namespace", "last_error"]
    readonly_fields = [
        "version",
        "namespace",
        "reason",
        "created_at",
        "published_at",
        "attempts",
        "next_attempt_at",
        "dead_lettered_at",
        "last_error",
    ]
    actions = ["push_again", "retry"]

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

    @admin.action(description="Retry publishing (dead-lettered or failing changes)")
    def retry(self, request, queryset):
        count = config_change_retry(change_ids=list(queryset.values_list("pk", flat=True)))
        messages.success(request, f"{count} change(s) back in the bridge's queue with a fresh attempt count")
