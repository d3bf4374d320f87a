"""Telemetry ingest at scale: records per second from NATS into PostgreSQL through the bridge's own code, and the
time to drain an edge spool of 100,000 records after an outage; one row per bridge batch size (the knob).

    .venv/bin/python bench/bench_ingest.py [--records 100000] [--batch-sizes 8,64,256] [--logs-from-analytics]

Real components, in one process: embedded PostgreSQL (migrated, fsync on) and nats-server with JetStream, the
edge's SQLite spool and `TelemetryShipper`, the bridge's `TelemetryIngestor` (durable pull consumer, bulk insert,
ack after commit). Records are what an edge ships per request: an analytics record and a proxy log with the same
record id (an edge logging bodies); the bridge stores three rows per request, the budget-usage row built from the
analytics record (`TelemetryBatch.budget_usage_from_analytics`). `--records` counts rows: 100,000 rows are ~33,334
requests. (Before session 16 the edge shipped the usage record too: three records for the same three rows.)
`--logs-from-analytics`: what an edge that logs no bodies ships (the default, `EDGE_LOG_BODIES` off): the analytics
record only, from which the bridge builds the proxy log row too (`TelemetryBatch.proxy_logs_from_analytics`).

- ingest: the stream already holds the records (shipped before the bridge starts); time until the bridge
  has committed them all. Goal >= 20,000 records/s (Tyk publishes ~23,600/s for its batch analytics).
- drain: the spool holds the records (NATS was unreachable); the shipper and the bridge start together; time
  until every record is in PostgreSQL.
Each row also checks exactly-once: the tables hold exactly three rows per request sent, no more, no fewer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fjordgate.embedded import free_port, nats_plan, postgres_plan, run_server  # noqa: E402
from fjordgate.postgres_home import scratch_dir  # noqa: E402

NAMESPACE, EDGE = "bench", "bench-edge-1"


def _setup_django(database_url: str) -> None:
    from cryptography.fernet import Fernet

    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "control_plane.config.settings",
            "DJANGO_SECRET_KEY": "bench-only-" + "x" * 40,
            "FJORDGATE_SECRET_KEY": Fernet.generate_key().decode(),
            "FJORDGATE_EDGE_SECRET": Fernet.generate_key().decode(),
        }
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _seed() -> tuple[int, int]:
    """(app id, LLM id) that every record names: an app and an LLM of the benchmark's namespace.

    The bridge stores a record only when the app and LLM it names exist and belong to the namespace of the subject
    it came on (`control_plane.bridge.identity`); records naming ids that do not exist are refused, and the
    benchmark would wait for rows that never come. Idempotent: one pair serves every batch size.
    """
    from control_plane.applications.models import App
    from control_plane.applications.services import app_create
    from control_plane.llms.models import LLM
    from control_plane.llms.services import llm_create

    llm = LLM.objects.filter(slug="bench-mock", namespace=NAMESPACE).first() or llm_create(
        data={
            "name": "bench-mock",
            "slug": "bench-mock",
            "vendor": "mock",
            "api_endpoint": "http://mock.invalid/v1",
            "namespace": NAMESPACE,
        }
    )
    app = App.objects.filter(name="bench", namespace=NAMESPACE).first() or app_create(
        data={"name": "bench", "namespace": NAMESPACE, "llm_ids": [llm.pk]}
    )
    return app.pk, llm.pk


def _requests(count: int, tag: str, app_id: int, llm_id: int, *, proxy_logs: bool = True) -> list:
    from decimal import Decimal

    from shared_sdk.messages import AnalyticsRecord, ProxyLog

    records: list = []
    for i in range(count):
        request_id = f"{tag}-{i}"
        analytics = AnalyticsRecord(
            request_id=request_id,
            app_id=app_id,
            llm_id=llm_id,
            llm_slug="mock",
            vendor="mock",
            model="mock-gpt",
            status_code=200,
            prompt_tokens=12,
            completion_tokens=30,
            total_tokens=42,
            cost=Decimal("0.000072"),
            latency_ms=41.5,
            edge_id=EDGE,
            namespace=NAMESPACE,
        )
        common = {"record_id": analytics.record_id, "request_id": request_id, "app_id": app_id, "llm_id": llm_id}
        records.append(analytics)
        if proxy_logs:
            records.append(
                ProxyLog(**common, vendor="mock", method="POST", path="/v1/chat/completions", response_code=200)
            )
    return records


def _stored() -> int:
    from control_plane.analytics.models import AnalyticsEvent, BudgetUsageRecord, ProxyLogRecord

    return sum(model.objects.count() for model in (AnalyticsEvent, BudgetUsageRecord, ProxyLogRecord))


def _truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE analytics_analyticsevent, analytics_budgetusagerecord, analytics_proxylogrecord")


async def _fill_spool(shipper, records: list) -> None:
    for start in range(0, len(records), 3000):
        await shipper.submit_batch(records[start : start + 3000])


async def _wait_inserted(ingestor, expected: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while ingestor.records_inserted < expected:
        if ingestor.records_refused:  # those rows will never come: say so now instead of at the timeout
            raise RuntimeError(f"the bridge refused {ingestor.records_refused} of {expected} records (see its log)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {ingestor.records_inserted} of {expected} records stored in {timeout:.0f}s")
        await asyncio.sleep(0.01)


async def _one_size(
    nats_url: str, batch: int, records_wanted: int, tmp: Path, *, proxy_logs: bool = True
) -> tuple[float, float]:
    import nats
    from asgiref.sync import sync_to_async
    from prometheus_client import CollectorRegistry

    from control_plane.bridge.runner import ensure_up_stream
    from control_plane.bridge.telemetry import TelemetryIngestor
    from edge_gateway.telemetry.shipper import TelemetryShipper
    from edge_gateway.telemetry.spool import Spool

    requests = -(-records_wanted // 3)
    rows = 3 * requests  # analytics, budget usage (built by the bridge), proxy log
    app_id, llm_id = await sync_to_async(_seed)()
    nc = await nats.connect(nats_url)
    js = nc.jetstream(timeout=10)
    await ensure_up_stream(js)
    results = []
    for phase in ("ingest", "drain"):
        await sync_to_async(_truncate)()
        records = _requests(requests, f"{phase}-{batch}", app_id, llm_id, proxy_logs=proxy_logs)
        spool = Spool(tmp / f"spool-{phase}-{batch}.db", max_bytes=1 << 30, registry=CollectorRegistry())
        await spool.open()
        shipper = TelemetryShipper(namespace=NAMESPACE, edge_id=EDGE, spool=spool, linger_s=0, proxy_logs=proxy_logs)
        await _fill_spool(shipper, records)  # NATS "unreachable": the shipper is not attached yet
        ingestor = TelemetryIngestor(js, fetch_batch=batch)
        shipping = asyncio.create_task(shipper.run())
        shipper.attach(nc)
        if phase == "ingest":
            while spool.records:  # everything in the stream before the bridge starts
                await asyncio.sleep(0.02)
        started = time.perf_counter()
        consuming = asyncio.create_task(ingestor.run())
        await _wait_inserted(ingestor, rows)
        results.append(time.perf_counter() - started)
        for task in (shipping, consuming):
            task.cancel()
        await asyncio.gather(shipping, consuming, return_exceptions=True)
        # The stopped bridge's last pull request stays open on the server until it expires (the fetch timeout, 1 s):
        # messages published meanwhile are delivered to it, never acknowledged, and come again only after the
        # consumer's ack_wait (30 s). Without this wait the next phase measured that 30 s, not the bridge.
        await asyncio.sleep(1.2)
        await spool.close()
        stored = await sync_to_async(_stored)()
        assert stored == rows, f"{stored} rows for {requests} requests sent ({len(records)} records), not {rows}"
    await nc.close()
    return results[0], results[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch-sizes", default="8,64,256", help="messages the bridge fetches per transaction")
    parser.add_argument(
        "--logs-from-analytics",
        action="store_true",
        help="the edge ships no proxy logs (no bodies): one record per request",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="fj-bench-ingest-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        pg_dir = scratch_dir("fj-bench-ingest-pg-")
        stack.callback(shutil.rmtree, pg_dir, ignore_errors=True)
        pg = stack.enter_context(run_server(postgres_plan(pg_dir / "pg", free_port()), tmp / "pg.log"))
        nats = stack.enter_context(run_server(nats_plan(tmp / "nats", free_port()), tmp / "nats.log"))
        _setup_django(pg.url)
        records = -(-args.records // 3) * 3
        print(
            f"{records} rows per row of this table (analytics, budget usage, proxy log per request; the edge ships "
            f"{'one record' if args.logs_from_analytics else 'two records'} per request), PostgreSQL fsync on"
        )
        print(f"{'batch (msgs)':>12} {'ingest s':>9} {'ingest rows/s':>13} {'drain s':>8} {'drain rows/s':>12}")
        for size in sizes:
            ingest_s, drain_s = asyncio.run(
                _one_size(nats.url, size, args.records, tmp, proxy_logs=not args.logs_from_analytics)
            )
            print(
                f"{size:>12} {ingest_s:>9.2f} {records / ingest_s:>13,.0f} {drain_s:>8.2f} {records / drain_s:>12,.0f}"
            )


if __name__ == "__main__":
    main()
