"""API shapes of schedules and runs."""

from __future__ import annotations

from rest_framework import serializers

from . import selectors
from .models import PluginSchedule, ScheduleRun


class PluginScheduleSerializer(serializers.ModelSerializer):
    plugin = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=PluginSchedule._meta.get_field("plugin").related_model.objects.all(),
        allow_null=True,  # built-in system jobs have no plugin; a schedule created here needs one (validate_plugin)
    )
    upcoming_fire_times = serializers.SerializerMethodField()

    class Meta:
        model = PluginSchedule
        fields = (
            "id",
            "plugin",
            "system_job",
            "schedule_id",
            "name",
            "cron",
            "timezone",
            "enabled",
            "config",
            "timeout_seconds",
            "overlap_policy",
            "catch_up",
            "from_manifest",
            "next_run_at",
            "last_run_at",
            "upcoming_fire_times",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("system_job", "from_manifest", "next_run_at", "last_run_at", "created_at", "updated_at")
        validators = []  # uniqueness is checked by the model's constraints in the service, with a field message

    def validate_plugin(self, plugin):
        if plugin is None:
            raise serializers.ValidationError("Give the slug of the plugin that runs this schedule.")
        return plugin

    def get_upcoming_fire_times(self, obj: PluginSchedule) -> list[str]:
        as_text = serializers.DateTimeField().to_representation
        return [as_text(t) for t in selectors.schedule_upcoming_fire_times(obj, count=5)]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple) and hasattr(self.instance, "pk"):
            fields["plugin"].read_only = True  # identity is fixed once created
            fields["schedule_id"].read_only = True
        return fields


class ScheduleRunSerializer(serializers.ModelSerializer):
    schedule_id = serializers.CharField(source="schedule.schedule_id", read_only=True)
    plugin = serializers.CharField(source="schedule.plugin.slug", read_only=True, default=None)

    class Meta:
        model = ScheduleRun
        fields = (
            "id",
            "schedule",
            "schedule_id",
            "plugin",
            "execution_id",
            "scheduled_for",
            "trigger",
            "triggered_by",
            "status",
            "missed_fires",
            "created_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "worker",
            "error",
            "result",
        )
        read_only_fields = fields
