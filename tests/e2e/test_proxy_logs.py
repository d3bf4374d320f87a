"""Proxy logs through real processes: the control plane stores one for each request, with the request's and
response's bodies from an edge that logs bodies (`EDGE_LOG_BODIES`), without them from an edge that does not.

Why: a proxy log without bodies repeats its request's analytics record but for the method and path, and was a third
of the records each request cost the edge (journal, spool, publish). Such an edge ships none; the analytics record
carries the method and path, and the bridge stores the log from it (`TelemetryBatch.proxy_logs_from_analytics`).
An operator still finds every request in the proxy logs."""

from __future__ import annotations

import json
import uuid

import pytest

from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord, ProxyLogRecord

from .cluster import config_version, seed_namespace, wait_until

pytestmark = [pytest.mark.timeout(180)]


def test_every_request_has_its_proxy_log_with_bodies_only_from_an_edge_that_logs_bodies(cluster):
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
    # there, so is its proxy log.
    wait_until(lambda: AnalyticsEvent.objects.filter(request_id__in=every).count() == len(every), 30, "analytics")
    assert BudgetUsageRecord.objects.filter(request_id__in=every).count() == len(every)

    for name in ("plain", "bodies"):
        logs = list(ProxyLogRecord.objects.filter(request_id__in=sent[name]))
        assert sorted(log.request_id for log in logs) == sorted(sent[name])
        for log in logs:
            event = AnalyticsEvent.objects.get(request_id=log.request_id)
            assert (log.record_id, log.app_id, log.llm_id) == (event.record_id, event.app_id, event.llm_id)
            assert (log.edge_id, log.method, log.path, log.response_code) == (name, "POST", "/v1/chat/completions", 200)
            if name == "plain":
                assert (bytes(log.request_body), bytes(log.response_body)) == (b"", b"")
            else:
                assert json.loads(bytes(log.request_body))["messages"] == [{"role": "user", "content": "hello"}]
                assert json.loads(bytes(log.response_body))["object"] == "chat.completion"
