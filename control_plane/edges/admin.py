from django.contrib import admin, messages

from .models import EdgeInstance, EdgeReloadRequest, PublishedConfig
from .services import edge_reload_request


class PluginsNotLoadedFilter(admin.SimpleListFilter):
    """Edges whose heartbeat names plugins they could not load: the operator's list of edges to look at."""

    title = "plugins not loaded"
    parameter_name = "plugins_not_loaded"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [("yes", "Some"), ("no", "None")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(plugins_not_loaded={})
        if self.value() == "no":
            return queryset.filter(plugins_not_loaded={})
        return queryset


@admin.register(EdgeInstance)
class EdgeInstanceAdmin(admin.ModelAdmin):
    list_display = (
        "edge_id",
        "namespace",
        "status",
        "version_applied",
        "config_source",
        "nats_connected",
        "workers",
        "in_flight",
        "spool_records",
        "plugins_failing",
        "last_heartbeat",
    )
    list_filter = ("status", PluginsNotLoadedFilter, "namespace", "config_source")
    search_fields = ("edge_id", "namespace", "host")
    readonly_fields = [field.name for field in EdgeInstance._meta.fields] + ["plugins_failing"]
    actions = ["reload_edges", "reload_namespaces"]

    def has_add_permission(self, request) -> bool:
        return False  # edges register themselves by heartbeat

    @admin.display(description="plugins not loaded")
    def plugins_failing(self, edge: EdgeInstance) -> str:
        """The plugins the edge could not load, with why (its heartbeat's fixed phrases), and how many more than
        the heartbeat lists (at most 64), or "-"."""
        failures = edge.plugins_not_loaded or {}
        shown = "; ".join(f"{key} ({reason})" for key, reason in failures.items()) or "-"
        more = edge.plugins_not_loaded_total - len(failures)
        return f"{shown} and {more} more" if more > 0 else shown

    @admin.action(description="Reload selected edges")
    def reload_edges(self, request, queryset) -> None:
        for edge in queryset:
            edge_reload_request(
                namespace=edge.namespace, edge_id=edge.edge_id, requested_by=request.user.get_username()
            )
        messages.success(request, f"Reload requested for {queryset.count()} edge(s).")

    @admin.action(description="Reload every edge of the selected edges' namespaces")
    def reload_namespaces(self, request, queryset) -> None:
        namespaces = sorted(set(queryset.values_list("namespace", flat=True)))
        for namespace in namespaces:
            edge_reload_request(namespace=namespace, requested_by=request.user.get_username())
        messages.success(
            request, f"Reload requested for namespace(s): {', '.join(n or '(global)' for n in namespaces)}."
        )


@admin.register(PublishedConfig)
class PublishedConfigAdmin(admin.ModelAdmin):
    list_display = ("namespace", "version", "checksum", "chunk_count", "total_bytes", "published_at")
    readonly_fields = [field.name for field in PublishedConfig._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(EdgeReloadRequest)
class EdgeReloadRequestAdmin(admin.ModelAdmin):
    list_display = ("namespace", "edge_id", "requested_by", "created_at", "published_at")
    readonly_fields = ("requested_by", "created_at", "published_at")
    fields = ("namespace", "edge_id", "requested_by", "created_at", "published_at")

    def save_model(self, request, obj, form, change) -> None:
        obj.requested_by = request.user.get_username()
        super().save_model(request, obj, form, change)
