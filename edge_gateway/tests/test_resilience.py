"""Retries with backoff, ordered fallbacks (also for streams failing before their first chunk), and the cases
that must never retry or fall back."""

from __future__ import annotations

import uuid

import httpx
import pytest

from shared_sdk import AnalyticsRecord

from .support import CLIENT_KEY, AppConfig, FallbackTarget, llm, make_snapshot, run_edge

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}


def chat(edge, mock: str, **extra):
    return httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers=AUTH,
        timeout=15,
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "mock": mock, **extra},
    )


def hits(upstream: str) -> list[dict]:
    return httpx.get(f"{upstream}/_mock/requests").json()["data"]


CLIENTS = pytest.mark.parametrize("client", ["h1", "aiohttp"])
"""The two upstream transports (EDGE_UPSTREAM_CLIENT): every retry and fallback rule holds on both."""


@pytest.fixture(scope="module", params=["h1", "aiohttp"])
def edge(mock_upstream, tmp_path_factory, request):
    primary = llm(
        1,
        "primary",
        f"{mock_upstream}/v1",
        allowed_models=["mock-gpt"],
        max_retries=2,
        fallbacks=[FallbackTarget(llm_slug="backup", model="backup-model")],
    )
    backup = llm(
        2, "backup", f"{mock_upstream}/v1", default_model="backup-model", allowed_models=["backup-model"], max_retries=0
    )
    single = llm(3, "single", f"{mock_upstream}/v1", default_model="solo", allowed_models=["solo"], max_retries=0)
    snap = make_snapshot(
        mock_upstream, llms=[primary, backup, single], apps=[AppConfig(id=1, name="one", llm_ids=[1, 2, 3])]
    )
    with run_edge(snap, tmp_path_factory.mktemp("edge"), upstream_client=request.param) as running:
        yield running


def test_retries_transient_errors_then_succeeds(edge, upstream):
    key = uuid.uuid4().hex
    reply = chat(edge, f"fail_times=2;key={key};status=503")
    assert reply.status_code == 200
    assert [h["status"] for h in hits(upstream)] == [503, 503, 200]
    metrics = httpx.get(f"{edge.url}/metrics").text
    assert 'fjordgate_edge_upstream_retries_total{llm="primary"}' in metrics


def test_retries_429_and_network_drops(edge, upstream):
    assert chat(edge, f"fail_times=1;key={uuid.uuid4().hex};status=429;retry_after=0").status_code == 200
    assert chat(edge, f"fail_times=1;key={uuid.uuid4().hex};drop_connection").status_code == 200
    assert [h["status"] for h in hits(upstream)][-1] == 200


def test_falls_back_in_order_after_retries_are_exhausted(edge, upstream):
    key = uuid.uuid4().hex
    reply = chat(edge, f"fail_times=3;key={key};status=500")
    assert reply.status_code == 200
    seen = hits(upstream)
    assert [h["model"] for h in seen] == ["mock-gpt"] * 3 + ["backup-model"]
    # this request's record: an earlier test's may still be on its way (CI once took one for this one's)
    record = edge.sink.record_of(reply.headers["x-request-id"], AnalyticsRecord)
    assert record.llm_slug == "backup" and record.model == "backup-model"


def test_client_error_from_vendor_is_neither_retried_nor_fallen_back(edge, upstream):
    reply = chat(edge, "status=400")
    assert reply.status_code == 400
    assert len(hits(upstream)) == 1


def test_when_everything_fails_the_client_gets_the_primary_error(edge, upstream):
    reply = chat(edge, "status=503")
    assert reply.status_code == 502 and "503" in reply.json()["error"]["message"]
    assert len(hits(upstream)) == 4  # 3 tries on the primary, 1 on the backup


def test_stream_failing_before_first_chunk_falls_back(edge, upstream):
    key = uuid.uuid4().hex
    reply = chat(edge, f"fail_times=3;key={key};fail_after_chunks=0", stream=True)
    assert reply.status_code == 200 and reply.text.rstrip().endswith("[DONE]")
    assert hits(upstream)[-1]["model"] == "backup-model"


def test_gateway_errors_never_reach_upstream(edge, upstream):
    assert (
        httpx.post(
            f"{edge.url}/v1/chat/completions",
            headers=AUTH,
            json={"model": "unknown", "messages": [{"role": "user", "content": "x"}]},
        ).status_code
        == 404
    )
    assert hits(upstream) == []


@CLIENTS
def test_upstream_timeout_is_504(mock_upstream, upstream, tmp_path, client):
    slow = llm(1, "slow", f"{mock_upstream}/v1", allowed_models=["mock-gpt"], max_retries=0, first_byte_timeout_s=0.3)
    with run_edge(make_snapshot(mock_upstream, llms=[slow]), tmp_path, upstream_client=client) as edge:
        reply = chat(edge, "latency_ms=2000")
    assert reply.status_code == 504 and reply.json()["error"]["code"] == "upstream_timeout"
