"""What the deployed edge pays per request beyond the snapshot edge: CPU per request of both, interleaved, in one run.

    .venv/bin/python bench/deployed_overhead.py [--rounds 4] [--duration 4] [--streams] [-v] [--baseline DIR]
        [--py-spy OUT] [--strace OUT] [--workers N [--bridges M]]

Why a script of its own: `bench_edge.py` measures each target once, one after the other, on a box where other
processes come and go, so a ratio of two targets measured a minute apart carries that minute's noise. Here the
snapshot edge and the deployed edge (NATS JetStream, spool, bridge, leased budget, shared rpm/tpm: the stack and
seed of `bench_edge.py`) run side by side, pinned to CPU 1, and wrk (CPU 0) loads them in alternation, `--rounds`
times each; the ratio of each round and their median are printed. `--baseline DIR`: also a deployed edge run from
the source tree DIR (`git archive <commit> | tar -x -C DIR`), for a before/after in one run. `-v`: per target, the
kernel share of its CPU, context switches per request and each thread's CPU per request. `--streams`: the load is
streamed chats (`bench_edge.py`'s STREAM_BODY), every figure per stream. `--py-spy OUT` records
each edge (native frames, per thread, raw: `OUT.<target>`) and, with `--workers`, the bridge (`OUT.bridge`);
`--strace OUT` counts each edge's syscalls (`OUT.<target>`), each during an extra round. `--workers N` (N >= 2)
then loads a deployed edge with N workers on every core and prints the bridge's lag under that load
(`bridge_lag.py`) with the CPU the bridges (`--bridges M` of them), PostgreSQL + NATS and the edges used.

Self-checks: a wrk run that answers nothing stops the run (non-2xx answers are not counted as requests), and every
request the deployed edge answered under wrk must be an analytics row in PostgreSQL before the end (a deployed edge
that dropped telemetry would look cheaper than it is). Every process started is stopped by its pid.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from bench.bench_edge import (  # noqa: E402
    BODY,
    KEY,
    MODEL,
    SHARED_MOCK,
    STREAM_BODY,
    all_cpus,
    check_deployed,
    cpu_seconds,
    free_port,
    pinned,
    snapshot,
    throughput,
    wait_ready,
    wrk_throughput,
)
from shared_sdk.snapshot import encode_snapshot  # noqa: E402

NAMESPACE = "bench"


def cpu_ms_per_request(url: str, pids: int | list[int], duration: float, concurrency: int) -> tuple[float, int]:
    """(CPU ms per request of `pids`, requests answered) under wrk's closed-loop load (after a 0.5 s warm-up)."""
    body = STREAM_BODY if STREAMS else BODY
    uvloop.run(throughput(url, KEY, concurrency, 0.5, body))
    cpu0, kernel0, switches0 = cpu_seconds(pids), _kernel_seconds(pids), _switches(pids)
    count = wrk_throughput(url, KEY, concurrency, duration, body)
    if count is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    if not count:
        raise SystemExit(f"{url}: no request answered under load")
    cpu = cpu_seconds(pids) - cpu0
    if VERBOSE:
        kernel, switches = _kernel_seconds(pids) - kernel0, _switches(pids)
        per_thread = {
            name: ((n - switches0.get(name, (0, 0.0))[0]) / count, (c - switches0.get(name, (0, 0.0))[1]) * 1e6 / count)
            for name, (n, c) in switches.items()
        }
        busiest = sorted(per_thread.items(), key=lambda item: -item[1][1])[:4]
        print(
            f"  {url}: kernel {100 * kernel / cpu:.0f}% of CPU, {sum(n for n, _ in per_thread.values()):.2f} context "
            "switches per request; per thread (switches, CPU us) per request: "
            + ", ".join(f"{name} {n:.2f} {c:.0f}" for name, (n, c) in busiest),
            flush=True,
        )
    return cpu * 1000 / count, count


VERBOSE = False
STREAMS = False
"""`--streams`: every figure per stream (bench_edge's STREAM_BODY: the mock's 20-event answer) instead of per chat."""


def _kernel_seconds(pids: int | list[int]) -> float:
    """System CPU of the processes (the syscalls and thread hand-offs a request costs show here)."""
    total = 0.0
    for pid in pids if isinstance(pids, list) else [pids]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[12]) / os.sysconf("SC_CLK_TCK")
    return total


def _switches(pids: int | list[int]) -> dict[str, tuple[int, float]]:
    """(context switches, CPU seconds) per thread (`name:tid`) of the processes."""
    found: dict[str, tuple[int, float]] = {}
    for pid in pids if isinstance(pids, list) else [pids]:
        for task in Path(f"/proc/{pid}/task").iterdir():
            name = (task / "comm").read_text().strip()
            status = (task / "status").read_text().splitlines()
            switches = sum(int(line.split()[1]) for line in status if "ctxt_switches:" in line)
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            found[f"{name}:{task.name}"] = (switches, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of wrk load per target and round")
    parser.add_argument("--streams", action="store_true", help="load with streamed chats: CPU per stream")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--py-spy", metavar="OUT", help="py-spy each edge (and the bridge, with --workers) into OUT.<name>"
    )
    parser.add_argument("--workers", type=int, default=0, help="also a deployed edge with N workers: its bridge lag")
    parser.add_argument("--strace", metavar="OUT", help="count each edge's syscalls (strace -c -f) in an extra round")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also a deployed edge run from the source tree DIR (e.g. `git archive` of main)",
    )
    parser.add_argument("--bridges", type=int, default=1, help="bridges running for the lag measurement (--workers)")
    parser.add_argument("-v", "--verbose", action="store_true", help="kernel share and context switches per round")
    args = parser.parse_args()
    global VERBOSE, STREAMS
    VERBOSE = args.verbose
    STREAMS = args.streams
    py = sys.executable
    os.sched_setaffinity(0, {0})
    from bench.bridge_lag import LagWatch, bridge_backlog, mock_request_count, row_lags, stored_rows
    from bench.deployed_seed import seed_like_snapshot
    from bench.deployed_stack import DeployedStack, children

    os.environ.setdefault("FJORDGATE_EDGE_SECRET", Fernet.generate_key().decode())
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp, ExitStack() as exits:
        mock_port = free_port()
        mock_args = [str(SHARED_MOCK), "--port", str(mock_port), "--chunks", "20"] if SHARED_MOCK.is_file() else None
        mock = subprocess.Popen(
            [*pinned(0), py, *(mock_args or ["-m", "fjordgate.mock_llm", "--port", str(mock_port)])],
            stdout=subprocess.DEVNULL,
        )
        exits.callback(_stop, mock)
        mock_base = f"http://127.0.0.1:{mock_port}"
        upstream = f"{mock_base}/v1"
        wait_ready(f"{mock_base}/health")
        with all_cpus():
            stack = exits.enter_context(DeployedStack(Path(tmp), database="fj_bench_overhead"))
        seed_like_snapshot(namespace=NAMESPACE, upstream_v1=upstream, key=KEY, model=MODEL)

        snap_url, snap = stack.snapshot_edge(
            "bench-snapshot", NAMESPACE, encode_snapshot(snapshot(upstream)), prefix=pinned(1)
        )

        edge_id = "bench-deployed"
        url, deployed = stack.edge(edge_id, NAMESPACE, prefix=pinned(1))
        stack.wait_config([url], NAMESPACE)
        answered = mock_request_count(mock_base)
        stored = stored_rows(stack.db_url, edge_id)
        exits.callback(stored.close)  # type: ignore[attr-defined]
        check_deployed(url, answered, stored, 4)

        targets = {
            "snapshot": (f"{snap_url}/v1/chat/completions", snap.pid),
            "deployed": (f"{url}/v1/chat/completions", deployed.pid),
        }
        if args.baseline:
            # The same edge from another source tree: cwd and PYTHONPATH decide which `edge_gateway` is imported.
            base = str(Path(args.baseline).resolve())
            base_url, base_proc = stack.edge(
                "bench-baseline", NAMESPACE, env={"PYTHONPATH": base}, prefix=[*pinned(1), "env", "-C", base]
            )
            stack.wait_config([base_url], NAMESPACE)
            targets["baseline"] = (f"{base_url}/v1/chat/completions", base_proc.pid)
        ratios: dict[str, list[float]] = {name: [] for name in targets if name != "snapshot"}
        figures: dict[str, list[float]] = {name: [] for name in targets}
        stored0 = stored()
        deployed_answered = 0
        for round_ in range(args.rounds):
            order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
            this = {}
            for name in order:
                target_url, pid = targets[name]
                this[name], count = cpu_ms_per_request(target_url, pid, args.duration, args.concurrency)
                if name == "deployed":
                    deployed_answered += count
                figures[name].append(this[name])
            for name in ratios:
                ratios[name].append(this[name] / this["snapshot"])
            print(
                f"round {round_ + 1}: CPU ms/request "
                + ", ".join(f"{name} {this[name]:.3f}" for name in targets)
                + "; / snapshot: "
                + ", ".join(f"{name} {ratios[name][-1]:.2f}" for name in ratios),
                flush=True,
            )
        if args.py_spy:
            for name in targets:
                _record(py, targets[name], f"{args.py_spy}.{name}", args)
        if args.strace:
            for name in targets:
                _strace(targets[name], f"{args.strace}.{name}", args)
        # The self-check: every answer of the deployed edge (warm-ups included) is a row in PostgreSQL.
        deadline = time.monotonic() + 60
        while stored() - stored0 < deployed_answered:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {stored() - stored0} analytics rows stored for {deployed_answered}+ answers")
            time.sleep(0.2)
        result: dict[str, object] = {
            "cpu_ms": figures,
            "ratios_to_snapshot": ratios,
            "median_ratio": {name: statistics.median(values) for name, values in ratios.items()},
        }
        for name, values in ratios.items():
            print(
                f"median {name} / snapshot CPU per request: {statistics.median(values):.2f} over {args.rounds} "
                f"rounds ({name} median {statistics.median(figures[name]):.3f} ms, "
                f"snapshot {statistics.median(figures['snapshot']):.3f} ms)"
            )
        stack.stop(deployed)
        if args.baseline:
            stack.stop(base_proc)
        if args.workers >= 2:
            result["lag"] = _lag(stack, args, answered, bridge_backlog, LagWatch, stored_rows, children, row_lags)
        print(json.dumps(result))


def _lag(stack, args, answered, bridge_backlog, LagWatch, stored_rows, children, row_lags) -> dict:  # noqa: ANN001, N803
    """A deployed edge with `args.workers` workers on every core, loaded by wrk; the bridge's lag meanwhile."""
    edge_id = "bench-deployed-n"
    for _ in range(args.bridges - 1):  # more bridges share the telemetry consumer (tests/e2e/test_several_bridges.py)
        port = free_port()
        with all_cpus():
            extra = stack.start(
                [sys.executable, "manage.py", "run_bridge"],
                {"BRIDGE_HEALTH_PORT": str(port)},
                f"http://127.0.0.1:{port}/health",
            )
        stack.backend_pids.append(extra.pid)
    everywhere = ["taskset", "-c", f"0-{(os.cpu_count() or 1) - 1}"]
    url, proc = stack.edge(edge_id, NAMESPACE, env={"EDGE_WORKERS": str(args.workers)}, prefix=everywhere)
    backlog = bridge_backlog(stack.env["NATS_URL"])
    stored = stored_rows(stack.db_url, edge_id)
    try:
        stack.wait_config([url], NAMESPACE, workers=args.workers)
        check_deployed(url, answered, stored, 4 * args.workers)
        pids = [proc.pid, *children(proc.pid)]
        watch = LagWatch(answered, stored, backlog, rows=functools.partial(row_lags, stack.db_url, edge_id))
        watch.prime()
        bridges = stack.backend_pids[-args.bridges :]
        bridge_cpu0 = cpu_seconds(bridges)
        backend_cpu0 = stack.backend_cpu_seconds()
        wall0 = time.monotonic()
        edges_cpu0 = cpu_seconds(pids)
        rows0 = stored()
        watch.load_started()
        spy = None
        if args.py_spy:  # the (first) bridge while it ingests this load
            out = f"{args.py_spy}.bridge"
            spy_bin = str(Path(sys.executable).parent / "py-spy")
            seconds = str(int(args.duration * 2))
            spy = subprocess.Popen(
                [spy_bin, "record", "--threads", "-r", "300", "-d", seconds, "-p", str(bridges[0]), "--format", "raw"]
                + ["-o", out],
                stdout=subprocess.DEVNULL,
            )
        count = wrk_throughput(f"{url}/v1/chat/completions", KEY, args.concurrency, args.duration * 2)
        watch.load_ended()
        if spy is not None:
            spy.wait(60)
        lag = watch.finish()
        rows = stored() - rows0
        bridge_cpu = cpu_seconds(bridges) - bridge_cpu0
        edges_cpu = cpu_seconds(pids) - edges_cpu0
        lag.update(
            requests=count,
            wall_s=time.monotonic() - wall0,
            bridge_cpu_s=bridge_cpu,
            postgres_nats_cpu_s=stack.backend_cpu_seconds() - backend_cpu0 - bridge_cpu,
            edges_cpu_s=edges_cpu,
            bridge_cpu_us_per_record=bridge_cpu * 1e6 / rows if rows else None,
        )
        print(f"deployed x{args.workers}: {json.dumps(lag)}", flush=True)
        return lag
    finally:
        stored.close()  # type: ignore[attr-defined]
        backlog.close()  # type: ignore[attr-defined]
        stack.stop(proc)


def _record(py: str, target: tuple[str, int], out: str, args: argparse.Namespace) -> None:
    """py-spy (native frames, per thread, raw collapsed stacks, 300 Hz) on one edge during one more round of its load."""
    url, pid = target
    seconds = str(int(args.duration) + 1)
    spy_bin = str(Path(py).parent / "py-spy")
    argv = [
        spy_bin,
        "record",
        "--native",
        "--threads",
        "-r",
        "300",
        "-d",
        seconds,
        "-p",
        str(pid),
        "--format",
        "raw",
        "-o",
        out,
    ]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    cpu_ms_per_request(url, pid, args.duration, args.concurrency)
    spy.wait(60)


def _strace(target: tuple[str, int], out: str, args: argparse.Namespace) -> None:
    """strace -c -f (every thread) on one edge during one more round; the request count is appended to `out`."""
    url, pid = target
    spy = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", out], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    _, count = cpu_ms_per_request(url, pid, args.duration, args.concurrency)
    spy.terminate()
    spy.wait(30)
    with open(out, "a") as file:
        file.write(f"requests {count}\n")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
