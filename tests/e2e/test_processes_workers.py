"""`fjordgate edge --workers 2`: one port served by two worker processes (SO_REUSEPORT), one edge in the registry.

A real supervisor with its workers, NATS, the bridge and the mock LLM: connections land on both workers, a
SIGKILLed worker is restarted while the other keeps answering, the control plane lists one edge with two workers,
every answered request's telemetry is stored exactly once whichever worker served it, `/metrics` shows both
workers' series, and SIGTERM drains and stops everything with exit code 0.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter

import pytest

from control_plane.analytics.models import AnalyticsEvent
from control_plane.edges.models import EdgeInstance
from tests.support.edge_metrics import requests_by_worker
from tests.support.processes import fjordgate_argv, wait_for_http

from .cluster import Cluster, Edge, config_version, http, seed_namespace, wait_until

pytestmark = [pytest.mark.timeout(240)]


def _ready_by_worker(edge: Edge, connections: int = 40) -> dict[str, set[int]]:
    """worker index -> pids seen over `connections` fresh connections (urllib opens one per request)."""
    seen: dict[str, set[int]] = {}
    for _ in range(connections):
        body = edge.ready()
        if body:
            seen.setdefault(body["worker"], set()).add(body["pid"])
    return seen


def _chat_many(edge: Edge, key: str, prefix: str, count: int) -> list[str]:
    answered = []
    for _ in range(count):
        request_id = f"{prefix}-{uuid.uuid4().hex[:12]}"
        status, body, _ = edge.chat(key, request_id=request_id)
        assert status == 200, body
        answered.append(request_id)
    return answered


def _requests_by_worker(edge: Edge) -> dict[str, float]:
    _, text, _ = http("GET", f"{edge.url}/metrics")
    return requests_by_worker(text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_serve_one_port_as_one_edge(cluster: Cluster) -> None:
    seed = seed_namespace("ns-w", cluster.mock_url)
    cluster.start_bridge()
    edge = cluster.add_edge("multi", "ns-w", EDGE_WORKERS="")
    edge.handle = cluster.start_process(
        fjordgate_argv("edge", "--workers", "2"), edge.env, ready_url=f"{edge.url}/health", timeout=60, name="edge"
    )
    wait_for_http(f"{edge.url}/ready", 60, edge.handle)
    version = config_version("ns-w")

    # both workers answer on the one port, each from its own process (not the supervisor's)
    def both_configured() -> dict[str, set[int]] | None:
        seen = _ready_by_worker(edge)
        return (
            seen if set(seen) == {"0", "1"} and all(edge.ready().get("version", 0) >= version for _ in "ab") else None
        )

    seen = wait_until(both_configured, 60, "both workers ready with the config")
    pids = {pid for pids in seen.values() for pid in pids}
    assert len(pids) == 2 and edge.handle.pid not in pids, seen
    assert {edge.ready()["workers"]} == {2}

    # the control plane: one edge, two workers
    wait_until(
        lambda: EdgeInstance.objects.filter(namespace="ns-w", workers=2).count() == 1, 30, "one edge with 2 workers"
    )
    assert list(EdgeInstance.objects.filter(namespace="ns-w").values_list("edge_id", flat=True)) == ["multi"]

    answered = _chat_many(edge, seed.key, "wk1", 40)

    # SIGKILL one worker: the other keeps answering at once, the supervisor starts a new one in its place
    victim_index, victim_pids = sorted(seen.items())[0]
    (victim,) = victim_pids
    os.kill(victim, signal.SIGKILL)
    # (a connection that reached the victim's socket before the kernel closed it is lost with it: reset)
    edge.handle.wait_for_output(f"worker {victim_index} (pid {victim}) exited with -9", 10)
    answered += _chat_many(edge, seed.key, "wk2", 20)

    def replaced() -> bool:
        now = _ready_by_worker(edge, 20)
        return set(now) == {"0", "1"} and victim not in now[victim_index]

    wait_until(replaced, 60, "the killed worker replaced by a new process")
    wait_until(lambda: all(edge.ready().get("version", 0) >= version for _ in range(10)), 60, "new worker configured")
    answered += _chat_many(edge, seed.key, "wk3", 40)

    # telemetry of both workers, stored exactly once
    def stored() -> Counter[str]:
        rows = AnalyticsEvent.objects.filter(request_id__regex=r"^wk[123]-")
        return Counter(rows.values_list("request_id", flat=True))

    wait_until(lambda: set(answered) <= set(stored()), 60, "every answered request stored", step=0.2)
    counts = stored()
    assert set(counts) == set(answered) and set(counts.values()) == {1}, "each request stored once"
    assert set(AnalyticsEvent.objects.filter(request_id__in=answered).values_list("edge_id", flat=True)) == {"multi"}

    # /metrics, whichever worker answers it, carries both workers' series (the new worker's count starts over)
    wait_until(lambda: set(_requests_by_worker(edge)) == {"0", "1"}, 20, "both workers in /metrics")
    assert all(count > 0 for count in _requests_by_worker(edge).values())

    # SIGTERM: the workers drain, everything exits 0
    workers = {pid for pids in _ready_by_worker(edge).values() for pid in pids}
    edge.handle.send_signal(signal.SIGTERM)
    assert edge.handle.wait(40) == 0, edge.handle.tail()
    assert not [pid for pid in workers if _alive(pid)], "no worker outlives the supervisor"
