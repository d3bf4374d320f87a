"""Scheduled plugin runs through the studio plugin host: the schedule's timeout is the one that counts."""

from __future__ import annotations

import pytest

from control_plane.plugins.services import plugin_register
from control_plane.schedules import services
from control_plane.schedules.models import ScheduleRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def enqueued(monkeypatch):
    """Runs are executed by the test itself (synchronously), not sent to a broker."""
    sent: list[int] = []
    monkeypatch.setattr(services, "_enqueue", lambda runs: sent.extend(run_id for run_id, _ in runs))
    return sent


def _run(*, plugin_timeout_ms: int, schedule_timeout_s: int, sleep_s: float) -> ScheduleRun:
    plugin = plugin_register(
        data={
            "slug": "slow",
            "import_path": "control_plane.plugins.tests.plugins:SlowScheduler",
            "timeout_ms": plugin_timeout_ms,
        }
    )
    schedule = services.schedule_create(
        plugin=plugin,
        schedule_id="nightly",
        cron="0 3 * * *",
        timeout_seconds=schedule_timeout_s,
        config={"sleep_s": sleep_s},
    )
    run = services.schedule_run_now(schedule=schedule)
    done = services.schedule_run_execute(run_id=run.pk, worker="test")
    assert done is not None
    return done


def test_a_schedule_may_run_longer_than_the_plugins_own_call_timeout():
    run = _run(plugin_timeout_ms=200, schedule_timeout_s=5, sleep_s=0.6)
    assert (run.status, run.error) == (ScheduleRun.Status.COMPLETED, "")
    assert run.duration_ms >= 600


def test_a_schedule_timeout_shorter_than_the_plugins_still_times_the_run_out():
    run = _run(plugin_timeout_ms=30_000, schedule_timeout_s=1, sleep_s=3)
    assert run.status == ScheduleRun.Status.TIMED_OUT
    assert "no answer within 1s" in run.error
    assert run.duration_ms < 2500
