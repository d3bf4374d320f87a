"""Operator settings of the scheduler, read once from the environment through `fjordgate.env`.

Kept free of Django imports so `control_plane/config/celery.py` can build the beat schedule before Django is set up.
"""

from __future__ import annotations

from fjordgate.env import env_bool, env_float, env_int

# How often beat asks a worker to dispatch due schedules; also the resolution of seconds-field cron expressions.
TICK_SECONDS = env_float("FJORDGATE_SCHEDULE_TICK_SECONDS", 1.0, minimum=0.2)
# Celery's INFO lines about each dispatcher tick (sent / received / succeeded, every TICK_SECONDS) are dropped
# unless this is on: they bury real schedule runs in the logs. Warnings and errors of a tick always show.
LOG_DISPATCH_TICKS = env_bool("FJORDGATE_SCHEDULE_LOG_TICKS", False)
# A fire time older than this when the dispatcher sees it counts as missed (everything was down): without catch-up
# only the latest missed fire runs. Younger fires are merely late and all run.
MISFIRE_GRACE_SECONDS = env_int("FJORDGATE_SCHEDULE_MISFIRE_GRACE_SECONDS", 30, minimum=1)
# Finished runs kept per schedule; older ones are deleted after each run so the table stays bounded.
HISTORY_PER_SCHEDULE = env_int("FJORDGATE_SCHEDULE_HISTORY", 200, minimum=1)
# Upper bound of missed fires a catch-up schedule replays after downtime (the newest ones are kept).
CATCH_UP_MAX = env_int("FJORDGATE_SCHEDULE_CATCH_UP_MAX", 100, minimum=1)
# A run still "running" this long after its timeout lost its worker (killed, OOM, host gone): mark it timed out.
STALE_GRACE_SECONDS = env_int("FJORDGATE_SCHEDULE_STALE_GRACE_SECONDS", 60, minimum=1)
# A run still "pending" this long never reached a worker (broker flushed, message lost): mark it failed.
PENDING_EXPIRY_SECONDS = env_int("FJORDGATE_SCHEDULE_PENDING_EXPIRY_SECONDS", 3600, minimum=60)
