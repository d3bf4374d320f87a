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


def test_metrics_behind_their_token_when_one_is_set(upstream, tmp_path):
    """/metrics names the namespace's apps, LLMs and models with their rates: with EDGE_METRICS_TOKEN set, a client
    of the edge without the token gets 401, a scraper with it the exposition."""
    token = secrets.token_urlsafe(24)
    with run_edge(make_snapshot(upstream), tmp_path, metrics_token=token) as edge:
        httpx.post(
            f"{edge.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        anonymous = httpx.get(f"{edge.url}/metrics", timeout=10)
        client_key = httpx.get(f"{edge.url}/metrics", headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=10)
        scraper = httpx.get(f"{edge.url}/metrics", headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert anonymous.status_code == client_key.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert b"fjordgate" not in anonymous.content + client_key.content
    assert scraper.status_code == 200 and "mock-gpt" in _model_labels(scraper.text)


def test_a_metrics_token_too_short_to_be_secret_is_a_config_error(tmp_path):
    import pytest

    from edge_gateway.settings import load_settings
    from fjordgate.env import ConfigError

    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text("{}")
    env = {"EDGE_SNAPSHOT_FILE": str(snapshot)}
    with pytest.raises(ConfigError, match="EDGE_METRICS_TOKEN"):
        load_settings({**env, "EDGE_METRICS_TOKEN": "short"})
    assert load_settings({**env, "EDGE_METRICS_TOKEN": "x" * 16}).metrics_token == "x" * 16
    assert load_settings(env).metrics_token is None
