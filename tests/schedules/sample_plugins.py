"""Scheduled plugins used by the schedules tests; each execution appends one JSON line to `config["record_to"]`.

The line (execution id, fire time, pid, start, end) lets a test check from outside the database that a fire time
really executed once, and when runs overlapped.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from shared_sdk import BasePlugin, SchedulerPlugin


class RecordingScheduler(BasePlugin, SchedulerPlugin):
    name = "recording-scheduler"
    version = "1.0.0"
    description = "Records each scheduled execution to a file; config may ask it to sleep or fail."

    async def execute_scheduled_task(self, ctx, schedule) -> None:
        started = time.time()
        sleep_s = float(schedule.config.get("sleep_s", 0))
        if sleep_s:
            await asyncio.sleep(sleep_s)
        line = {
            "schedule": schedule.id,
            "execution_id": schedule.execution_id,
            "scheduled_for": schedule.scheduled_for,
            "pid": os.getpid(),
            "start": started,
            "end": time.time(),
        }
        with open(schedule.config["record_to"], "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
        if schedule.config.get("fail"):
            raise RuntimeError("asked to fail")


class ManifestScheduler(RecordingScheduler):
    """Declares its schedules in its manifest, as a plugin that ships schedules does."""

    name = "manifest-scheduler"

    def get_manifest(self):
        from shared_sdk.messages import PluginManifest, Schedule

        return PluginManifest(
            id="manifest-scheduler",
            schedules=[
                Schedule(id="nightly", name="Nightly", cron="0 3 * * *", timezone="Europe/Oslo", timeout_seconds=120),
                Schedule(id="hourly", cron="15 * * * *", config={"k": "v"}),
            ],
        )
