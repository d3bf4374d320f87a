"""Where the deployed edge's latency tail at concurrency 1 comes from: the edge, or its neighbours on the same cores.

    .venv/bin/python bench/bench_tail_deployed.py [--rounds 3] [--duration 5] [--pause-bridge | --idle-control-plane]

wrk (`--latency`, one connection, CPU 0) loads the floor, the snapshot edge and the deployed edge (the stack and seed
of `bench_edge.py`: NATS JetStream, spool and journal, bridge, PostgreSQL, leased budget, shared rpm/tpm; edges on
CPU 1) in alternation, `--rounds` times each, and prints p50 / p90 / p99 per round and their medians.

Why: on this two-core box the deployed edge's c=1 tail is measured beside its control plane. Every deployed
request becomes three rows that the bridge and PostgreSQL ingest while the next requests are served, on the same
two cores as the edge, the mock vendor and wrk; the floor and the snapshot edge have no such neighbours.
`--pause-bridge` stops the bridge (SIGSTOP) during each deployed round and resumes it after, so that ingest waits
(the edge keeps spooling and publishing to JetStream; its leases hold for a short round and are topped up by 2 s
of traffic after each): the difference
between a run with and one without is what the control plane's work on the same cores adds to the edge's tail.
`--idle-control-plane` keeps the control plane ingesting but gives it only the CPU time the rest leaves: its
processes (embedded PostgreSQL with every backend it forks, NATS, the bridge; every thread) run under Linux's
SCHED_IDLE policy, as if it ran on other machines, which is how it is deployed beside edges that matter. The
bridge's lag is then checked: every answered request must be an analytics row within 30 s of the end.

At the end: the deployed edge's own latency from its analytics rows (to its accounting, with and without the vendor's
share), beside wrk's, which also counts what the neighbours do to wrk and to the mock vendor.

Self-check: a round whose wrk run answered no request, or answered anything but 2xx, stops the run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from bench.bench_edge import (  # noqa: E402
    KEY,
    MODEL,
    SHARED_MOCK,
    all_cpus,
    free_port,
    pinned,
    run_wrk,
    snapshot,
    wait_ready,
)
from shared_sdk.snapshot import encode_snapshot  # noqa: E402

NAMESPACE = "bench"
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_latency(url: str, seconds: int) -> dict[int, float]:
    """wrk's latency percentiles (ms) for one connection over `seconds`; raises SystemExit on non-2xx answers."""
    out = run_wrk(url, KEY, 1, seconds, extra=("--latency",))
    assert out is not None  # main() checked that wrk is installed
    answered = re.search(r"(\d+) requests in", out)
    if answered is None or not int(answered.group(1)) or "Non-2xx" in out:
        raise SystemExit(f"{url}: wrk got no answer or non-2xx answers:\n{out}")
    ANSWERED[url] = ANSWERED.get(url, 0) + int(answered.group(1))
    percentiles = {}
    for percent, value in re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)", out, re.M):
        number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
        percentiles[int(percent)] = float(number) * _UNITS_MS[unit]
    if "Socket errors" in out or not percentiles.get(50):
        raise SystemExit(
            f"{url}: requests timed out (with --pause-bridge: a lease ran out; try a shorter --duration):\n{out}"
        )
    return percentiles


def _own_latency(db_url: str, edge_id: str, since: float) -> str:
    """The deployed edge's latency as it records it in each analytics row (`latency_ms`: from the request's ASGI
    call to its accounting, so without the HTTP parse before, the durability wait and the last write after) with
    the vendor's share (`upstream_latency_ms`), over the rounds (warm-up and catch-up runs included when paused).

    Why: wrk's c=1 percentiles include what the neighbours do to wrk and to the mock vendor, both on CPU 0; next
    to the edge's own figures they say how much of a tail is the edge's."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT latency_ms, upstream_latency_ms FROM analytics_analyticsevent "
            "WHERE edge_id = %s AND timestamp >= to_timestamp(%s)",
            (edge_id, since),
        ).fetchall()
    if not rows:
        return "deployed edge's own latency: no analytics rows"
    total = sorted(float(row[0]) for row in rows)
    own = sorted(float(row[0]) - float(row[1]) for row in rows)

    def at(values: list[float], percent: int) -> float:
        return values[min(len(values) - 1, len(values) * percent // 100)]

    return (
        f"deployed edge's own latency ({len(rows)} analytics rows), ms: p50 {at(total, 50):.3f} "
        f"p90 {at(total, 90):.3f} p99 {at(total, 99):.3f}; without the vendor's share: p50 {at(own, 50):.3f} p90 {at(own, 90):.3f} "
        f"p99 {at(own, 99):.3f}"
    )


ANSWERED: dict[str, int] = {}
"""Requests wrk counted as answered, per URL (for the check that every deployed answer was stored)."""


def _idle(pid: int) -> int:
    """Every thread of `pid` and of its descendants under SCHED_IDLE (a process forked later inherits it); how many."""
    from bench.deployed_stack import children

    count = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setscheduler(int(task.name), os.SCHED_IDLE, os.sched_param(0))
        count += 1
    return count + sum(_idle(child) for child in children(pid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk per target and round")
    parser.add_argument("--pause-bridge", action="store_true", help="SIGSTOP the bridge during deployed rounds")
    parser.add_argument(
        "--idle-control-plane", action="store_true", help="PostgreSQL, NATS and the bridge under SCHED_IDLE"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    os.sched_setaffinity(0, {0})
    from bench.bridge_lag import stored_rows
    from bench.deployed_seed import seed_like_snapshot
    from bench.deployed_stack import DeployedStack

    py = sys.executable
    os.environ.setdefault("FJORDGATE_EDGE_SECRET", Fernet.generate_key().decode())
    with tempfile.TemporaryDirectory(prefix="bench-tail-") as tmp, ExitStack() as exits:
        procs: list[subprocess.Popen] = []
        exits.callback(lambda: [proc.kill() for proc in procs])
        mock_port = free_port()
        procs.append(
            subprocess.Popen(
                [*pinned(0), py, str(SHARED_MOCK), "--port", str(mock_port), "--chunks", "20"],
                stdout=subprocess.DEVNULL,
            )
        )
        mock_base = f"http://127.0.0.1:{mock_port}"
        upstream = f"{mock_base}/v1"
        wait_ready(f"{mock_base}/health")
        floor_port = free_port()
        procs.append(
            subprocess.Popen(
                [
                    *pinned(1),
                    py,
                    "bench/floor_proxy.py",
                    "--port",
                    str(floor_port),
                    "--upstream",
                    upstream,
                    "--key",
                    KEY,
                ],
                cwd=ROOT,
            )
        )
        wait_ready(f"http://127.0.0.1:{floor_port}/health")
        with all_cpus():
            stack = exits.enter_context(DeployedStack(Path(tmp), database="fj_bench_tail"))
        seed_like_snapshot(namespace=NAMESPACE, upstream_v1=upstream, key=KEY, model=MODEL)
        snap_url, _ = stack.snapshot_edge(
            "bench-snapshot", NAMESPACE, encode_snapshot(snapshot(upstream)), prefix=pinned(1)
        )
        # Paused rounds: leases renewed every second once the bridge is back (a lease not renewed within its TTL,
        # 30 s, stops being spent and every request would wait for the ledger).
        renew = {"EDGE_LEASE_RENEW_S": "1"} if args.pause_bridge else {}
        url, _ = stack.edge("bench-deployed", NAMESPACE, env=renew, prefix=pinned(1))
        stack.wait_config([url], NAMESPACE)
        bridge_pid = stack.bridge_pid
        if args.idle_control_plane:
            if not stack.embedded_postgres:
                raise SystemExit("--idle-control-plane needs the embedded PostgreSQL (unset DATABASE_URL)")
            idled = sum(_idle(pid) for pid in stack.backend_pids)
            print(f"control plane under SCHED_IDLE: {idled} threads", flush=True)
        targets = {
            "floor": f"http://127.0.0.1:{floor_port}/v1/chat/completions",
            "snapshot": f"{snap_url}/v1/chat/completions",
            "deployed": f"{url}/v1/chat/completions",
        }
        for target in targets.values():
            wrk_latency(target, 1)  # warm-up
        results: dict[str, list[dict[int, float]]] = {name: [] for name in targets}
        measured_from = time.time()
        for round_ in range(args.rounds):
            for name in list(targets) if round_ % 2 == 0 else list(reversed(targets)):
                pause = args.pause_bridge and name == "deployed"
                if pause:
                    os.kill(bridge_pid, signal.SIGSTOP)
                try:
                    results[name].append(wrk_latency(targets[name], args.duration))
                finally:
                    if pause:
                        os.kill(bridge_pid, signal.SIGCONT)
                if pause:  # the bridge catches up, and traffic tops the edge's leases up before the next pause
                    time.sleep(3)
                    wrk_latency(targets[name], 2)
            print(
                f"round {round_ + 1}: "
                + "; ".join(
                    f"{name} p50 {results[name][-1][50]:.2f} p90 {results[name][-1][90]:.2f} "
                    f"p99 {results[name][-1][99]:.2f}"
                    for name in targets
                ),
                flush=True,
            )
        stored = stored_rows(stack.db_url, "bench-deployed")
        deadline, waited = time.monotonic() + 30, time.monotonic()
        while stored() < ANSWERED[targets["deployed"]]:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"deployed edge: {stored()} analytics rows of {ANSWERED[targets['deployed']]} answers after 30 s"
                )
            time.sleep(0.1)
        print(
            f"every deployed answer stored ({ANSWERED[targets['deployed']]} answers), "
            f"{time.monotonic() - waited:.1f} s after the last round",
            flush=True,
        )
        print(_own_latency(stack.db_url, "bench-deployed", measured_from), flush=True)
        floor_p99 = statistics.median(r[99] for r in results["floor"])
        for name, rounds in results.items():
            p99 = statistics.median(r[99] for r in rounds)
            print(
                f"{name}: median ms p50 {statistics.median(r[50] for r in rounds):.3f} "
                f"p90 {statistics.median(r[90] for r in rounds):.3f} p99 {p99:.3f} ({p99 / floor_p99:.2f}x the floor's)"
                + (" [bridge paused]" if args.pause_bridge and name == "deployed" else "")
            )


if __name__ == "__main__":
    main()
