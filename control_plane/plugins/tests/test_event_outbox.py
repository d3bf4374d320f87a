"""The event outbox: DOWN events from any control-plane process reach PostgreSQL (in the caller's transaction when
the plugin was called inside one) and leave in order, once, even when two bridges drain at the same time.

End to end (a `call_plugin` in this process, the bridge in another, an edge subscriber on real NATS):
tests/e2e/test_events.py.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections, transaction

from control_plane.plugins.event_outbox import outbound_event_add, outbound_event_drain
from control_plane.plugins.models import OutboundEvent
from control_plane.plugins.runtime import call_plugin
from control_plane.plugins.services import plugin_register
from shared_sdk import PluginCallError
from shared_sdk.messages import Direction, Event, Schedule

pytestmark = pytest.mark.django_db(transaction=True)

PLUGINS = "control_plane.plugins.tests.plugins"


def _announcer() -> None:
    plugin_register(data={"slug": "announcer", "import_path": f"{PLUGINS}:DownAnnouncer"})


def _announce(**config) -> None:
    call_plugin("announcer", "execute_scheduled_task", Schedule(id="job", config=config))


def _pending() -> list[tuple[str, str, str]]:
    return list(OutboundEvent.objects.filter(sent_at__isnull=True).values_list("topic", "namespace", "source"))


def test_down_events_join_the_callers_transaction():
    _announcer()
    with pytest.raises(RuntimeError), transaction.atomic():
        _announce(topic="cache.flush", namespace="ns-a")
        assert _pending() == [("cache.flush", "ns-a", "announcer")], "written on the caller's connection"
        raise RuntimeError("the change the event announced is rolled back")
    assert _pending() == [], "an event about a rolled-back change is never sent"

    with transaction.atomic():
        _announce(topic="cache.flush", namespace="ns-a", payload="v2")
    _announce(topic="cache.flush")  # no transaction: committed at once
    assert _pending() == [("cache.flush", "ns-a", "announcer"), ("cache.flush", "", "announcer")]


def test_an_event_published_after_the_call_returned_is_written_on_its_own():
    _announcer()
    _announce(topic="greet", later_s=0.2)
    deadline = time.monotonic() + 10
    while len(_pending()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [topic for topic, _, _ in _pending()] == ["greet", "greet.later"]


def test_a_down_event_no_edge_could_receive_fails_the_publishing_plugin():
    _announcer()
    with pytest.raises(PluginCallError) as err:
        _announce(topic="greet", namespace="_bad namespace")
    assert err.value.kind == "exception" and "cannot go down" in err.value.detail
    assert _pending() == []


def _events(*topics: str) -> list[Event]:
    return [Event(topic=t, payload=t.encode(), direction=Direction.DOWN, source="test") for t in topics]


def test_drain_sends_in_order_and_keeps_what_could_not_be_sent():
    outbound_event_add(events=_events("e1", "e2", "e3"))

    def fail(events: list[Event]) -> None:
        raise ConnectionError("NATS is down")

    with pytest.raises(ConnectionError):
        outbound_event_drain(send=fail)
    assert len(_pending()) == 3, "nothing marked sent when sending failed"
    sent: list[str] = []
    assert outbound_event_drain(send=lambda events: sent.extend(e.topic for e in events), limit=2) == 2
    assert outbound_event_drain(send=lambda events: sent.extend(e.topic for e in events), limit=2) == 1
    assert outbound_event_drain(send=lambda events: sent.extend(e.topic for e in events)) == 0
    assert sent == ["e1", "e2", "e3"] and _pending() == []


def test_two_bridges_draining_at_once_never_send_an_event_twice():
    outbound_event_add(events=_events("e1", "e2", "e3", "e4"))
    claimed, release = threading.Event(), threading.Event()
    first: list[str] = []

    def slow_send(events: list[Event]) -> None:
        first.extend(e.topic for e in events)
        claimed.set()
        assert release.wait(10)

    def other_bridge() -> None:
        try:
            outbound_event_drain(send=slow_send, limit=2)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_bridge)
    thread.start()
    try:
        assert claimed.wait(10)
        second: list[str] = []
        assert outbound_event_drain(send=lambda events: second.extend(e.topic for e in events)) == 2
    finally:
        release.set()
        thread.join(10)
    assert (first, second) == (["e1", "e2"], ["e3", "e4"]), "the rows one bridge holds are skipped by the other"
    assert _pending() == []
