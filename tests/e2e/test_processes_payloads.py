"""Edge payloads through real processes with the bundled usage_summary plugin: its edge half counts usage per
user and sends summaries up; a summary sent while NATS is down survives a SIGKILL of the edge in the spool; the
studio half receives each once (edge id, namespace, correlation id, metadata, both timestamps), stores it, and
the admin page shows the totals."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from control_plane.analytics.models import EdgePayloadRecord
from control_plane.analytics.selectors import usage_summary_rows
from control_plane.plugins.services import plugin_register

from .cluster import config_version, seed_namespace, wait_until

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
    wait_until(lambda: a1.ready().get("spool_records", 0) >= 4, 10, "3 telemetry records + 1 payload spooled")
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
