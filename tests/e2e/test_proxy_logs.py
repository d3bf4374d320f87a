"""Proxy logs through real processes: the control plane stores one, with the request's and response's bodies, for
each request of an edge that logs bodies (`EDGE_LOG_BODIES`), and none for an edge that does not.

Why: a proxy log without bodies repeated the analytics row of the same request, and was a third of the records each
request cost the edge (journal, spool, publish) and the control plane (ingest, storage)."""

from __future__ import annotations

import json
import uuid

import pytest

from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord, ProxyLogRecord

from .cluster import config_version, seed_namespace, wait_until

pytestmark = [pytest.mark.timeout(180)]


def test_proxy_logs_are_stored_with_their_bodies_only_from_an_edge_that_logs_bodies(cluster):
    seed = seed_namespace("ns-a", cluster.mock_url)
    cluster.start_bridge()
    plain = cluster.start_edge(cluster.add_edge("plain", "ns-a"))
    bodies = cluster.start_edge(cluster.add_edge("bodies", "ns-a", EDGE_LOG_BODIES="true"))
    for edge in (plain, bodies):
        wait_until(lambda e=edge: e.ready().get("version", 0) >= config_version("ns-a"), message="edge config")

    sent: dict[str, list[str]] = {"plain": [], "bodies": []}
    for edge in (plain, bodies):
        for _ in range(3):
            request_id = f"{edge.name}-{uuid.uuid4().hex[:12]}"
            status, _, _ = edge.chat(seed.key, request_id=request_id)
            assert status == 200
            sent[edge.name].append(request_id)
    every = sent["plain"] + sent["bodies"]
    # A request's records travel together (one spool, one message, one transaction): once its analytics row is
    # there, so is any proxy log it had.
    wait_until(lambda: AnalyticsEvent.objects.filter(request_id__in=every).count() == len(every), 30, "analytics")
    assert BudgetUsageRecord.objects.filter(request_id__in=every).count() == len(every)

    assert not ProxyLogRecord.objects.filter(request_id__in=sent["plain"]).exists()
    logs = list(ProxyLogRecord.objects.filter(request_id__in=sent["bodies"]))
    assert sorted(log.request_id for log in logs) == sorted(sent["bodies"])
    for log in logs:
        assert (log.edge_id, log.method, log.path, log.response_code) == ("bodies", "POST", "/v1/chat/completions", 200)
        assert json.loads(bytes(log.request_body))["messages"] == [{"role": "user", "content": "hello"}]
        assert json.loads(bytes(log.response_body))["object"] == "chat.completion"
