"""The ingest benchmark (`bench/bench_ingest.py`) still measures what it claims: one small round of both phases
(records waiting in the stream, records waiting in an edge's spool) on real NATS and PostgreSQL stores every
record it sent, exactly once.

Once the bridge refused records naming apps and LLMs outside the sender's namespace (issue 13), the benchmark's
records (app 1, LLM 1, which it never created) were all refused, and it waited ten minutes for rows that never
came. The benchmark is the issue's evidence for ingest at scale; this keeps it runnable.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from control_plane.analytics.models import AnalyticsEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_ingest.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_ingest", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_small_round_of_the_ingest_benchmark_stores_every_record(nats_server, tmp_path):
    bench = _bench_module()

    async def one_round() -> tuple[float, float]:
        try:  # the benchmark asserts on its own that the rows stored are the records sent
            return await asyncio.wait_for(bench._one_size(nats_server.url, 8, 300, tmp_path), timeout=60)
        finally:
            await sync_to_async(connections.close_all)()  # the connection of the benchmark's database thread

    ingest_s, drain_s = asyncio.run(one_round())
    assert ingest_s > 0 and drain_s > 0
    assert AnalyticsEvent.objects.filter(namespace=bench.NAMESPACE, edge_id=bench.EDGE).count() == 100
