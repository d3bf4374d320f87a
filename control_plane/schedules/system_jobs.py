"""The control plane's own periodic jobs, run by the same dispatcher, claim and history as plugin schedules.

Each job is a service function owned by its domain app (returning how many rows it changed). The function is
imported when the job runs, not when this module loads, so a missing or broken one fails that run loudly
(recorded as failed with the import error) instead of stopping every worker from starting.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module


@dataclass(frozen=True)
class SystemJob:
    name: str
    function: str  # "module:attribute"
    cron: str  # default; operators may change it in the admin
    timeout_seconds: int
    description: str

    def load(self):
        module, _, attribute = self.function.partition(":")
        return getattr(import_module(module), attribute)


SYSTEM_JOBS: dict[str, SystemJob] = {
    job.name: job
    for job in (
        SystemJob(
            "budget_rollover_periods",
            "control_plane.budgets.services:budget_rollover_periods",
            "0 * * * * *",
            300,
            "Starts new budget periods when one ends, so spend resets on time.",
        ),
        SystemJob(
            "kv_purge_expired",
            "control_plane.kv.services:kv_purge_expired",
            "0 */5 * * * *",
            300,
            "Deletes studio KV entries whose TTL has passed.",
        ),
        SystemJob(
            "edge_mark_stale",
            "control_plane.edges.services:edge_mark_stale",
            "*/30 * * * * *",
            60,
            "Marks edges stale when their heartbeat stops.",
        ),
        SystemJob(
            "analytics_apply_retention",
            "control_plane.analytics.services:analytics_apply_retention",
            "0 17 * * * *",
            1800,
            "Deletes or rolls up raw analytics older than FJORDGATE_ANALYTICS_RETENTION_DAYS.",
        ),
        SystemJob(
            "audit_apply_retention",
            "control_plane.audit.services:audit_apply_retention",
            "0 23 3 * * *",
            1800,
            "Deletes audit entries older than FJORDGATE_AUDIT_RETENTION_DAYS (default 365).",
        ),
    )
}

SYSTEM_JOB_CHOICES = [(name, name) for name in SYSTEM_JOBS]
