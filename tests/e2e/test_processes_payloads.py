"""Edge payloads through real processes with the bundled usage_summary plugin: its edge half counts usage per
user and sends summaries up; a summary sent while NATS is down survives a SIGKILL of the edge in the spool; the
studio half receives each once (edge id, namespace, correlation id, metadata, both timestamps), stores it, and
the admin page shows the totals. `gateway.send_payload` at the edge: spooled, published on the edge's payload
subject with the plugin's slug, clear errors for an oversized payload or an edge without a control plane."""

from __future__ import annotations

import time

import nats
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from control_plane.analytics.models import EdgePayloadRecord
from control_plane.analytics.selectors import usage_summary_rows
from control_plane.bridge.runner import ensure_up_stream
from control_plane.plugins.services import plugin_register
from edge_gateway.kv import EdgeKV
from edge_gateway.services import EdgeEventHub, EdgeGatewayServices, services_factory
from edge_gateway.sync.service import EdgeSyncService
from shared_sdk import ServiceError
from shared_sdk.sync_protocol import EDGE_PAYLOAD_MAX_BYTES, PayloadEnvelope, decode

from .cluster import config_version, seed_namespace, wait_until
from .test_snapshot_chunks import RecordingStore

pytestmark = [pytest.mark.timeout(240)]


def _delivered() -> list[EdgePayloadRecord]:
    return list(EdgePayloadRecord.objects.filter(plugin_slug="usage-summary", delivered_at__isnull=False))


def _requests_summarised() -> int:
    return sum(row["requests"] for row in usage_summary_rows())


def test_usage_summaries_travel_up_survive_a_kill_and_show_in_the_admin(cluster, client):
    a = seed_namespace("ns-a", cluster.mock_url)
    plugin_register(
        data={
            "slug": "usage-summary",
            "name": "Usage summary",
            "import_path": "plugins.usage_summary.plugin:UsageSummary",
            "namespace": "ns-a",
            "global_order": 1,
            "config": {"flush_interval_s": 0.3, "keep_days": 7},
        }
    )
    cluster.start_bridge()
    a1 = cluster.start_edge(cluster.add_edge("a1", "ns-a"))
    wait_until(lambda: a1.ready().get("version", 0) >= config_version("ns-a"), message="edge config")

    for _ in range(7):
        assert a1.chat(a.key)[0] == 200
    wait_until(lambda: _requests_summarised() == 7, 20, "summaries stored")
    first = _delivered()[0]
    assert (first.edge_id, first.namespace, first.metadata) == ("a1", "ns-a", {"kind": "usage-summary"})
    assert first.correlation_id and first.edge_timestamp and first.received_timestamp >= first.edge_timestamp
    wait_until(lambda: a1.ready().get("spool_records") == 0, 10, "spool drained")

    # NATS down: the next summary waits in the edge's spool, and the edge is SIGKILLed before NATS returns
    delivered_before = len(_delivered())
    cluster.nats.stop()
    assert a1.chat(a.key)[0] == 200
    wait_until(lambda: a1.ready().get("spool_records", 0) >= 2, 10, "the analytics record + 1 payload spooled")
    cluster.kill_edge(a1)
    cluster.nats.start()
    cluster.start_edge(a1)
    wait_until(lambda: _requests_summarised() == 8, 30, "the spooled summary delivered after the restart")
    time.sleep(0.5)
    assert len(_delivered()) == delivered_before + 1, "the spooled payload delivered exactly once"

    [row] = usage_summary_rows()
    assert (row["namespace"], row["app_id"], row["requests"], row["edges"]) == ("ns-a", a.app_id, 8, ["a1"])
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(admin)
    page = client.get(reverse("admin:analytics_usage_summaries"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="usage-summaries"' in html and "<td>8</td>" in html and "a1" in html


async def test_send_payload_is_spooled_and_published_under_the_sending_plugins_name(nats_server, tmp_path):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_up_stream(js)
    store = RecordingStore()
    sync = EdgeSyncService(
        store=store, namespace="ns-a", edge_id="edge-a1", nats_url=nats_server.url, state_dir=str(tmp_path)
    )
    hub = EdgeEventHub()
    make_services = services_factory(EdgeKV(":memory:"), hub, lambda: EdgeGatewayServices(store))
    gateway = make_services("reporter@llm-2").gateway  # a per-LLM variant sends as its plugin
    with pytest.raises(ServiceError, match="no control plane connection"):
        await gateway.send_payload(b"{}")
    hub.payload_sink = sync.shipper.submit_payload  # what the edge app wires when NATS is configured
    await sync.start()
    try:
        with pytest.raises(ServiceError, match=r"limited to 1048576 bytes \(1 MiB\), got 1048577"):
            await gateway.send_payload(b"x" * (EDGE_PAYLOAD_MAX_BYTES + 1))
        assert await gateway.send_payload(b"first", correlation_id="c-1", metadata={"kind": "k"}) == "c-1"
        generated = await gateway.send_payload(b"second")
        assert generated, "a correlation id is made up when none is given"
        consumer = await js.pull_subscribe("fj.up.ns-a.edge-a1.payload", durable="probe")
        envelopes = []
        deadline = time.monotonic() + 15
        while len(envelopes) < 2 and time.monotonic() < deadline:
            try:
                messages = await consumer.fetch(2 - len(envelopes), timeout=1)
            except nats.errors.TimeoutError:
                continue
            envelopes += [decode(m.data, PayloadEnvelope) for m in messages]
        sent = [
            (e.payload.plugin_slug, e.payload.payload, e.payload.correlation_id, e.payload.metadata) for e in envelopes
        ]
        assert sent == [("reporter", b"first", "c-1", {"kind": "k"}), ("reporter", b"second", generated, {})]
        assert all(e.payload.edge_id == "edge-a1" and e.payload.edge_namespace == "ns-a" for e in envelopes)
    finally:
        await sync.stop(drain_timeout_s=0.1)
        await nc.close()
