"""The studio KV store on PostgreSQL: one upsert per write, so concurrent writers never lose or duplicate a key.

Keys are scoped to a plugin by the caller (`plugin_slug`); expired entries are invisible at once and deleted by
`kv_purge_expired` (a periodic job), so readers never pay for the cleanup.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from .models import MAX_VALUE_BYTES, KVEntry

__all__ = ["kv_delete", "kv_list", "kv_purge_expired", "kv_read", "kv_write"]

_UPSERT = """
INSERT INTO kv_kventry (plugin_slug, key, value, expires_at, created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (plugin_slug, key) DO UPDATE
SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at
"""


def _live(plugin_slug: str):
    return KVEntry.objects.filter(plugin_slug=plugin_slug).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )


def kv_write(*, plugin_slug: str, key: str, value: bytes, ttl_s: float | None = None) -> None:
    if not key or len(key) > 512:
        raise ValidationError("A KV key must be 1 to 512 characters long.")
    if len(value) > MAX_VALUE_BYTES:
        raise ValidationError(f"A KV value may be at most {MAX_VALUE_BYTES} bytes; got {len(value)}.")
    if ttl_s is not None and ttl_s <= 0:
        raise ValidationError("ttl_s must be positive.")
    now = timezone.now()
    expires_at = now + timedelta(seconds=ttl_s) if ttl_s is not None else None
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, [plugin_slug, key, bytes(value), expires_at, now, now])


def kv_read(*, plugin_slug: str, key: str) -> bytes | None:
    value = _live(plugin_slug).filter(key=key).values_list("value", flat=True).first()
    return bytes(value) if value is not None else None


def kv_delete(*, plugin_slug: str, key: str) -> bool:
    existed = _live(plugin_slug).filter(key=key).exists()
    KVEntry.objects.filter(plugin_slug=plugin_slug, key=key).delete()
    return existed


def kv_list(*, plugin_slug: str, prefix: str = "") -> list[str]:
    """Live keys starting with `prefix`, sorted (`startswith` escapes % and _ for us)."""
    return list(_live(plugin_slug).filter(key__startswith=prefix).order_by("key").values_list("key", flat=True))


def kv_purge_expired() -> int:
    """Delete every expired entry; returns how many (a Celery beat job runs this)."""
    deleted, _ = KVEntry.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
