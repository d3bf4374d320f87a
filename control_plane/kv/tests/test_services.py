"""The studio KV store on a real PostgreSQL: TTL, prefix listing, size limit, concurrent writers."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from control_plane.kv.models import MAX_VALUE_BYTES, KVEntry
from control_plane.kv.services import kv_delete, kv_list, kv_purge_expired, kv_read, kv_write


@pytest.mark.django_db
def test_write_read_overwrite_delete_scoped_per_plugin():
    kv_write(plugin_slug="a", key="k", value=b"1")
    kv_write(plugin_slug="a", key="k", value=b"2")
    kv_write(plugin_slug="b", key="k", value=b"other")
    assert kv_read(plugin_slug="a", key="k") == b"2"
    assert kv_read(plugin_slug="b", key="k") == b"other"
    assert kv_delete(plugin_slug="a", key="k") is True
    assert kv_delete(plugin_slug="a", key="k") is False
    assert kv_read(plugin_slug="a", key="k") is None


@pytest.mark.django_db
def test_list_by_prefix_is_sorted_and_treats_wildcards_literally():
    for key in ("user:2", "user:1", "user_x", "session:1"):
        kv_write(plugin_slug="p", key=key, value=b"v")
    assert kv_list(plugin_slug="p", prefix="user:") == ["user:1", "user:2"]
    assert kv_list(plugin_slug="p", prefix="user_") == ["user_x"]
    assert kv_list(plugin_slug="p") == ["session:1", "user:1", "user:2", "user_x"]


@pytest.mark.django_db
def test_ttl_hides_expired_and_purge_deletes_them():
    kv_write(plugin_slug="p", key="short", value=b"v", ttl_s=60)
    kv_write(plugin_slug="p", key="forever", value=b"v")
    KVEntry.objects.filter(key="short").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert kv_read(plugin_slug="p", key="short") is None
    assert kv_list(plugin_slug="p") == ["forever"]
    assert kv_purge_expired() == 1
    assert KVEntry.objects.count() == 1


@pytest.mark.django_db
def test_five_megabytes_accepted_more_refused():
    kv_write(plugin_slug="p", key="big", value=b"x" * MAX_VALUE_BYTES)
    assert len(kv_read(plugin_slug="p", key="big")) == MAX_VALUE_BYTES
    with pytest.raises(ValidationError):
        kv_write(plugin_slug="p", key="big", value=b"x" * (MAX_VALUE_BYTES + 1))


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_to_one_key_leave_one_row_and_no_error():
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                kv_write(plugin_slug="race", key="counter", value=f"{n}-{i}".encode())
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert KVEntry.objects.filter(plugin_slug="race").count() == 1
    assert kv_read(plugin_slug="race", key="counter").endswith(b"-19")
