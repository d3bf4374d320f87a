"""The config outbox's failure bookkeeping as an operator meets it: a failing change backs off, is set aside after
its last attempt, shows up in the admin with its error, and the admin's "retry" puts it back in the queue."""

from __future__ import annotations

import pytest

from control_plane.sync.models import ConfigChange
from control_plane.sync.selectors import config_changes_unpublished
from control_plane.sync.services import config_change_mark_failed, config_change_mark_published, config_change_record

pytestmark = pytest.mark.django_db

URL = "/admin/sync/configchange/"
ERROR = "ValueError: namespace 'bad ns!' must be 1-63 letters"


def _fail(change: ConfigChange) -> int:
    return config_change_mark_failed(
        namespace=change.namespace, up_to_version=change.version, error=ERROR, max_attempts=2, backoff_s=60
    )


def test_failure_backs_off_then_sets_the_change_aside_without_touching_other_namespaces():
    bad = config_change_record(namespace="bad ns!", reason="legacy")
    good = config_change_record(namespace="ns-b", reason="fine")
    assert _fail(bad) == 0
    assert list(config_changes_unpublished()) == [good], "backing off: not offered again yet"
    ConfigChange.objects.filter(pk=bad.pk).update(next_attempt_at=None)  # the backoff elapsed
    assert _fail(bad) == 1
    bad.refresh_from_db()
    assert (bad.attempts, bad.last_error, bad.published_at) == (2, ERROR, None) and bad.dead_lettered_at
    assert list(config_changes_unpublished()) == [good]
    # a later successful publication of the namespace carries what the dead letter was about
    assert config_change_mark_published(namespace="ns-b", up_to_version=good.version) == 1


def test_admin_lists_dead_letters_with_their_error_and_retries_them(client, admin_user):
    client.force_login(admin_user)
    bad = config_change_record(namespace="bad ns!", reason="legacy")
    config_change_record(namespace="ns-b", reason="fine")
    _fail(bad)
    ConfigChange.objects.filter(pk=bad.pk).update(next_attempt_at=None)
    _fail(bad)

    page = client.get(URL, {"state": "dead"}).content.decode()
    assert "legacy" in page and "must be 1-63 letters" in page and "fine" not in page

    response = client.post(URL, {"action": "retry", "_selected_action": [bad.pk]}, follow=True)
    assert response.status_code == 200 and "1 change(s) back in the bridge" in response.content.decode()
    bad.refresh_from_db()
    assert bad.dead_lettered_at is None and bad.attempts == 0
    assert bad in list(config_changes_unpublished())
