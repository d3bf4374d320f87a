"""Writes to the config outbox. Call `config_change_record` inside the transaction of the change it describes."""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from .models import ConfigChange

__all__ = ["config_change_mark_published", "config_change_record", "config_push_now"]

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
    """Mark the namespace's changes up to `up_to_version` as published; returns how many rows it marked."""
    return ConfigChange.objects.filter(
        namespace=namespace, version__lte=up_to_version, published_at__isnull=True
    ).update(published_at=timezone.now())


def config_push_now(*, namespace: str, actor: str = "") -> ConfigChange:
    """The admin's "push config now": a new version even though nothing changed, so edges re-apply."""
    reason = f"push requested by {actor}" if actor else "push requested"
    return config_change_record(namespace=namespace, reason=reason)
