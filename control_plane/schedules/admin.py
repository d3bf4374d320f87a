"""Admin of schedules: upcoming fire times in the schedule's own timezone, "run now", and filtered run history."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import selectors, services
from .models import PluginSchedule, ScheduleRun

_TIMING_FIELDS = {"cron", "timezone", "enabled"}


def _local(instant, zone_name: str) -> str:
    try:
        zone = ZoneInfo(zone_name)
    except Exception:
        zone = ZoneInfo("UTC")
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


@admin.register(PluginSchedule)
class PluginScheduleAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "name",
        "cron",
        "timezone",
        "enabled",
        "overlap_policy",
        "next_fire",
        "last_run_at",
        "runs_link",
    )
    list_filter = ("enabled", "overlap_policy", "catch_up", "from_manifest", "plugin", "system_job")
    search_fields = ("schedule_id", "name", "plugin__slug", "system_job")
    readonly_fields = ("system_job", "from_manifest", "upcoming_fire_times", "next_run_at", "last_run_at", "runs_link")
    actions = ("run_now", "enable", "disable")
    fieldsets = (
        (None, {"fields": ("plugin", "system_job", "schedule_id", "name", "enabled", "from_manifest")}),
        ("Timing", {"fields": ("cron", "timezone", "upcoming_fire_times", "catch_up")}),
        ("Execution", {"fields": ("timeout_seconds", "overlap_policy", "config")}),
        ("State", {"fields": ("next_run_at", "last_run_at", "runs_link")}),
    )

    def get_queryset(self, request):
        return selectors.schedule_list()

    def get_urls(self):
        view = self.admin_site.admin_view(self.usage_reports_view)
        return [path("usage-reports/", view, name="schedules_usage_reports"), *super().get_urls()]

    def usage_reports_view(self, request):
        """The latest report of each usage-report plugin instance, read from its studio KV namespace."""
        from control_plane.kv.models import KVEntry
        from control_plane.plugins.models import Plugin

        slugs = Plugin.objects.filter(
            Q(entry_point="usage-report") | Q(import_path__startswith="plugins.usage_report")
        ).values_list("slug", flat=True)
        reports = []
        for entry in KVEntry.objects.filter(plugin_slug__in=list(slugs), key="report:latest").order_by("plugin_slug"):
            reports.append((entry.plugin_slug, json.loads(bytes(entry.value))))
        context = {**self.admin_site.each_context(request), "title": "Usage reports", "reports": reports}
        return TemplateResponse(request, "admin/schedules/usage_report.html", context)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.pk:
            fields += ["plugin", "schedule_id"]  # identity: a plugin refers to its schedules by id
        return fields

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.system_job:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="Next fire")
    def next_fire(self, obj: PluginSchedule) -> str:
        return _local(obj.next_run_at, obj.timezone) if obj.next_run_at and obj.enabled else "-"

    @admin.display(description="Next fire times")
    def upcoming_fire_times(self, obj: PluginSchedule):
        if obj is None or not obj.pk:
            return "Shown after saving."
        times = selectors.schedule_upcoming_fire_times(obj, count=5)
        if not times:
            return "None (disabled, or the expression never fires again)."
        return format_html_join(
            "",
            "<div>{} <span style='color:#888'>({} UTC)</span></div>",
            ((_local(t, obj.timezone), t.strftime("%Y-%m-%d %H:%M:%S")) for t in times),
        )

    @admin.display(description="Runs")
    def runs_link(self, obj: PluginSchedule):
        if obj is None or not obj.pk:
            return "-"
        url = reverse("admin:schedules_schedulerun_changelist") + f"?schedule__id__exact={obj.pk}"
        return format_html('<a href="{}">history</a>', url)

    def save_model(self, request, obj, form, change):
        services.schedule_save(obj, timing_changed=not change or bool(_TIMING_FIELDS & set(form.changed_data)))

    @admin.action(description="Run now")
    def run_now(self, request, queryset):
        queued = 0
        for schedule in queryset:
            try:
                services.schedule_run_now(schedule=schedule, triggered_by=request.user.get_username())
                queued += 1
            except ValidationError as exc:
                self.message_user(request, f"{schedule}: {'; '.join(exc.messages)}", messages.ERROR)
        if queued:
            self.message_user(request, f"Queued {queued} run(s); see the run history for their outcome.")

    @admin.action(description="Enable")
    def enable(self, request, queryset):
        for schedule in queryset:
            services.schedule_update(schedule=schedule, enabled=True)
        self.message_user(request, f"Enabled: {len(queryset)}")

    @admin.action(description="Disable")
    def disable(self, request, queryset):
        for schedule in queryset:
            services.schedule_update(schedule=schedule, enabled=False)
        self.message_user(request, f"Disabled: {len(queryset)}")


@admin.register(ScheduleRun)
class ScheduleRunAdmin(admin.ModelAdmin):
    list_display = (
        "schedule",
        "scheduled_for",
        "trigger",
        "status",
        "started_at",
        "finished_at",
        "duration_ms",
        "missed_fires",
        "worker",
        "short_error",
    )
    list_filter = ("status", "trigger", "schedule__plugin", "schedule__system_job", "schedule")
    search_fields = ("execution_id", "schedule__schedule_id", "schedule__plugin__slug", "error")
    date_hierarchy = "scheduled_for"
    list_select_related = ("schedule", "schedule__plugin")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in ScheduleRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Error")
    def short_error(self, obj: ScheduleRun) -> str:
        return (obj.error[:80] + "...") if len(obj.error) > 80 else obj.error
