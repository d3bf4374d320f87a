"""The scheduler's services against the real PostgreSQL test database (no broker: enqueueing is recorded)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from control_plane.plugins.models import Plugin
from control_plane.schedules import conf, services
from control_plane.schedules.models import PluginSchedule, ScheduleRun
from control_plane.schedules.system_jobs import SYSTEM_JOBS, SystemJob

NOON = datetime(2025, 6, 2, 12, 0, 10, tzinfo=UTC)


@pytest.fixture
def plugin(db):
    return Plugin.objects.create(slug="reporter", name="Reporter", import_path="tests.schedules.sample_plugins:X")


@pytest.fixture
def enqueued(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(services, "_enqueue", lambda runs: sent.extend(run_id for run_id, _ in runs))
    return sent


def _schedule(plugin, **fields) -> PluginSchedule:
    defaults = {"schedule_id": "every-minute", "cron": "0 * * * * *"}
    return services.schedule_create(plugin=plugin, **{**defaults, **fields})


def _runs(schedule) -> list[ScheduleRun]:
    return list(ScheduleRun.objects.filter(schedule=schedule).order_by("scheduled_for"))


def test_system_jobs_exist_as_schedules_after_migrate(db):
    rows = {s.system_job: s for s in PluginSchedule.objects.filter(plugin__isnull=True)}
    assert set(rows) == set(SYSTEM_JOBS)
    assert all(row.enabled and row.next_run_at for row in rows.values())


def test_dispatch_claims_each_fire_time_once(plugin, enqueued):
    schedule = _schedule(plugin)
    PluginSchedule.objects.filter(pk=schedule.pk).update(next_run_at=NOON - timedelta(seconds=10))
    first = services.schedules_dispatch_due(now=NOON)
    assert services.schedules_dispatch_due(now=NOON) == []
    assert [r.scheduled_for for r in _runs(schedule)] == [NOON - timedelta(seconds=10)]
    assert first == [r.pk for r in _runs(schedule)]  # enqueued after commit: see the concurrent test
    schedule.refresh_from_db()
    assert schedule.next_run_at == NOON + timedelta(seconds=50)


def test_the_database_refuses_a_second_run_of_a_fire_time(plugin):
    schedule = _schedule(plugin)
    assert services._claim_run(schedule, NOON, missed=0, now=NOON) is not None
    assert services._claim_run(schedule, NOON, missed=0, now=NOON) is None
    assert ScheduleRun.objects.filter(schedule=schedule).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatchers_create_one_run_per_fire_time(enqueued):
    plugin = Plugin.objects.create(slug="racer", name="Racer", import_path="tests.schedules.sample_plugins:X")
    schedule = _schedule(plugin, cron="* * * * * *")
    PluginSchedule.objects.filter(pk=schedule.pk).update(next_run_at=NOON - timedelta(seconds=20))
    barrier = threading.Barrier(4)
    created: list[int] = []

    def dispatcher():
        try:
            barrier.wait()
            created.extend(services.schedules_dispatch_due(now=NOON))
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fires = [r.scheduled_for for r in _runs(schedule)]
    assert len(fires) == 21 == len(set(fires)) == len(created)
    assert sorted(enqueued) == sorted(created)


def test_missed_fires_run_the_latest_once(plugin, enqueued):
    schedule = _schedule(plugin)
    PluginSchedule.objects.filter(pk=schedule.pk).update(next_run_at=NOON - timedelta(days=1, seconds=10))
    services.schedules_dispatch_due(now=NOON + timedelta(seconds=40))  # 12:00:00 is older than the grace
    (run,) = _runs(schedule)
    assert run.scheduled_for == NOON - timedelta(seconds=10)
    assert run.missed_fires == 24 * 60
    schedule.refresh_from_db()
    assert schedule.next_run_at == NOON + timedelta(seconds=50)


def test_late_fires_within_the_grace_all_run_and_older_ones_are_dropped(plugin, enqueued):
    schedule = _schedule(plugin, cron="*/10 * * * * *")
    PluginSchedule.objects.filter(pk=schedule.pk).update(next_run_at=NOON - timedelta(hours=1))
    services.schedules_dispatch_due(now=NOON)
    runs = _runs(schedule)
    grace_start = NOON - timedelta(seconds=conf.MISFIRE_GRACE_SECONDS)
    assert [r.scheduled_for for r in runs] == [t for t in _every_10s(grace_start, NOON)]
    assert runs[0].missed_fires == 360 - len(runs) + 1 and all(r.missed_fires == 0 for r in runs[1:])


def _every_10s(after: datetime, until: datetime) -> list[datetime]:
    t = after.replace(second=after.second - after.second % 10) + timedelta(seconds=10)
    out = []
    while t <= until:
        out.append(t)
        t += timedelta(seconds=10)
    return out


def test_catch_up_replays_every_missed_fire_in_bounded_batches(plugin, enqueued, monkeypatch):
    monkeypatch.setattr(conf, "CATCH_UP_MAX", 4)
    schedule = _schedule(plugin, cron="0 0 * * * *", catch_up=True)  # hourly
    PluginSchedule.objects.filter(pk=schedule.pk).update(next_run_at=datetime(2025, 6, 2, 6, tzinfo=UTC))
    services.schedules_dispatch_due(now=NOON)
    assert [r.scheduled_for.hour for r in _runs(schedule)] == [6, 7, 8, 9]
    services.schedules_dispatch_due(now=NOON)
    assert [r.scheduled_for.hour for r in _runs(schedule)] == [6, 7, 8, 9, 10, 11, 12]
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2025, 6, 2, 13, tzinfo=UTC)


def test_disabled_schedules_and_inactive_plugins_are_not_dispatched(plugin, enqueued):
    off = _schedule(plugin, schedule_id="off", enabled=False)
    on = _schedule(plugin, schedule_id="on")
    PluginSchedule.objects.filter(pk__in=[off.pk, on.pk]).update(next_run_at=NOON - timedelta(seconds=10))
    Plugin.objects.filter(pk=plugin.pk).update(active=False)
    services.schedules_dispatch_due(now=NOON)
    assert ScheduleRun.objects.filter(schedule__plugin=plugin).count() == 0


@pytest.fixture
def system_job(db, monkeypatch):
    def make(function: str) -> PluginSchedule:
        job = SystemJob("test_job", f"tests.schedules.jobs_for_tests:{function}", "0 * * * * *", 5, "test")
        monkeypatch.setitem(SYSTEM_JOBS, "test_job", job)
        schedule = PluginSchedule(
            system_job="test_job", schedule_id="test_job", name="t", cron=job.cron, timeout_seconds=job.timeout_seconds
        )
        return services.schedule_save(schedule, timing_changed=True)

    return make


def _manual_run(schedule) -> ScheduleRun:
    return services.schedule_run_now(schedule=schedule, triggered_by="alice")


def test_a_run_completes_with_its_result(system_job, enqueued):
    run = _manual_run(system_job("counts_rows"))
    assert run.trigger == ScheduleRun.Trigger.MANUAL and run.status == ScheduleRun.Status.PENDING
    done = services.schedule_run_execute(run_id=run.pk, worker="w1@host")
    assert done.status == ScheduleRun.Status.COMPLETED
    assert done.result == {"changed": 7} and done.worker == "w1@host"
    assert done.started_at <= done.finished_at and done.duration_ms is not None
    assert services.schedule_run_execute(run_id=run.pk) is None  # a second delivery does nothing


def test_a_failing_run_is_recorded_with_its_error(system_job, enqueued):
    run = services.schedule_run_execute(run_id=_manual_run(system_job("breaks")).pk)
    assert run.status == ScheduleRun.Status.FAILED
    assert run.error == "RuntimeError: retention table is locked"


def test_a_run_past_the_soft_time_limit_is_timed_out(system_job, enqueued):
    run = services.schedule_run_execute(run_id=_manual_run(system_job("overruns")).pk)
    assert run.status == ScheduleRun.Status.TIMED_OUT and "no answer within 5 s" in run.error


def test_a_missing_job_function_fails_loudly_at_run_time(system_job, enqueued):
    run = services.schedule_run_execute(run_id=_manual_run(system_job("does_not_exist")).pk)
    assert run.status == ScheduleRun.Status.FAILED and "does_not_exist" in run.error


def test_overlap_skip_skips_while_a_run_is_running(system_job, enqueued):
    schedule = system_job("counts_rows")
    busy = _manual_run(schedule)
    ScheduleRun.objects.filter(pk=busy.pk).update(status=ScheduleRun.Status.RUNNING, started_at=NOON)
    run = _manual_run(schedule)
    assert services.schedule_run_execute(run_id=run.pk) is None
    run.refresh_from_db()
    assert run.status == ScheduleRun.Status.SKIPPED and busy.execution_id in run.error
    services.schedule_update(schedule=schedule, overlap_policy="allow")
    allowed = services.schedule_run_execute(run_id=_manual_run(schedule).pk)
    assert allowed.status == ScheduleRun.Status.COMPLETED


def test_reaper_closes_runs_whose_worker_vanished(system_job, enqueued):
    schedule = system_job("counts_rows")
    lost, fresh, forgotten = _manual_run(schedule), _manual_run(schedule), _manual_run(schedule)
    now = datetime.now(UTC)
    ScheduleRun.objects.filter(pk=lost.pk).update(status="running", started_at=now - timedelta(seconds=5 + 61))
    ScheduleRun.objects.filter(pk=fresh.pk).update(status="running", started_at=now - timedelta(seconds=30))
    ScheduleRun.objects.filter(pk=forgotten.pk).update(created_at=now - timedelta(hours=2))
    assert services.schedule_runs_reap_stale(now=now) == 2
    statuses = {r.pk: r.status for r in ScheduleRun.objects.filter(schedule=schedule)}
    assert statuses == {lost.pk: "timed_out", fresh.pk: "running", forgotten.pk: "failed"}


def test_history_is_bounded_per_schedule(plugin):
    schedule = _schedule(plugin)
    for minute in range(10):
        services._claim_run(schedule, NOON + timedelta(minutes=minute), missed=0, now=NOON)
    ScheduleRun.objects.filter(schedule=schedule).update(status=ScheduleRun.Status.COMPLETED)
    ScheduleRun.objects.filter(schedule=schedule, scheduled_for=NOON).update(status=ScheduleRun.Status.RUNNING)
    assert services.schedule_runs_prune(schedule_id=schedule.pk, keep=3) == 6
    kept = sorted((r.scheduled_for - NOON).seconds // 60 for r in _runs(schedule))
    assert kept == [0, 7, 8, 9]  # the newest three, and the one still running


def test_invalid_timing_is_refused_with_field_messages(plugin):
    with pytest.raises(ValidationError) as error:
        _schedule(plugin, cron="0 25 * * *", timezone="Europe/Atlantis")
    assert set(error.value.message_dict) == {"cron", "timezone"}


def test_next_run_follows_cron_and_timezone_changes(plugin):
    schedule = _schedule(plugin, cron="0 3 * * *", timezone="Europe/Oslo")
    assert schedule.next_run_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Oslo")).hour == 3
    schedule = services.schedule_update(schedule=schedule, timezone="America/New_York")
    assert schedule.next_run_at.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York")).hour == 3
    assert services.schedule_update(schedule=schedule, enabled=False).next_run_at is None


def test_manifest_sync_creates_updates_and_retires_schedules(plugin):
    plugin.manifest = {
        "schedules": [
            {
                "id": "nightly",
                "name": "Nightly",
                "cron": "0 3 * * *",
                "timezone": "Europe/Oslo",
                "timeout_seconds": 120,
            },
            {"id": "hourly", "cron": "15 * * * *", "config": {"k": "v"}},
        ]
    }
    services.schedules_sync_from_manifest(plugin=plugin)
    rows = {s.schedule_id: s for s in plugin.schedules.all()}
    assert rows["nightly"].timezone == "Europe/Oslo" and rows["nightly"].timeout_seconds == 120
    assert rows["hourly"].config == {"k": "v"} and rows["hourly"].timezone == "UTC"
    assert all(s.from_manifest and s.enabled for s in rows.values())
    services.schedule_update(schedule=rows["nightly"], enabled=False)  # the operator's choice survives

    plugin.manifest = {"schedules": [{"id": "nightly", "cron": "0 4 * * *", "timezone": "Europe/Oslo"}]}
    services.schedules_sync_from_manifest(plugin=plugin)
    rows = {s.schedule_id: s for s in plugin.schedules.all()}
    assert rows["nightly"].cron == "0 4 * * *" and not rows["nightly"].enabled
    assert not rows["hourly"].enabled and not rows["hourly"].from_manifest


def test_manifest_with_a_bad_schedule_is_refused_naming_it(plugin):
    plugin.manifest = {"schedules": [{"id": "broken", "cron": "every day"}]}
    with pytest.raises(ValidationError, match="'reporter' schedule 'broken'"):
        services.schedules_sync_from_manifest(plugin=plugin)


def test_system_jobs_cannot_be_deleted(db):
    schedule = PluginSchedule.objects.get(system_job="kv_purge_expired")
    with pytest.raises(ValidationError, match="cannot be deleted"):
        services.schedule_delete(schedule=schedule)
