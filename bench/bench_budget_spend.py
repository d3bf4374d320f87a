"""What a budget's spend costs to read as its period fills: the bridge reads it for every budget of a namespace
every 0.25 s while usage flows (`bridge.budgets`), and for every lease it grants (`budgets.leasing`).

    .venv/bin/python bench/bench_budget_spend.py [--rows 1000000] [--checkpoints 10000,100000,1000000]

Real components, in one process: embedded PostgreSQL (migrated), usage records stored through the bridge's own
ingest (`analytics_ingest_batches`, 500 records per batch, as an edge ships them), spread over the current monthly
period up to now, all for one app, user and LLM and three edges. At each checkpoint (records stored so far) it times
`budget_spend_for_snapshot` over four budgets (app, user, group, LLM; median of 7 calls) and checks the figures
against a plain SUM over the stored records, so a fast answer is also a right one.

Why: the spend was a SUM over every usage record of the period, so its cost grew with the period's traffic. At
1,000 requests/s a month holds 2.6 billion records; the bridge reads four such sums a second per budget.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import _setup_django  # noqa: E402
from fjordgate.embedded import free_port, postgres_plan, run_server  # noqa: E402
from fjordgate.postgres_home import scratch_dir  # noqa: E402

APP, USER, GROUP, LLM = 7, 11, 5, 3
EDGES = ("edge-a", "edge-b", "edge-c")
BATCH = 500


def _budgets(start: float, end: float) -> list:
    from shared_sdk.snapshot import BudgetConfig, BudgetScope

    targets: tuple[tuple[BudgetScope, int], ...] = (("app", APP), ("user", USER), ("group", GROUP), ("llm", LLM))
    return [
        BudgetConfig(id=n, scope=scope, target_id=target, limit=Decimal(10**6), period_start=start, period_end=end)
        for n, (scope, target) in enumerate(targets, 1)
    ]


def _store(first: int, count: int, start: float, now: float) -> None:
    """`count` usage records (numbered from `first`) spread evenly over [start, now), through the bridge's ingest."""
    from control_plane.analytics.services import analytics_ingest_batches
    from shared_sdk.messages import BudgetUsage
    from shared_sdk.sync_protocol import TelemetryBatch

    step = (now - start) / max(count, 1)
    for offset in range(0, count, BATCH):
        n = min(BATCH, count - offset)
        usage = [
            BudgetUsage(
                record_id=f"r{first + offset + i}",
                app_id=APP,
                user_id=USER,
                llm_id=LLM,
                cost=Decimal("0.000125"),
                timestamp=start + step * (offset + i),
            )
            for i in range(n)
        ]
        edge = EDGES[(first + offset) // BATCH % len(EDGES)]
        analytics_ingest_batches(
            [
                TelemetryBatch(
                    batch_id=f"b{first + offset}", edge_id=edge, namespace="bench", created_at=now, budget_usage=usage
                )
            ]
        )


def _timed(snapshot) -> tuple[float, list]:  # noqa: ANN001 (ConfigSnapshot, imported after django.setup)
    from control_plane.analytics.selectors import budget_spend_for_snapshot

    samples, spends = [], []
    for _ in range(7):
        t0 = time.perf_counter()
        spends = budget_spend_for_snapshot(snapshot=snapshot)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), spends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="usage records stored in the end")
    parser.add_argument("--checkpoints", default="", help="record counts to time at (default: 1%%, 10%%, 100%%)")
    args = parser.parse_args()
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if c} or {args.rows // 100, args.rows // 10})
    checkpoints = [c for c in checkpoints if 0 < c < args.rows] + [args.rows]
    pg_dir = scratch_dir("fj-bench-spend-pg-")
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            run_server(postgres_plan(pg_dir / "pg", free_port(), durable=False), Path(tmp) / "pg.log") as pg,
        ):
            _setup_django(pg.url)
            from django.db.models import Sum

            from control_plane.analytics.models import BudgetUsageRecord
            from shared_sdk.snapshot import ConfigSnapshot, UserConfig

            now = dt.datetime.now(dt.UTC)
            start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            end = (start + dt.timedelta(days=32)).replace(day=1)
            snapshot = ConfigSnapshot(
                namespace="bench",
                version=1,
                budgets=_budgets(start.timestamp(), end.timestamp()),
                users=[UserConfig(id=USER, email="u@bench.invalid", group_ids=[GROUP])],
            )
            print(f"spend of 4 budgets (app, user, group, LLM) per read, median of 7; period {start:%Y-%m-%d} on")
            stored = 0
            for checkpoint in checkpoints:
                added = checkpoint - stored
                t0 = time.perf_counter()
                _store(stored, added, start.timestamp(), now.timestamp())
                ingest_s = time.perf_counter() - t0
                stored = checkpoint
                ms, spends = _timed(snapshot)
                expected = BudgetUsageRecord.objects.aggregate(s=Sum("cost"))["s"]
                wrong = [s.budget_id for s in spends if s.spent != expected]
                if wrong:
                    raise SystemExit(f"budgets {wrong}: spend differs from the stored records' sum {expected}")
                print(
                    f"  {stored:>10,} records: {ms:8.2f} ms per read ({ms / 4:.2f} ms per budget); "
                    f"ingest {added / ingest_s:,.0f} records/s",
                    flush=True,
                )
    finally:
        shutil.rmtree(pg_dir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("FJORDGATE_LOG_LEVEL", "WARNING")
    main()
