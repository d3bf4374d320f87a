"""Writes to the config outbox. Call `config_change_record` inside the transaction of the change it describes."""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone

from .models import ConfigChange

__all__ = [
    "config_change_mark_failed",
    "config_change_mark_published",
    "config_change_record",
    "config_change_retry",
    "config_push_now",
]

BACKOFF_MAX_S = 300.0

_NEXT_VERSION = """
INSERT INTO sync_configversioncounter (id, value) VALUES (1, 1)
ON CONFLICT (id) DO UPDATE SET value = sync_configversioncounter.value + 1
RETURNING value
"""


@transaction.atomic
def config_change_record(*, namespace: str, reason: str) -> ConfigChange:
    """Give the namespace ("" = every namespace) a new config version.

    The counter row stays locked until the surrounding transaction commits, so versions are handed out in
    commit order: the bridge never publishes version N+1 while N is still invisible to it.
    """
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_VERSION)
        version = cursor.fetchone()[0]
    return ConfigChange.objects.create(namespace=namespace, version=version, reason=reason[:300])


def config_change_mark_published(*, namespace: str, up_to_version: int) -> int:
    """Mark the namespace's changes up to `up_to_version` as published; returns how many rows it marked.

    A snapshot carries the namespace's whole config, so publishing version N also delivers what an earlier,
    dead-lettered change of the namespace was about: that row is marked published too.
    """
    return ConfigChange.objects.filter(
        namespace=namespace, version__lte=up_to_version, published_at__isnull=True
    ).update(published_at=timezone.now(), dead_lettered_at=None, next_attempt_at=None)


def config_push_now(*, namespace: str, actor: str = "") -> ConfigChange:
    """The admin's "push config now": a new version even though nothing changed, so edges re-apply."""
    reason = f"push requested by {actor}" if actor else "push requested"
    return config_change_record(namespace=namespace, reason=reason)


@transaction.atomic
def config_change_mark_failed(
    *, namespace: str, up_to_version: int, error: str, max_attempts: int, backoff_s: float
) -> int:
    """Record a failed publication of the namespace's pending changes up to `up_to_version`.

    Each row waits `backoff_s * 2**(attempts-1)` (at most BACKOFF_MAX_S) before the bridge tries it again, and is
    set aside (dead-lettered) at its `max_attempts`-th failure, so it stops being tried at all: a change that can
    never be published must not hold up the others. Returns how many rows were dead-lettered by this call.
    """
    now = timezone.now()
    dead = 0
    rows = ConfigChange.objects.select_for_update().filter(
        namespace=namespace, version__lte=up_to_version, published_at__isnull=True, dead_lettered_at__isnull=True
    )
    for change in rows:
        change.attempts += 1
        change.last_error = error[:2000]
        if change.attempts >= max_attempts:
            change.dead_lettered_at = now
            change.next_attempt_at = None
            dead += 1
        else:
            delay = min(BACKOFF_MAX_S, backoff_s * 2 ** (change.attempts - 1))
            change.next_attempt_at = now + dt.timedelta(seconds=delay)
        change.save(update_fields=["attempts", "last_error", "next_attempt_at", "dead_lettered_at"])
    return dead


def config_change_retry(*, change_ids: list[int]) -> int:
    """The admin's "retry": put dead-lettered (or backing-off) changes back in line with a fresh attempt count."""
    return ConfigChange.objects.filter(pk__in=change_ids, published_at__isnull=True).update(
        dead_lettered_at=None, next_attempt_at=None, attempts=0
    )
