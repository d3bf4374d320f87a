"""Schedules and their runs.

A `PluginSchedule` is either a plugin's cron schedule (from its manifest or added by an operator) or one of the
control plane's own periodic jobs (`system_job`, see `system_jobs.py`); both go through the same dispatcher, claim
and history, so an operator sees and tunes them in one place.

Exactly one run per (schedule, fire time) is a database fact, not a convention: `ScheduleRun` has a unique
constraint on (schedule, scheduled_for) for dispatched runs, so however many beats and workers race, the second
insert of the same fire time does nothing.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from control_plane.config.json_fields import JSONObjectField

from .cron import CronError, validate_cron, validate_timezone

SCHEDULE_ID = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", "Use letters, digits, '.', '-' and '_'.")


class PluginSchedule(models.Model):
    class OverlapPolicy(models.TextChoices):
        SKIP = "skip", "Skip a fire while the previous run is still running"
        ALLOW = "allow", "Allow runs to overlap"

    plugin = models.ForeignKey(
        "plugins.Plugin", on_delete=models.CASCADE, related_name="schedules", null=True, blank=True
    )
    system_job = models.CharField(
        max_length=64, blank=True, default="", help_text="A built-in periodic job of the control plane (no plugin)"
    )
    schedule_id = models.CharField(
        max_length=100, validators=[SCHEDULE_ID], help_text="Stable id; the one in the plugin's manifest"
    )
    name = models.CharField(max_length=200)
    cron = models.CharField(
        max_length=200,
        help_text="5 fields (minute hour day month weekday) or 6 with a leading seconds field",
    )
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name, e.g. Europe/Oslo")
    enabled = models.BooleanField(default=True)
    config = JSONObjectField(blank=True, help_text="Passed to the plugin as Schedule.config")
    timeout_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(86_400)]
    )
    overlap_policy = models.CharField(max_length=10, choices=OverlapPolicy.choices, default=OverlapPolicy.SKIP)
    catch_up = models.BooleanField(
        default=False,
        help_text="After downtime, run every missed fire time (bounded) instead of only the latest one",
    )
    from_manifest = models.BooleanField(
        default=False, editable=False, help_text="Created from the plugin's manifest (kept in sync with it)"
    )
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["plugin__slug", "system_job", "schedule_id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(plugin__isnull=False) & Q(system_job="")) | (Q(plugin__isnull=True) & ~Q(system_job="")),
                name="schedule_plugin_xor_system_job",
            ),
            models.UniqueConstraint(
                fields=["plugin", "schedule_id"], condition=Q(plugin__isnull=False), name="schedule_unique_per_plugin"
            ),
            models.UniqueConstraint(fields=["system_job"], condition=~Q(system_job=""), name="schedule_unique_job"),
        ]
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="schedule_due_idx")]

    def __str__(self) -> str:
        owner = self.plugin.slug if self.plugin_id else "system"
        return f"{owner}/{self.schedule_id}"

    @property
    def owner_label(self) -> str:
        return self.plugin.slug if self.plugin_id else f"system: {self.system_job}"

    def clean(self) -> None:
        """Cron and timezone checked on every save path (admin form, API, manifest) with a message per field."""
        errors: dict[str, str] = {}
        try:
            self.cron = validate_cron(self.cron)
        except CronError as exc:
            errors["cron"] = str(exc)
        try:
            validate_timezone(self.timezone)
        except CronError as exc:
            errors["timezone"] = str(exc)
        if not self.plugin_id and not self.system_job:
            errors["plugin"] = "Choose the plugin whose scheduled task this runs."
        if errors:
            raise ValidationError(errors)


class ScheduleRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        TIMED_OUT = "timed_out", "Timed out"
        SKIPPED = "skipped", "Skipped (previous run still running)"

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.TIMED_OUT, Status.SKIPPED)

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Run now"

    schedule = models.ForeignKey(PluginSchedule, on_delete=models.CASCADE, related_name="runs")
    execution_id = models.CharField(
        max_length=32, unique=True, help_text="Passed to the plugin as Schedule.execution_id"
    )
    scheduled_for = models.DateTimeField(help_text="The fire time this run is for")
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    triggered_by = models.CharField(max_length=150, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    missed_fires = models.PositiveIntegerField(
        default=0, help_text="Earlier fire times that were missed (everything down) and folded into this run"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, default="")
    error = models.TextField(blank=True, default="")
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-scheduled_for", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "scheduled_for"],
                condition=Q(trigger="schedule"),
                name="schedule_run_once_per_fire_time",
            )
        ]
        indexes = [
            models.Index(fields=["schedule", "-scheduled_for"], name="schedule_run_history_idx"),
            models.Index(fields=["status", "started_at"], name="schedule_run_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule} @ {self.scheduled_for.isoformat()} ({self.status})"
