"""`pending_outboxes`: the one statement the bridge's polls ask first says yes exactly when a selector has work."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from control_plane.bridge.outboxes import Pending, pending_outboxes
from control_plane.edges.models import EdgeReloadRequest
from control_plane.edges.selectors import edge_reloads_unpublished
from control_plane.edges.services import edge_reload_request
from control_plane.plugins.event_outbox import outbound_event_add
from control_plane.plugins.models import OutboundEvent
from control_plane.sync.models import ConfigChange
from control_plane.sync.selectors import config_changes_unpublished
from control_plane.sync.services import config_change_record
from shared_sdk.messages import Direction, Event

pytestmark = pytest.mark.django_db


def _selectors() -> Pending:
    return Pending(
        config_changes_unpublished().exists(),
        bool(edge_reloads_unpublished()),
        OutboundEvent.objects.filter(sent_at__isnull=True).exists(),
    )


def _agrees(expected: Pending) -> None:
    assert pending_outboxes() == _selectors() == expected


def test_the_probe_says_what_each_selector_would_find_in_every_state_of_its_outbox():
    ConfigChange.objects.all().delete()
    EdgeReloadRequest.objects.all().delete()
    OutboundEvent.objects.all().delete()
    _agrees(Pending(False, False, False))

    change = config_change_record(namespace="ns", reason="test")
    _agrees(Pending(True, False, False))
    now = timezone.now()
    ConfigChange.objects.filter(pk=change.pk).update(next_attempt_at=now + dt.timedelta(minutes=5))  # backing off
    _agrees(Pending(False, False, False))
    ConfigChange.objects.filter(pk=change.pk).update(next_attempt_at=now - dt.timedelta(seconds=1))  # backoff over
    _agrees(Pending(True, False, False))
    ConfigChange.objects.filter(pk=change.pk).update(dead_lettered_at=now)  # set aside: not retried by itself
    _agrees(Pending(False, False, False))
    ConfigChange.objects.filter(pk=change.pk).update(dead_lettered_at=None, published_at=now)
    _agrees(Pending(False, False, False))

    reload = edge_reload_request(namespace="ns")
    _agrees(Pending(False, True, False))
    EdgeReloadRequest.objects.filter(pk=reload.pk).update(published_at=now)
    _agrees(Pending(False, False, False))

    (event,) = outbound_event_add(events=[Event(topic="t", payload=b"x", direction=Direction.DOWN, source="test")])
    _agrees(Pending(False, False, True))
    OutboundEvent.objects.filter(pk=event.pk).update(sent_at=now)
    _agrees(Pending(False, False, False))
