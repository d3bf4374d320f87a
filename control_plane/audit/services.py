"""Retention of the audit trail (a system job)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from fjordgate.env import env_int

from .models import AuditEntry

RETENTION_DAYS_VARIABLE = "FJORDGATE_AUDIT_RETENTION_DAYS"


def audit_apply_retention(*, now: dt.datetime | None = None) -> int:
    """Delete audit entries older than FJORDGATE_AUDIT_RETENTION_DAYS (default 365), in slices."""
    days = env_int(RETENTION_DAYS_VARIABLE, 365, minimum=1)
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    deleted = 0
    while True:
        ids = list(AuditEntry.objects.filter(at__lt=cutoff).values_list("pk", flat=True)[:5000])
        if not ids:
            return deleted
        count, _ = AuditEntry.objects.filter(pk__in=ids).delete()
        deleted += count
