"""Celery tasks of the scheduler: the beat-driven dispatcher and the execution of one claimed run.

Both are safe to receive twice (two beats, redelivery after a worker died): the dispatcher claims in PostgreSQL
and the executor only takes a run that is still pending (see `services.py`).
"""

from __future__ import annotations

from control_plane.config.celery import DISPATCH_TASK, EXECUTE_RUN_TASK, app

from . import services


@app.task(name=DISPATCH_TASK, ignore_result=True)
def dispatch() -> int:
    """Claim and enqueue every due fire time, then close runs whose worker vanished."""
    created = services.schedules_dispatch_due()
    services.schedule_runs_reap_stale()
    return len(created)


@app.task(name=EXECUTE_RUN_TASK, bind=True, ignore_result=True, acks_late=True)
def execute_run(self, run_id: int) -> str | None:
    """Execute one run; its status, duration and error land on the ScheduleRun row, not in a result backend."""
    run = services.schedule_run_execute(run_id=run_id, worker=self.request.hostname or "")
    return run.status if run is not None else None
