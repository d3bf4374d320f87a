"""The event outbox in the admin, as an operator troubleshooting a DOWN event uses it: what is queued, where it
goes, whether it left; and that nothing there can add, edit or drop a row the bridge owns."""

from __future__ import annotations

import pytest

from control_plane.plugins.event_outbox import outbound_event_add, outbound_event_drain
from control_plane.plugins.models import OutboundEvent
from shared_sdk.messages import Direction, Event

pytestmark = pytest.mark.django_db

URL = "/admin/plugins/outboundevent/"


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def outbox() -> dict[str, OutboundEvent]:
    """One sent global event, then one pending event for namespace `ns-a` with a binary payload."""
    outbound_event_add(
        events=[Event(topic="cache.flush", payload=b"all", direction=Direction.DOWN, source="announcer")]
    )
    assert outbound_event_drain(send=lambda events: None) == 1
    outbound_event_add(
        events=[
            Event(
                topic="price.changed", payload=b"\xff\x00", direction=Direction.DOWN, source="pricer", namespace="ns-a"
            )
        ]
    )
    return {row.topic: row for row in OutboundEvent.objects.all()}


def _rows(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def test_changelist_shows_subject_namespace_status_and_times(admin_client, outbox):
    page = _rows(admin_client.get(URL))
    for text in ("cache.flush", "fj.down._all.event", "(every edge)", "announcer", "Sent"):
        assert text in page, text
    for text in ("price.changed", "fj.down.ns-a.event", "ns-a", "pricer", "Pending"):
        assert text in page, text


def test_filters_and_search_narrow_the_list(admin_client, outbox):
    pending = _rows(admin_client.get(URL, {"status": "pending"}))
    assert "price.changed" in pending and "cache.flush" not in pending
    sent = _rows(admin_client.get(URL, {"status": "sent"}))
    assert "cache.flush" in sent and "price.changed" not in sent
    by_namespace = _rows(admin_client.get(URL, {"namespace": "ns-a"}))
    assert "price.changed" in by_namespace and "cache.flush" not in by_namespace
    by_source = _rows(admin_client.get(URL, {"source": "announcer"}))
    assert "cache.flush" in by_source and "price.changed" not in by_source
    searched = _rows(admin_client.get(URL, {"q": "price"}))
    assert "price.changed" in searched and "cache.flush" not in searched
    by_event_id = _rows(admin_client.get(URL, {"q": outbox["cache.flush"].event_id}))
    assert "cache.flush" in by_event_id and "price.changed" not in by_event_id


def test_detail_page_shows_the_stored_event_read_only(admin_client, outbox):
    sent = _rows(admin_client.get(f"{URL}{outbox['cache.flush'].pk}/change/"))
    assert "&quot;payload&quot;: &quot;all&quot;" in sent  # the decoded event, payload as text
    assert 'name="_save"' not in sent, "the view page offers no save"
    binary = _rows(admin_client.get(f"{URL}{outbox['price.changed'].pk}/change/"))
    assert "(2 bytes, binary)" in binary


def test_rows_cannot_be_added_changed_or_deleted(admin_client, outbox):
    pending = outbox["price.changed"]
    assert admin_client.get(f"{URL}add/").status_code == 403
    assert admin_client.get(f"{URL}{pending.pk}/delete/").status_code == 403
    response = admin_client.post(f"{URL}{pending.pk}/change/", {"topic": "edited", "namespace": ""})
    assert response.status_code == 403
    deleted = admin_client.post(URL, {"action": "delete_selected", "_selected_action": [str(pending.pk)]})
    assert deleted.status_code == 200  # the action does not exist: Django answers with the list and a message
    pending.refresh_from_db()
    assert (pending.topic, pending.namespace, pending.sent_at) == ("price.changed", "ns-a", None)
    assert OutboundEvent.objects.count() == 2
