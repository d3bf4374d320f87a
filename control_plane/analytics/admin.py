from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path

from control_plane.accounts.access import ALL
from control_plane.accounts.admin_access import request_user_access

from .models import AnalyticsEvent, BudgetUsageRecord, EdgePayloadRecord, ProxyLogRecord
from .selectors import usage_summary_rows


def _viewable_rows(request, rows: list[dict]) -> list[dict]:
    """The summary rows of the namespaces the user may view, as the records they were added up from."""
    allowed = request_user_access(request).viewable("analytics.edgepayloadrecord")
    return rows if allowed is ALL else [row for row in rows if row["namespace"] in allowed]


class _ReadOnly(admin.ModelAdmin):
    """Shipped records are facts from the edges: viewable, never edited."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AnalyticsEvent)
class AnalyticsEventAdmin(_ReadOnly):
    list_display = ("timestamp", "app_id", "llm_slug", "model", "status_code", "total_tokens", "cost", "latency_ms")
    list_filter = ("status_code", "vendor", "namespace", "streamed")
    search_fields = ("=request_id", "=record_id", "model", "llm_slug")  # ids: exact, on their index
    date_hierarchy = "timestamp"


@admin.register(BudgetUsageRecord)
class BudgetUsageRecordAdmin(_ReadOnly):
    list_display = ("timestamp", "app_id", "user_id", "llm_id", "tokens_used", "cost", "currency")
    search_fields = ("=request_id", "=record_id")
    date_hierarchy = "timestamp"


@admin.register(ProxyLogRecord)
class ProxyLogRecordAdmin(_ReadOnly):
    list_display = ("timestamp", "method", "path", "response_code", "app_id", "vendor")
    list_filter = ("response_code", "vendor")
    search_fields = ("=request_id", "=record_id", "path")
    exclude = ("request_body", "response_body")
    date_hierarchy = "timestamp"


@admin.register(EdgePayloadRecord)
class EdgePayloadRecordAdmin(_ReadOnly):
    list_display = ("received_timestamp", "plugin_slug", "edge_id", "namespace", "size", "delivered_at")
    list_filter = ("plugin_slug", "namespace")
    search_fields = ("record_id", "correlation_id", "edge_id")
    exclude = ("payload",)

    def get_urls(self):
        view = self.admin_site.admin_view(self.usage_summaries_view)
        return [path("usage-summaries/", view, name="analytics_usage_summaries"), *super().get_urls()]

    def usage_summaries_view(self, request):
        """Per-user usage the bundled usage_summary plugin's edge halves sent up (its studio half stored it)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Usage summaries from the edges",
            "rows": _viewable_rows(request, usage_summary_rows()),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "analytics/usage_summaries.html", context)
