"""The Celery application: schedules and the control plane's periodic jobs run on it, with Redis as the broker.

Beat has a single entry: the schedules dispatcher, every `FJORDGATE_SCHEDULE_TICK_SECONDS`. Plugin schedules and
the control plane's own periodic jobs (budget roll-over, KV expiry, stale edges, analytics retention: see
`control_plane/schedules/system_jobs.py`) are all rows the dispatcher claims in PostgreSQL, so any number of beats
may run (no leader election) and each fire time still runs exactly once.
"""

import os

from celery import Celery

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
