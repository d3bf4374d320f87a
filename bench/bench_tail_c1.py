"""The edge's tail at concurrency 1, in process: per-request wall time and CPU time of the loop's thread.

    .venv/bin/python bench/bench_tail_c1.py [--requests 3000] [--gap-ms 0.2] [--runs 2]

Why in process and CPU time: on a shared box the wall-clock p99 of a c=1 loop is mostly other processes taking the
core (bench_edge.py's floor shows p99 of several ms for a 0.3 ms request). What the edge itself adds to its tail
is work that runs on its loop while a request waits: telemetry batches delivered to sinks, KV flushes, timers, GC.
The CPU time of the loop's thread between a request's start and its answer counts that work and not the
neighbours' (it still includes cache effects). The request is the gate's chat request (`bench/gate/workload.py`:
the same snapshot, plugins and in-process mock vendor, each answer checked), served by `create_app` with the
edge's default telemetry settings (batches of 200, 1 s flush, KV commit every 50 ms), as deployed, and `--gap-ms`
of idle loop between requests (a client's turn, when background work due then runs without holding a request).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gate import workload  # noqa: E402
from edge_gateway.app import create_app  # noqa: E402
from edge_gateway.settings import EdgeSettings  # noqa: E402
from shared_sdk.snapshot import encode_snapshot  # noqa: E402

_WARMUP = 300


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(requests: int, gap_s: float, state_dir: str) -> dict[str, list[float]]:
    secret = Fernet.generate_key().decode()
    async with workload.MockUpstream(workload.MODEL) as mock:
        snap = Path(state_dir) / "snapshot.json"
        snap.write_bytes(encode_snapshot(workload.snapshot(mock.base_url, secret)))
        settings = EdgeSettings(
            namespace="gate",
            edge_id="tail-edge",
            state_dir=str(Path(state_dir) / "edge"),
            snapshot_file=str(snap),
            edge_secret=secret,
            log_level="warning",
        )
        app = create_app(settings)
        async with app.app.router.lifespan_context(app.app):
            for _ in range(_WARMUP):
                await workload.request(app, "chat")
            gc_before = [s["collections"] for s in gc.get_stats()]
            wall: list[float] = []
            cpu: list[float] = []
            for _ in range(requests):
                t0, c0 = time.perf_counter(), time.thread_time()
                await workload.request(app, "chat")  # raises when the answer is not the chat answer
                wall.append((time.perf_counter() - t0) * 1e3)
                cpu.append((time.thread_time() - c0) * 1e3)
                await asyncio.sleep(gap_s)
            gc_runs = [s["collections"] - b for s, b in zip(gc.get_stats(), gc_before, strict=True)]
            print(f"  gc collections during the run (gen0, gen1, gen2): {gc_runs}")
            return {"wall": wall, "cpu": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--gap-ms", type=float, default=0.2, help="idle loop time between requests")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    if args.requests < 100:
        parser.error("--requests must be at least 100 for a p99")
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="fjordgate-tail-") as tmp:
            print(f"run {run}: {args.requests} chat requests at c=1")
            figures = uvloop.run(measure(args.requests, args.gap_ms / 1000, tmp))
        for name, values in figures.items():
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            print(
                f"  {name:<4} ms: p50 {p50:.3f}  p90 {percentile(values, 0.9):.3f}  p99 {p99:.3f}  "
                f"p99.9 {percentile(values, 0.999):.3f}  max {max(values):.3f}  p99/p50 {p99 / p50:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
