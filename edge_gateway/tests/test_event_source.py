"""An edge plugin's events name the plugin that sent them: a plugin cannot pass its events off as another's."""

from __future__ import annotations

from edge_gateway.services import EdgeEventHub
from shared_sdk.messages import Direction, Event


async def test_an_up_event_names_its_plugin_whatever_source_it_claims():
    hub = EdgeEventHub()
    sent: list[Event] = []

    async def uplink(event: Event) -> None:
        sent.append(event)

    hub.uplink = uplink
    bus = hub.bus("tagger")
    await bus.publish_event(Event(topic="usage.note", payload=b"x", direction=Direction.UP, source="billing"))
    await bus.publish_event(Event(topic="usage.note", payload=b"y", direction=Direction.UP))
    assert [(e.topic, e.source) for e in sent] == [("usage.note", "tagger"), ("usage.note", "tagger")]
