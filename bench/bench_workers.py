"""Edge throughput with 1 and with N workers (`EDGE_WORKERS`), same snapshot-file edge, mock and load, one run.

    .venv/bin/python bench/bench_workers.py [--workers 2] [--duration 8] [--concurrency 64]

What it shows: how requests/s scale when the edge runs one worker per core (issue 17: >= 0.9 x N), and that
CPU per request does not grow with workers (the supervisor does nothing per request; each worker is the whole
edge). Nothing is pinned: the workers, the mock and this script's load generator share the machine's cores, so
on a 2-core box the load generator and the mock take CPU the second worker would need, and the figure is a lower
bound of the scaling; on a loaded shared machine repeat it and read it with that caveat. The closed loop is
this script's raw-HTTP client (`bench_edge.throughput`, no httpx overhead) on uvloop.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
import uvloop  # noqa: E402
from bench_edge import (  # noqa: E402
    KEY,
    SHARED_MOCK,
    cpu_seconds,
    free_port,
    latency,
    snapshot,
    start,
    throughput,
    wait_ready,
)
from cryptography.fernet import Fernet  # noqa: E402
from deployed_stack import children  # noqa: E402

from shared_sdk.snapshot import encode_snapshot  # noqa: E402


def edge_pids(proc: subprocess.Popen, workers: int) -> list[int]:
    return [proc.pid] + (children(proc.pid) if workers > 1 else [])


def wait_workers(url: str, workers: int, timeout: float = 60) -> None:
    """Until /ready answered from `workers` distinct workers (fresh connections land on any of them)."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline and len(seen) < workers:
        try:
            with httpx.Client() as client:  # a new connection per request
                body = client.get(f"{url}/ready", timeout=1).json()
            if body.get("status") == "ready":
                seen.add(str(body.get("worker", "")))
        except (httpx.HTTPError, ValueError):
            time.sleep(0.1)
    if len(seen) < workers:
        raise SystemExit(f"only workers {sorted(seen)} became ready")


def run_one(workers: int, env: dict[str, str], tmp: str, args: argparse.Namespace) -> dict:
    port = free_port()
    env = {**env, "EDGE_PORT": str(port), "EDGE_WORKERS": str(workers), "EDGE_STATE_DIR": f"{tmp}/state-{workers}"}
    proc = start([sys.executable, "-m", "edge_gateway"], env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/ready")
        wait_workers(url, workers)
        chat = f"{url}/v1/chat/completions"
        uvloop.run(latency(chat, KEY, 200))
        uvloop.run(throughput(chat, KEY, args.concurrency, 1.0))  # warm-up at load
        pids = edge_pids(proc, workers)
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        count = uvloop.run(throughput(chat, KEY, args.concurrency, args.duration))
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
        return {
            "workers": workers,
            "rps": round(count / args.duration),
            "cpu_ms_per_req": round(cpu * 1000 / count, 3) if count else None,
            "cpu_cores_busy": round(cpu / args.duration, 2),
        }
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=2, help="alternating 1-worker / N-worker runs")
    args = parser.parse_args()
    secret = os.environ.setdefault("FJORDGATE_EDGE_SECRET", Fernet.generate_key().decode())
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        try:
            mock_port = free_port()
            if SHARED_MOCK.is_file():
                procs.append(start([sys.executable, str(SHARED_MOCK), "--port", str(mock_port)]))
            else:
                procs.append(start([sys.executable, "-m", "fjordgate.mock_llm", "--port", str(mock_port)]))
            wait_ready(f"http://127.0.0.1:{mock_port}/health")
            snap = Path(tmp) / "snapshot.json"
            snap.write_bytes(encode_snapshot(snapshot(f"http://127.0.0.1:{mock_port}/v1")))
            env = {
                **os.environ,
                "FJORDGATE_EDGE_SECRET": secret,
                "EDGE_SNAPSHOT_FILE": str(snap),
                "EDGE_NAMESPACE": "bench",
                "EDGE_ID": "bench-edge",
                "EDGE_LOG_LEVEL": "warning",
                "PYTHONPATH": str(ROOT),
            }
            env.pop("NATS_URL", None)
            results = []
            for _ in range(args.runs):
                for workers in (1, args.workers):
                    results.append(run_one(workers, env, tmp, args))
                    print(json.dumps(results[-1]), flush=True)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    one = [r["rps"] for r in results if r["workers"] == 1]
    many = [r["rps"] for r in results if r["workers"] == args.workers]
    print(
        f"requests/s: 1 worker {one}, {args.workers} workers {many}; "
        f"scaling {max(many) / max(one):.2f}x (best of each; target >= {0.9 * args.workers:.1f}x on an idle machine)"
    )


if __name__ == "__main__":
    main()
