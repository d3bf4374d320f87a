"""Writes of the schedules domain: schedules, the dispatcher's claim, run execution and history upkeep.

How exactly-once works, whatever the number of beats and workers:
1. `schedules_dispatch_due` (every beat tick, on any worker) locks due schedules with
   `SELECT ... FOR UPDATE SKIP LOCKED`, so two dispatchers never plan the same schedule at once, and advances
   `next_run_at` in the same transaction, so the next dispatcher does not see the fire again.
2. Each fire time becomes a `ScheduleRun` row through `INSERT ... ON CONFLICT DO NOTHING` on the unique
   (schedule, scheduled_for) constraint: a fire time can never have two runs, even if step 1 were bypassed.
3. `schedule_run_execute` moves the run from pending to running under a row lock, so a message delivered twice
   (acks_late redelivery after a worker died, a duplicated publish) executes once.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import DurationField, ExpressionWrapper, F, Q, Value
from django.utils import timezone

from shared_sdk.context import Context
from shared_sdk.errors import PluginCallError
from shared_sdk.messages import Runtime, Schedule

from . import conf
from .cron import CronError, fire_times, latest_fire_at_or_before, next_fire_times, validate_cron, validate_timezone
from .models import PluginSchedule, ScheduleRun
from .system_jobs import SYSTEM_JOBS

logger = logging.getLogger(__name__)

_DISPATCH_BATCH = 200
_MISSED_COUNT_CAP = 10_000
_ERROR_MAX_CHARS = 4000
_EDITABLE_FIELDS = (
    "name",
    "cron",
    "timezone",
    "enabled",
    "config",
    "timeout_seconds",
    "overlap_policy",
    "catch_up",
)


# ------------------------------------------------------------------------------------------------------------------
# Schedules
# ------------------------------------------------------------------------------------------------------------------


def schedule_clean_timing(*, cron: str, timezone_name: str) -> tuple[str, str]:
    """The normalised cron expression and timezone, or a ValidationError keyed by field (admin and API show it)."""
    errors: dict[str, str] = {}
    try:
        cron = validate_cron(cron)
    except CronError as exc:
        errors["cron"] = str(exc)
    try:
        validate_timezone(timezone_name)
    except CronError as exc:
        errors["timezone"] = str(exc)
    if errors:
        raise ValidationError(errors)
    return cron, timezone_name


def schedule_compute_next_run(schedule: PluginSchedule, *, after: datetime) -> datetime | None:
    upcoming = next_fire_times(schedule.cron, schedule.timezone, after=after, count=1)
    return upcoming[0] if upcoming else None


def schedule_save(schedule: PluginSchedule, *, timing_changed: bool) -> PluginSchedule:
    """Validate and save; recompute the next fire time when cron, timezone or enabled changed."""
    schedule.full_clean()  # runs PluginSchedule.clean(): cron and timezone validated with field messages
    if timing_changed or schedule.next_run_at is None:
        schedule.next_run_at = schedule_compute_next_run(schedule, after=timezone.now()) if schedule.enabled else None
    schedule.save()
    return schedule


@transaction.atomic
def schedule_create(*, plugin, schedule_id: str, name: str = "", cron: str, **fields: Any) -> PluginSchedule:
    unknown = set(fields) - set(_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown schedule fields: {', '.join(sorted(unknown))}")
    schedule = PluginSchedule(plugin=plugin, schedule_id=schedule_id, name=name or schedule_id, cron=cron, **fields)
    return schedule_save(schedule, timing_changed=True)


@transaction.atomic
def schedule_update(*, schedule: PluginSchedule, **fields: Any) -> PluginSchedule:
    unknown = set(fields) - set(_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown schedule fields: {', '.join(sorted(unknown))}")
    timing_changed = any(
        key in fields and fields[key] != getattr(schedule, key) for key in ("cron", "timezone", "enabled")
    )
    for key, value in fields.items():
        setattr(schedule, key, value)
    return schedule_save(schedule, timing_changed=timing_changed)


def schedule_delete(*, schedule: PluginSchedule) -> None:
    if schedule.system_job:
        raise ValidationError("The control plane's own jobs cannot be deleted; disable them instead.")
    schedule.delete()


@transaction.atomic
def schedules_sync_from_manifest(*, plugin) -> list[PluginSchedule]:
    """Make the plugin's schedules match its manifest (called by the plugins service on register/update).

    The manifest owns what it declares (name, cron, timezone, timeout, config); the operator owns `enabled`
    after creation, so disabling a schedule in the admin survives re-registration. A schedule that disappeared
    from the manifest is disabled, not deleted, so its history stays readable.
    """
    raw = (plugin.manifest or {}).get("schedules") or []
    try:
        declared = msgspec.convert(raw, list[Schedule])
    except msgspec.ValidationError as exc:
        raise ValidationError(f"Plugin {plugin.slug!r} manifest has invalid schedules: {exc}") from None
    existing = {s.schedule_id: s for s in PluginSchedule.objects.select_for_update().filter(plugin=plugin)}
    seen: set[str] = set()
    synced: list[PluginSchedule] = []
    for item in declared:
        if not item.id:
            raise ValidationError(f"Plugin {plugin.slug!r} manifest has a schedule without an id.")
        if item.id in seen:
            raise ValidationError(f"Plugin {plugin.slug!r} manifest declares schedule {item.id!r} twice.")
        seen.add(item.id)
        try:
            cron, zone = schedule_clean_timing(cron=item.cron, timezone_name=item.timezone or "UTC")
        except ValidationError as exc:
            raise ValidationError(f"Plugin {plugin.slug!r} schedule {item.id!r}: {'; '.join(exc.messages)}") from None
        values: dict[str, Any] = {
            "name": item.name or item.id,
            "cron": cron,
            "timezone": zone,
            "timeout_seconds": item.timeout_seconds,
            "config": dict(item.config),
        }
        schedule = existing.get(item.id)
        if schedule is None:
            schedule = schedule_create(plugin=plugin, schedule_id=item.id, enabled=item.enabled, **values)
            PluginSchedule.objects.filter(pk=schedule.pk).update(from_manifest=True)
            schedule.from_manifest = True
        else:
            schedule.from_manifest = True
            schedule = schedule_update(schedule=schedule, **values)
        synced.append(schedule)
    for schedule_id, schedule in existing.items():
        if schedule_id not in seen and schedule.from_manifest:
            schedule.from_manifest = False
            schedule_update(schedule=schedule, enabled=False)
    return synced


def system_schedules_ensure() -> int:
    """Create the rows of the control plane's own jobs that do not exist yet; operator edits are kept."""
    created = 0
    for job in SYSTEM_JOBS.values():
        if PluginSchedule.objects.filter(system_job=job.name).exists():
            continue
        schedule = PluginSchedule(
            system_job=job.name,
            schedule_id=job.name,
            name=job.description,
            cron=job.cron,
            timeout_seconds=job.timeout_seconds,
            overlap_policy=PluginSchedule.OverlapPolicy.SKIP,
        )
        schedule_save(schedule, timing_changed=True)
        created += 1
    return created


# ------------------------------------------------------------------------------------------------------------------
# Dispatch: due fire times -> claimed runs -> Celery tasks
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    fires: list[datetime]
    missed: int  # fires dropped by the missed-fire policy, reported on the first planned run
    next_run_at: datetime | None


def _plan(schedule: PluginSchedule, now: datetime) -> _Plan:
    assert schedule.next_run_at is not None  # only due schedules are planned
    after = schedule.next_run_at - timedelta(microseconds=1)
    cron, zone = schedule.cron, schedule.timezone
    if schedule.catch_up:
        # Replay oldest first, a bounded batch per tick; the next tick continues where this one stopped.
        fires = fire_times(cron, zone, after=after, until=now, limit=conf.CATCH_UP_MAX)
        resume = fires[-1] if len(fires) == conf.CATCH_UP_MAX else now
        return _Plan(fires, 0, schedule_compute_next_run(schedule, after=resume))
    grace_start = now - timedelta(seconds=conf.MISFIRE_GRACE_SECONDS)
    if schedule.next_run_at > grace_start:  # only late, not missed: every fire runs
        return _Plan(fire_times(cron, zone, after=after, until=now), 0, schedule_compute_next_run(schedule, after=now))
    recent = fire_times(cron, zone, after=grace_start, until=now)
    missed_count = len(fire_times(cron, zone, after=after, until=grace_start, limit=_MISSED_COUNT_CAP))
    if recent:
        fires, missed = recent, missed_count
    else:
        latest = latest_fire_at_or_before(cron, zone, moment=grace_start, after=after)
        fires, missed = ([latest], max(missed_count - 1, 0)) if latest else ([], 0)
    return _Plan(fires, missed, schedule_compute_next_run(schedule, after=now))


_INSERT_RUN_SQL = f"""
    INSERT INTO {ScheduleRun._meta.db_table}
        (schedule_id, execution_id, scheduled_for, trigger, triggered_by, status, missed_fires,
         created_at, worker, error, result)
    VALUES (%s, %s, %s, %s, '', %s, %s, %s, '', '', '{{}}'::jsonb)
    ON CONFLICT DO NOTHING
    RETURNING id
"""


def _claim_run(schedule: PluginSchedule, scheduled_for: datetime, *, missed: int, now: datetime) -> int | None:
    """Insert the run of this fire time unless it exists; the id when this call created it."""
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_RUN_SQL,
            [
                schedule.pk,
                uuid.uuid4().hex,
                scheduled_for,
                ScheduleRun.Trigger.SCHEDULE,
                ScheduleRun.Status.PENDING,
                missed,
                now,
            ],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def schedules_dispatch_due(*, now: datetime | None = None) -> list[int]:
    """Claim a run for every due fire time and enqueue it; returns the ids of the runs this call created."""
    now = now or timezone.now()
    created: list[tuple[int, PluginSchedule]] = []
    with transaction.atomic():
        due = list(
            PluginSchedule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("plugin")
            .filter(enabled=True)
            .filter(Q(next_run_at__lte=now) | Q(next_run_at__isnull=True))
            .filter(Q(plugin__isnull=True) | Q(plugin__active=True))
            .order_by(F("next_run_at").asc(nulls_first=True))[:_DISPATCH_BATCH]
        )
        for schedule in due:
            if schedule.next_run_at is None:  # enabled outside the services (e.g. a bulk update): start from now
                schedule.next_run_at = schedule_compute_next_run(schedule, after=now)
                schedule.save(update_fields=["next_run_at"])
                continue
            plan = _plan(schedule, now)
            for index, fire in enumerate(plan.fires):
                run_id = _claim_run(schedule, fire, missed=plan.missed if index == 0 else 0, now=now)
                if run_id is not None:
                    created.append((run_id, schedule))
            if plan.missed:
                logger.warning("schedule %s: %d missed fire(s) skipped (no catch-up)", schedule, plan.missed)
            schedule.next_run_at = plan.next_run_at
            schedule.save(update_fields=["next_run_at"])
        if created:
            transaction.on_commit(lambda: _enqueue(created))
    return [run_id for run_id, _ in created]


def _time_limits(schedule: PluginSchedule) -> dict[str, int]:
    """Celery's limits are the backstop behind the plugin host's own timeout: soft raises, hard kills the child."""
    soft = schedule.timeout_seconds if schedule.system_job else schedule.timeout_seconds + 5
    return {"soft_time_limit": soft, "time_limit": soft + 30}


def _enqueue(runs: Iterable[tuple[int, PluginSchedule]]) -> None:
    # Celery loads on the first enqueue, not in every process that imports the scheduler. The task goes by name:
    # `tasks` imports this module, so importing it back would close a circle.
    from control_plane.config.celery import EXECUTE_RUN_TASK, app

    for run_id, schedule in runs:
        limits = _time_limits(schedule)
        app.send_task(
            EXECUTE_RUN_TASK, args=[run_id], soft_time_limit=limits["soft_time_limit"], time_limit=limits["time_limit"]
        )


def schedule_run_now(*, schedule: PluginSchedule, triggered_by: str = "") -> ScheduleRun:
    """Queue an immediate run outside the cron rhythm (admin action, API); it obeys the overlap policy."""
    if schedule.plugin is not None and not schedule.plugin.active:
        raise ValidationError(f"Plugin {schedule.plugin.slug!r} is inactive; activate it before running its schedule.")
    with transaction.atomic():
        run = ScheduleRun.objects.create(
            schedule=schedule,
            execution_id=uuid.uuid4().hex,
            scheduled_for=timezone.now(),
            trigger=ScheduleRun.Trigger.MANUAL,
            triggered_by=triggered_by[:150],
        )
        transaction.on_commit(lambda: _enqueue([(run.pk, schedule)]))
    return run


# ------------------------------------------------------------------------------------------------------------------
# Execution
# ------------------------------------------------------------------------------------------------------------------


def _start(run_id: int, worker: str) -> tuple[ScheduleRun, PluginSchedule] | None:
    """Pending -> running (or skipped for overlap) under row locks; None when another delivery already took it."""
    with transaction.atomic():
        run = ScheduleRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != ScheduleRun.Status.PENDING:
            return None
        # Locking the schedule serialises starts of the same schedule, so the overlap check cannot race.
        schedule = (
            PluginSchedule.objects.select_for_update(of=("self",)).select_related("plugin").get(pk=run.schedule_id)
        )
        now = timezone.now()
        if schedule.overlap_policy == PluginSchedule.OverlapPolicy.SKIP:
            busy = (
                ScheduleRun.objects.filter(schedule=schedule, status=ScheduleRun.Status.RUNNING)
                .exclude(pk=run.pk)
                .order_by("started_at")
                .first()
            )
            if busy is not None:
                run.status = ScheduleRun.Status.SKIPPED
                run.finished_at = now
                run.worker = worker[:200]
                run.error = (
                    f"Skipped: run {busy.execution_id} (fire time {busy.scheduled_for.isoformat()}) still running."
                )
                run.save(update_fields=["status", "finished_at", "worker", "error"])
                return None
        run.status = ScheduleRun.Status.RUNNING
        run.started_at = now
        run.worker = worker[:200]
        run.save(update_fields=["status", "started_at", "worker"])
        PluginSchedule.objects.filter(pk=schedule.pk).update(last_run_at=now)
    return run, schedule


def _invoke(schedule: PluginSchedule, run: ScheduleRun) -> dict[str, Any]:
    if schedule.system_job:
        job = SYSTEM_JOBS.get(schedule.system_job)
        if job is None:
            raise LookupError(f"unknown system job {schedule.system_job!r}")
        changed = job.load()()
        return {"changed": changed} if isinstance(changed, int) else {}
    plugin = schedule.plugin
    if plugin is None:
        raise LookupError(f"schedule {schedule.pk} has neither a plugin nor a system job")
    from control_plane.plugins.runtime import call_plugin  # the studio plugin host starts on first use

    message = Schedule(
        id=schedule.schedule_id,
        name=schedule.name,
        cron=schedule.cron,
        timezone=schedule.timezone,
        enabled=schedule.enabled,
        timeout_seconds=schedule.timeout_seconds,
        config=dict(schedule.config or {}),
        execution_id=run.execution_id,
        scheduled_for=run.scheduled_for.timestamp(),
    )
    ctx = Context(
        runtime=Runtime.STUDIO,
        request_id=run.execution_id,
        namespace=plugin.namespace,
        metadata={"schedule_id": schedule.schedule_id, "trigger": run.trigger},
    )
    # The schedule's timeout replaces the plugin's own call timeout (Plugin.timeout_ms, sized for request-path
    # calls): a nightly job may need minutes where the plugin's other calls get seconds.
    call_plugin(
        plugin.slug,
        "execute_scheduled_task",
        message,
        ctx=ctx,
        call_timeout_s=float(schedule.timeout_seconds),
    )
    return {}


def _outcome(exc: BaseException, timeout_seconds: int) -> tuple[str, str]:
    if isinstance(exc, PluginCallError) and exc.kind == "timeout":
        return ScheduleRun.Status.TIMED_OUT, f"Timed out: {exc.detail or f'no answer within {timeout_seconds} s'}."
    if isinstance(exc, SoftTimeLimitExceeded | TimeoutError):
        return ScheduleRun.Status.TIMED_OUT, f"Timed out: no answer within {timeout_seconds} s."
    if isinstance(exc, PluginCallError):
        return ScheduleRun.Status.FAILED, f"{exc.kind}: {exc.detail}"[:_ERROR_MAX_CHARS]
    return ScheduleRun.Status.FAILED, f"{type(exc).__name__}: {exc}"[:_ERROR_MAX_CHARS]


def schedule_run_execute(*, run_id: int, worker: str = "") -> ScheduleRun | None:
    """Run one claimed run to its end; returns it, or None when it was skipped or already handled elsewhere."""
    started = _start(run_id, worker)
    if started is None:
        return None
    run, schedule = started
    clock = time.monotonic()
    status: str = ScheduleRun.Status.COMPLETED
    error, result = "", {}
    try:
        result = _invoke(schedule, run)
    except (Exception, SoftTimeLimitExceeded) as exc:
        status, error = _outcome(exc, schedule.timeout_seconds)
        log = logger.warning if status == ScheduleRun.Status.TIMED_OUT else logger.exception
        log("schedule %s run %s %s: %s", schedule, run.execution_id, status, error)
    duration_ms = int((time.monotonic() - clock) * 1000)
    finished = timezone.now()
    # Only a run still marked running is finished here: the reaper may have given up on it meanwhile.
    ScheduleRun.objects.filter(pk=run.pk, status=ScheduleRun.Status.RUNNING).update(
        status=status, finished_at=finished, duration_ms=duration_ms, error=error, result=result
    )
    schedule_runs_prune(schedule_id=schedule.pk)
    run.refresh_from_db()
    return run


# ------------------------------------------------------------------------------------------------------------------
# Upkeep
# ------------------------------------------------------------------------------------------------------------------


def schedule_runs_reap_stale(*, now: datetime | None = None) -> int:
    """Close runs whose worker vanished: running far past their timeout, or pending and never picked up."""
    now = now or timezone.now()
    deadline = ExpressionWrapper(
        F("started_at")
        + F("schedule__timeout_seconds") * Value(timedelta(seconds=1), output_field=DurationField())
        + Value(timedelta(seconds=conf.STALE_GRACE_SECONDS), output_field=DurationField()),
        output_field=DurationField(),
    )
    lost = (
        ScheduleRun.objects.filter(status=ScheduleRun.Status.RUNNING)
        .alias(deadline=deadline)
        .filter(deadline__lt=now)
        .update(
            status=ScheduleRun.Status.TIMED_OUT,
            finished_at=now,
            error="Timed out: the worker running it stopped answering (killed or lost).",
        )
    )
    never_started = ScheduleRun.objects.filter(
        status=ScheduleRun.Status.PENDING, created_at__lt=now - timedelta(seconds=conf.PENDING_EXPIRY_SECONDS)
    ).update(
        status=ScheduleRun.Status.FAILED,
        finished_at=now,
        error=f"Never picked up by a worker within {conf.PENDING_EXPIRY_SECONDS} s (are workers running?).",
    )
    return lost + never_started


def schedule_runs_prune(*, schedule_id: int, keep: int | None = None) -> int:
    """Delete finished runs beyond the newest `keep` of a schedule, so history stays bounded."""
    keep = conf.HISTORY_PER_SCHEDULE if keep is None else keep
    newest = ScheduleRun.objects.filter(schedule_id=schedule_id).order_by("-scheduled_for", "-id").values("pk")[:keep]
    deleted, _ = (
        ScheduleRun.objects.filter(schedule_id=schedule_id, status__in=ScheduleRun.FINISHED)
        .exclude(pk__in=newest)
        .delete()
    )
    return deleted
