"""The edge collects its youngest generation every `GC_YOUNG_THRESHOLD` allocations while it serves, not CPython's
700 (`edge_gateway.app.GC_YOUNG_THRESHOLD` says why), and gives the process its own thresholds back when it stops."""

from __future__ import annotations

import gc
from typing import Any

import httpx

from edge_gateway.app import GC_YOUNG_THRESHOLD

from .support import CLIENT_KEY, make_snapshot, run_edge


def test_a_serving_edge_collects_young_objects_less_often_and_restores_the_thresholds(
    upstream: str, tmp_path: Any
) -> None:
    before = gc.get_threshold()
    assert before[0] != GC_YOUNG_THRESHOLD
    with run_edge(make_snapshot(upstream), tmp_path) as edge:
        answer = httpx.post(
            f"{edge.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before
