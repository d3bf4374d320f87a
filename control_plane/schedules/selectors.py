"""Reads of the schedules domain."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from .cron import CronError, next_fire_times
from .models import PluginSchedule, ScheduleRun


def schedule_upcoming_fire_times(schedule: PluginSchedule, *, count: int = 5) -> list[datetime]:
    """The next fire instants (UTC) of the schedule as it is saved; empty when disabled or invalid."""
    if not schedule.enabled:
        return []
    try:
        return next_fire_times(schedule.cron, schedule.timezone, after=timezone.now(), count=count)
    except CronError:
        return []


def schedule_list() -> QuerySet[PluginSchedule]:
    return PluginSchedule.objects.select_related("plugin")


def schedule_run_list() -> QuerySet[ScheduleRun]:
    return ScheduleRun.objects.select_related("schedule", "schedule__plugin")
