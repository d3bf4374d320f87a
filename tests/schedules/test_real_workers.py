"""Two beats and two Celery workers on a real Redis broker and the real (committed) test database.

One module-scoped scenario runs four schedules at once for about 24 seconds (seconds-field cron expressions keep it
short), then each test checks one property of what happened:
- `exact`: every second, quick: exactly one run and one execution per fire time, no fire time lost.
- `slow`: sleeps past its 1 s timeout: recorded as timed out while `exact` keeps completing on the same workers.
- `skip` / `allow`: every second, each run takes 1.6 s: skip never overlaps and records skipped runs; allow overlaps.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from control_plane.plugins.services import plugin_register
from control_plane.schedules import services
from control_plane.schedules.cron import fire_times
from control_plane.schedules.models import PluginSchedule, ScheduleRun
from control_plane.sync.models import ConfigChange

RUN_SECONDS = 24

# The scenario writes committed rows from a module-scoped fixture, outside any test's transaction. pytest-django
# creates the test database only for the aliases that the session's collected tests declare (marker or `db`
# fixture), so without this marker the file run on its own would query the unconfigured database. The tests
# themselves read only the scenario's in-memory results, so the per-test transaction is a no-op.
pytestmark = pytest.mark.django_db


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def scenario(celery_processes, django_db_blocker, tmp_path_factory):
    record = tmp_path_factory.mktemp("records") / "executions.jsonl"
    record.touch()
    with django_db_blocker.unblock():
        system_enabled = list(
            PluginSchedule.objects.filter(plugin__isnull=True, enabled=True).values_list("pk", flat=True)
        )
        PluginSchedule.objects.filter(pk__in=system_enabled).update(enabled=False)  # keep the system jobs out of it
        last_change = ConfigChange.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        plugin = plugin_register(
            data={
                "slug": "sched-recorder",
                "name": "sched recorder",
                "import_path": "tests.schedules.sample_plugins:RecordingScheduler",
            }
        )
        common = {"config": {"record_to": str(record)}}
        specs = {
            "exact": {"cron": "* * * * * *", "overlap_policy": "allow", "timeout_seconds": 10},
            "slow": {"cron": "*/3 * * * * *", "overlap_policy": "allow", "timeout_seconds": 1, "sleep_s": 4},
            "skip": {"cron": "* * * * * *", "overlap_policy": "skip", "timeout_seconds": 10, "sleep_s": 1.6},
            "allow": {"cron": "* * * * * *", "overlap_policy": "allow", "timeout_seconds": 10, "sleep_s": 1.6},
        }
        for name, spec in specs.items():
            config = {**common["config"], "sleep_s": spec.pop("sleep_s", 0)}
            services.schedule_create(plugin=plugin, schedule_id=name, enabled=False, config=config, **spec)

    celery_processes.worker("worker1")
    celery_processes.worker("worker2")
    celery_processes.beat("beat1")
    celery_processes.beat("beat2")
    celery_processes.wait_ready()

    with django_db_blocker.unblock():
        started = timezone.now()
        for schedule in PluginSchedule.objects.filter(plugin=plugin):
            services.schedule_update(schedule=schedule, enabled=True)
        time.sleep(RUN_SECONDS)
        for schedule in PluginSchedule.objects.filter(plugin=plugin):
            services.schedule_update(schedule=schedule, enabled=False)
        stopped = timezone.now()
        _wait(
            lambda: (
                not ScheduleRun.objects.filter(
                    schedule__plugin=plugin, status__in=[ScheduleRun.Status.PENDING, ScheduleRun.Status.RUNNING]
                ).exists()
            ),
            30,
            "all runs to finish",
        )
        runs: dict[str, list[dict]] = {name: [] for name in specs}
        for run in ScheduleRun.objects.filter(schedule__plugin=plugin).select_related("schedule").order_by("id"):
            runs[run.schedule.schedule_id].append(
                {
                    "execution_id": run.execution_id,
                    "scheduled_for": run.scheduled_for,
                    "status": run.status,
                    "error": run.error,
                    "started_at": run.started_at,
                    "finished_at": run.finished_at,
                    "duration_ms": run.duration_ms,
                    "worker": run.worker,
                }
            )
        plugin.delete()
        # Committed rows outlive this module: give later tests in the session their system jobs back, and take the
        # outbox rows registering the plugin wrote (global config changes) out again, or the first bridge another
        # test starts would publish them to every namespace it knows.
        PluginSchedule.objects.filter(pk__in=system_enabled).update(enabled=True)
        ConfigChange.objects.filter(pk__gt=last_change).delete()
    executions: dict[str, list[dict]] = {name: [] for name in specs}
    for line in record.read_text().splitlines():
        item = json.loads(line)
        executions[item["schedule"]].append(item)
    return {
        "runs": runs,
        "executions": executions,
        "window": (started, stopped),
        "alive": celery_processes.alive(),
        "logs": {name: celery_processes.log(name) for name in ("beat1", "beat2", "worker1", "worker2")},
    }


def test_both_beats_dispatched_and_processes_survived(scenario):
    for beat in ("beat1", "beat2"):
        assert scenario["logs"][beat].count("Scheduler: Sending due task schedules-dispatch") >= 10, beat
    assert all(scenario["alive"].values()), scenario["alive"]


def test_exactly_one_run_per_fire_time_with_two_beats_and_two_workers(scenario):
    runs = scenario["runs"]["exact"]
    executions = scenario["executions"]["exact"]
    fires = [run["scheduled_for"] for run in runs]
    assert len(fires) >= 20
    assert len(set(fires)) == len(fires), "a fire time was claimed twice"
    # No fire time lost between the first and the last claimed one.
    expected = fire_times("* * * * * *", "UTC", after=min(fires) - timedelta(seconds=1), until=max(fires))
    assert sorted(fires) == expected
    assert {run["status"] for run in runs} == {ScheduleRun.Status.COMPLETED}
    # The plugin itself ran once per run: one execution line per execution id and per fire time.
    assert sorted(e["execution_id"] for e in executions) == sorted(run["execution_id"] for run in runs)
    assert len({e["scheduled_for"] for e in executions}) == len(executions)
    assert {run["worker"].split("@")[0] for run in runs} == {"worker1", "worker2"}


def test_run_over_its_timeout_is_timed_out_and_workers_stay_healthy(scenario):
    slow = scenario["runs"]["slow"]
    assert len(slow) >= 5
    assert {run["status"] for run in slow} == {ScheduleRun.Status.TIMED_OUT}
    for run in slow:
        assert "no answer within 1s" in run["error"]
        assert run["duration_ms"] >= 900  # not recorded before its 1 s timeout could fire
    # The runs sleep 4 s: none may have reached its end, so the timeout really cut them off.
    assert scenario["executions"]["slow"] == [], "a timed-out execution kept running to its end"
    # Each worker that hit a timeout went on completing other runs afterwards. Checked from each worker's first
    # timeout: one close to the end of the window may be followed by only one or two `exact` fires, and those may
    # all have gone to the other worker without anything being wrong.
    exact = scenario["runs"]["exact"]
    first_timeout: dict[str, dict] = {}
    for run in sorted(slow, key=lambda r: r["finished_at"])[:-1]:
        first_timeout.setdefault(run["worker"], run)
    for worker, run in first_timeout.items():
        later = [r for r in exact if r["worker"] == worker and r["started_at"] > run["finished_at"]]
        assert later and all(r["status"] == ScheduleRun.Status.COMPLETED for r in later), (
            run,
            [(r["worker"], r["started_at"], r["status"]) for r in exact if r["started_at"] > run["started_at"]],
        )


def _overlaps(executions: list[dict]) -> int:
    spans = sorted((e["start"], e["end"]) for e in executions)
    return sum(1 for (_, end), (start, _) in zip(spans, spans[1:], strict=False) if start < end)


def test_overlap_skip_never_overlaps_and_records_skips(scenario):
    runs = scenario["runs"]["skip"]
    completed = [r for r in runs if r["status"] == ScheduleRun.Status.COMPLETED]
    skipped = [r for r in runs if r["status"] == ScheduleRun.Status.SKIPPED]
    assert len(completed) >= 5 and len(skipped) >= 5
    assert all("still running" in r["error"] for r in skipped)
    assert _overlaps(scenario["executions"]["skip"]) == 0
    assert len(scenario["executions"]["skip"]) == len(completed)


def test_overlap_allow_runs_every_fire_concurrently(scenario):
    runs = scenario["runs"]["allow"]
    assert len(runs) >= 20
    assert {r["status"] for r in runs} == {ScheduleRun.Status.COMPLETED}
    assert _overlaps(scenario["executions"]["allow"]) >= 10
