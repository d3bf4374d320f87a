"""Issue 14's load balancing, as a user sees it: two deployments of one model behind a real edge, each a real
mock LLM process whose recorder counts what reached it.

- weights 3:1 split 400 requests 3:1 (smooth weighted round-robin: exact, so the test cannot flake);
- a deployment failing mid-run (the mock's fault injection, then a dead process): no client error, the
  other deployment takes the traffic within each request, the breaker shows on `/ready` and `/metrics`, and
  after the cool-down a probe brings the deployment back.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import msgspec

from shared_sdk.snapshot import snapshot_checksum

from .support import CLIENT_KEY, free_port, llm, make_snapshot, run_edge, start_mock, wait_http

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}


def count(upstream: str) -> int:
    return int(httpx.get(f"{upstream}/_mock/stats", timeout=5).json()["requests_total"])


def ask(client: httpx.Client, edge_url: str, *, stream: bool = False) -> httpx.Response:
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return client.post(f"{edge_url}/v1/chat/completions", headers=AUTH, json=body, timeout=15)


def deployments(a: str, b: str, *, weights=(1, 1), **kwargs):
    """`dep-a` and `dep-b` both serve `mock-gpt` (their default model): one model, two deployments."""
    return [
        llm(1, "dep-a", f"{a}/v1", weight=weights[0], **kwargs),
        llm(2, "dep-b", f"{b}/v1", weight=weights[1], **kwargs),
    ]


def test_weights_3_to_1_split_400_requests_3_to_1(tmp_path):
    with start_mock() as a, start_mock() as b:
        snap = make_snapshot(a, llms=deployments(a, b, weights=(3, 1)))
        with run_edge(snap, tmp_path) as edge, httpx.Client() as client:
            statuses = [ask(client, edge.url).status_code for _ in range(400)]
            served_a, served_b = count(a), count(b)
    assert statuses == [200] * 400
    assert served_a + served_b == 400
    assert abs(served_a / served_b - 3) <= 0.05 * 3, (served_a, served_b)  # the bound ...
    assert (served_a, served_b) == (300, 100)  # ... and what the smooth weighted round-robin gives


def _apply(edge, snap, version: int) -> None:
    snap = msgspec.structs.replace(snap, version=version, checksum="")
    edge.call(edge.edge.store.apply(msgspec.structs.replace(snap, checksum=snapshot_checksum(snap))))


def _states(edge_url: str) -> dict[str, float]:
    text = httpx.get(f"{edge_url}/metrics", timeout=5).text
    out = {}
    for line in text.splitlines():
        if line.startswith("fjordgate_edge_deployment_state{"):
            label, value = line.split("} ")
            out[label.split('llm="')[1].rstrip('"')] = float(value)
    return out


def test_a_deployment_failing_mid_run_costs_no_client_error_and_returns_after_the_cool_down(tmp_path):
    with start_mock() as a, start_mock() as b:
        healthy = deployments(a, b, max_retries=1, breaker_cooldown_s=1.0)
        snap = make_snapshot(a, llms=healthy)
        with run_edge(snap, tmp_path) as edge, httpx.Client() as client:
            assert [ask(client, edge.url).status_code for _ in range(20)] == [200] * 20
            assert (count(a), count(b)) == (10, 10)

            # Mid-run, dep-a's vendor starts answering 503 (mock fault injection on every call it gets).
            failing = [
                llm(
                    1,
                    "dep-a",
                    f"{a}/v1",
                    max_retries=1,
                    breaker_cooldown_s=1.0,
                    extra_headers={"x-mock-fault": "status=503"},
                ),
                healthy[1],
            ]
            _apply(edge, make_snapshot(a, llms=failing), 2)
            before_a, before_b = count(a), count(b)
            started = time.monotonic()
            statuses = [ask(client, edge.url).status_code for _ in range(40)]
            probes = int(time.monotonic() - started) + 1
            assert statuses == [200] * 40, "another deployment was healthy: no client error"
            # 3 failed calls in a row open dep-a's breaker (a request's retry is one of them); then dep-b
            # takes everything: dep-a sees at most a probe per cool-down (1 s) after that.
            assert count(b) - before_b == 40
            assert count(a) - before_a <= 3 + probes
            ready = httpx.get(f"{edge.url}/ready", timeout=5).json()
            assert [x["llm"] for x in ready["open_breakers"]] == ["dep-a"]
            assert _states(edge.url) in ({"dep-a": 1.0, "dep-b": 0.0}, {"dep-a": 2.0, "dep-b": 0.0})

            # The vendor recovers; after the cool-down a probe finds it and traffic is shared again.
            _apply(edge, make_snapshot(a, llms=healthy), 3)
            time.sleep(1.1)
            before_a = count(a)
            assert [ask(client, edge.url).status_code for _ in range(20)] == [200] * 20
            assert count(a) - before_a >= 9
            assert httpx.get(f"{edge.url}/ready", timeout=5).json()["open_breakers"] == []
            assert _states(edge.url) == {"dep-a": 0.0, "dep-b": 0.0}


@contextmanager
def mock_on(port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fjordgate.mock_llm", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_deployment_going_down_mid_stream_run_moves_to_the_other_and_a_probe_brings_it_back(tmp_path):
    port = free_port()
    a = f"http://127.0.0.1:{port}"
    with start_mock() as b:
        snap = make_snapshot(b, llms=deployments(a, b, max_retries=0, breaker_cooldown_s=1.0))
        with run_edge(snap, tmp_path) as edge, httpx.Client() as client:
            with mock_on(port):
                replies = [ask(client, edge.url, stream=True) for _ in range(10)]
            # dep-a's process is gone: connection refused on every call to it.
            replies += [ask(client, edge.url, stream=True) for _ in range(30)]
            assert [r.status_code for r in replies] == [200] * 40
            assert all(r.text.rstrip().endswith("data: [DONE]") for r in replies)
            assert count(b) == 5 + 30, "every request dep-a could not take was answered by dep-b"
            assert edge.edge.store.current.llms_by_slug["dep-a"].health.opened >= 1
            with mock_on(port):
                time.sleep(1.1)
                assert [ask(client, edge.url, stream=True).status_code for _ in range(10)] == [200] * 10
                assert count(a) >= 4  # the probe, then its share
