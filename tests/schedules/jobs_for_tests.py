"""Functions standing in for system jobs in tests (the registry imports them by path, like the real ones)."""

from celery.exceptions import SoftTimeLimitExceeded

CALLS: list[str] = []


def counts_rows() -> int:
    CALLS.append("counts_rows")
    return 7


def breaks() -> int:
    raise RuntimeError("retention table is locked")


def overruns() -> int:
    raise SoftTimeLimitExceeded()  # what Celery raises inside the task when the soft time limit passes
