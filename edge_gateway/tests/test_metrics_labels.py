"""`/metrics` stays bounded whatever clients send: label values come from the configured objects only."""

from __future__ import annotations

import secrets
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from edge_gateway.metrics import STREAM_CHUNK_HOOK, EdgeMetrics, hook_observer
from shared_sdk import AnalyticsRecord
from shared_sdk.pipeline import HookTiming

from .support import CLIENT_KEY, llm, make_snapshot, run_edge


def _model_labels(text: str) -> set[str]:
    return {
        sample.labels["model"]
        for family in text_string_to_metric_families(text)
        if family.name == "fjordgate_edge_requests"
        for sample in family.samples
    }


def test_random_model_names_do_not_grow_metrics(upstream, tmp_path):
    snapshot = make_snapshot(upstream, llms=[llm(1, "mock-llm", f"{upstream}/v1", allowed_models=["mock-.*"])])
    with run_edge(snapshot, tmp_path) as edge, httpx.Client(base_url=edge.url) as client:
        headers = {"authorization": f"Bearer {CLIENT_KEY}"}
        models = ["mock-gpt"] + [f"mock-{secrets.token_hex(8)}" for _ in range(300)]
        for model in models:
            reply = client.post(
                "/v1/chat/completions",
                headers=headers,
                json={"model": model, "messages": [{"role": "user", "content": "x"}]},
            )
            assert reply.status_code == 200, reply.text
        edge.sink.wait_for(AnalyticsRecord, len(models))
        for _ in range(100):  # the metrics sink drains on the same telemetry flush as the recording sink
            labels = _model_labels(client.get("/metrics").text)
            if "other" in labels:
                break
            time.sleep(0.05)
        assert labels == {"mock-gpt", "other"}


def test_stream_chunk_hook_time_has_its_own_hook_label():
    """A stream's chunk-hook time, summed per stream (`HookTiming.chunks`), is not mixed into the per-call
    `on_before_write` histogram of full responses; failures keep the hook's own name."""
    metrics = EdgeMetrics()
    observe = hook_observer(metrics)
    observe(HookTiming("pii", "on_before_write", 0.002, "pass"))
    observe(HookTiming("pii", "on_before_write", 0.004, "modified", chunks=20))
    observe(HookTiming("pii", "on_before_write", 0.001, "skipped"))
    counts = {
        (sample.labels["hook"]): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        if family.name == "fjordgate_edge_plugin_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_count")
    }
    assert counts == {"on_before_write": 2, STREAM_CHUNK_HOOK: 1}
    failures = [
        sample.labels
        for family in text_string_to_metric_families(metrics.render().decode())
        if family.name == "fjordgate_edge_plugin_failures"
        for sample in family.samples
        if sample.name.endswith("_total")
    ]
    assert failures == [{"plugin": "pii", "hook": "on_before_write", "kind": "skipped"}]
