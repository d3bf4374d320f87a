"""A payload whose strings hold a NUL character is refused, alone: PostgreSQL's text cannot store one, and the lookup
of its plugin raised, so the payloads fetched with it went unacknowledged and all came back every ack wait."""

from __future__ import annotations

import msgspec
import pytest

from control_plane.analytics.models import EdgePayloadRecord
from control_plane.bridge.payloads import _store_and_deliver
from shared_sdk.messages import EdgePayload
from shared_sdk.sync_protocol import PayloadEnvelope

pytestmark = pytest.mark.django_db


def _envelope(record_id: str = "p1", **fields: object) -> PayloadEnvelope:
    payload = msgspec.structs.replace(
        EdgePayload(payload=b"x", edge_id="e1", edge_namespace="demo", plugin_slug="collector"), **fields
    )
    return PayloadEnvelope(record_id=record_id, payload=payload)


@pytest.mark.parametrize(
    ("record_id", "fields", "field"),
    [
        ("p\x00", {}, "record_id"),
        ("p1", {"plugin_slug": "coll\x00ector"}, "plugin_slug"),
        ("p1", {"correlation_id": "c\x00"}, "correlation_id"),
        ("p1", {"metadata": {"k": "v\x00"}}, "metadata"),
        ("p1", {"metadata": {"k\x00": "v"}}, "metadata"),
    ],
)
def test_a_payload_with_a_nul_is_refused_with_the_field_named(record_id, fields, field):
    assert _store_and_deliver(_envelope(record_id, **fields)) == f"its {field} holds a NUL character"
    assert not EdgePayloadRecord.objects.exists()


def test_a_clean_payload_is_stored():
    assert _store_and_deliver(_envelope(correlation_id="c1", metadata={"k": "v"})) is None
    assert EdgePayloadRecord.objects.get().correlation_id == "c1"
