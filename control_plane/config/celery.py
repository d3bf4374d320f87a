"""The Celery application: schedules and the control plane's periodic jobs run on it, with Redis as the broker.

Beat has a single entry: the schedules dispatcher, every `FJORDGATE_SCHEDULE_TICK_SECONDS`. Plugin schedules and
the control plane's own periodic jobs (budget roll-over, KV expiry, stale edges, analytics retention: see
`control_plane/schedules/system_jobs.py`) are all rows the dispatcher claims in PostgreSQL, so any number of beats
may run (no leader election) and each fire time still runs exactly once.
"""

import logging
import os

from celery import Celery
from celery.signals import after_setup_logger, worker_process_init

from control_plane.schedules import conf as schedule_conf

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "control_plane.config.settings")

app = Celery("fjordgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.beat_schedule = {
    "schedules-dispatch": {
        "task": "schedules.dispatch",
        "schedule": schedule_conf.TICK_SECONDS,
        # A tick nobody picked up soon is worthless (the next one covers it): never let ticks pile up in Redis.
        "options": {"expires": max(schedule_conf.TICK_SECONDS * 5, 5.0)},
    },
}
app.autodiscover_tasks()

DISPATCH_TASK = "schedules.dispatch"
# Sent by name (`app.send_task`): the scheduler's services enqueue runs without importing the tasks that call them.
EXECUTE_RUN_TASK = "schedules.execute_run"


class QuietDispatchTick(logging.Filter):
    """Drops Celery's per-tick INFO lines about the dispatcher (sent / received / succeeded, every second).

    At one tick a second they would bury everything else in the worker's and beat's logs (and in `fjordgate up`'s
    interleaved output); runs of real schedules, warnings and errors, including a failing tick, still show.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        return DISPATCH_TASK not in record.getMessage()


@after_setup_logger.connect
def _quiet_dispatch_tick(logger: logging.Logger, **kwargs: object) -> None:
    if schedule_conf.LOG_DISPATCH_TICKS:
        return
    for handler in logger.handlers:
        handler.addFilter(QuietDispatchTick())


@worker_process_init.connect
def _preload_studio_plugins(**kwargs: object) -> None:
    """Load the studio plugins that receive events in each pool process, as the bridge does: tasks (schedule runs,
    system jobs) raise events there (audit entries of their writes) that such plugins must hear from the first.

    In the pool's child processes, after the fork: the plugin host's loop thread must not be inherited from the
    parent, where no task runs. `worker_process_init` is sent by the prefork pool (what `fjordgate worker` uses);
    under a solo or thread pool, plugins load lazily on first use and on the first event for a manifest topic.
    """
    from control_plane.plugins.preload import plugins_preload_start

    plugins_preload_start("worker")
