"""CI's performance gate: instructions per request of the edge's fixed request mix, counted by callgrind, against
the baseline kept in `bench/gate/baseline.json`.

    .venv/bin/python -m bench.gate [--runs 1] [--update] [--margin 0.05] [--requests N] [--keep DIR]

Why instructions, not time: CI and development boxes are shared (two cores, several busy neighbours), so wall
and CPU times move by tens of per cent from run to run; the number of instructions the edge executes for the same
requests does not (see bench/README.md for the measured spread). Each run starts `workload.py` under
`valgrind --tool=callgrind` with PYTHONHASHSEED fixed, reads one callgrind profile per scenario and divides its
instruction total by the requests of that scenario. With `--runs` > 1 the median of the runs is compared and the
spread (max / min - 1, per scenario) is printed.

Exit status: 0 when every scenario is within `--margin` (default: the baseline's) of the baseline, 1 on a
regression (or a scenario measured on one side only), 2 when the measurement itself failed. `--update` rewrites
the baseline from this run instead: commit it with a message saying why the edge got dearer or cheaper.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .compare import compare, format_table, passed

__all__ = ["main", "measure_once", "read_dumps"]

ROOT = Path(__file__).resolve().parents[2]
BASELINE = Path(__file__).resolve().parent / "baseline.json"
DEFAULT_REQUESTS = 40
DEFAULT_MARGIN = 0.05
HASH_SEED = "0"
_RUN_TIMEOUT_S = 900
"""A run takes ~20 s of CPU; a stuck one (valgrind's gdbserver unreachable) must not hang CI."""
_VALGRIND_ARGS = [
    "--tool=callgrind",
    "--instr-atstart=no",  # start-up and warm-up run uninstrumented (~8x slower than native, not ~50x)
    "--dump-before=getloadavg",  # workload.mark(): one profile per measured block
    "--dump-line=no",
    "--dump-instr=no",
]


class MeasurementFailed(Exception):
    pass


def read_dumps(out_prefix: Path, scenarios: list[str], requests: int) -> dict[str, float]:
    """Instructions per request of each scenario from callgrind's numbered dumps: `.1` is what ran between
    turning instrumentation on and the first mark, `.2` onwards one scenario each, in the workload's order."""
    totals = []
    for part in range(1, len(scenarios) + 2):
        path = out_prefix.with_name(f"{out_prefix.name}.{part}")
        if not path.is_file():
            raise MeasurementFailed(f"callgrind wrote no profile {path.name}: did the workload mark its blocks?")
        total = next((line.split()[1] for line in path.read_text().splitlines() if line.startswith("totals:")), None)
        if total is None:
            raise MeasurementFailed(f"no 'totals:' line in {path}")
        totals.append(int(total))
    return {name: totals[i + 1] / requests for i, name in enumerate(scenarios)}


def measure_once(
    requests: int,
    warmup: int,
    workdir: Path,
    as_worker: bool = False,
    variant: tuple[str, ...] = (),
    workload: str = "bench.gate.workload",
) -> dict[str, float]:
    """One valgrind run of the workload; instructions per request by scenario. `variant`: more arguments of the
    workload (`--without ...`, `--clean-prompt`: `plugin_costs.py`). `workload`: the module that serves the
    requests, with `workload.py`'s arguments and marks (`responses_cost.py` has its own)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise MeasurementFailed("valgrind is not installed (apt-get install valgrind)")
    workdir.mkdir(parents=True, exist_ok=True)
    out_prefix, ran_file = workdir / "callgrind.out", workdir / "ran.json"
    env = {**os.environ, "PYTHONHASHSEED": HASH_SEED, "PYTHONPATH": str(ROOT)}
    worker = ["--as-worker", *variant] if as_worker else [*variant]
    _smoke(env, workdir, worker, workload)
    command = [
        valgrind,
        *_VALGRIND_ARGS,
        f"--callgrind-out-file={out_prefix}",
        sys.executable,
        "-m",
        workload,
        "--requests",
        str(requests),
        "--warmup",
        str(warmup),
        "--out",
        str(ran_file),
        *worker,
    ]
    try:
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=_RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise MeasurementFailed(f"the valgrind run took over {_RUN_TIMEOUT_S} s (killed)") from None
    if proc.returncode != 0 or not ran_file.is_file():
        raise MeasurementFailed(f"the workload failed under valgrind (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    ran = json.loads(ran_file.read_text())
    return read_dumps(out_prefix, ran["scenarios"], ran["requests"])


def _smoke(env: dict[str, str], workdir: Path, extra: list[str], workload: str) -> None:
    """The mix natively, a few requests of each (~2 s): a broken path fails here in seconds with its answer, not
    after a valgrind run, and the modules' bytecode gets compiled outside valgrind (a clean clone has none)."""
    command = [sys.executable, "-m", workload, "--no-measure", "--requests", "2", "--warmup", "2", *extra]
    proc = subprocess.run(
        [*command, "--out", str(workdir / "smoke.json")], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise MeasurementFailed(
            f"the request mix fails without valgrind (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )


def _environment() -> dict[str, str]:
    """What the counts depend on besides the code: recorded in the baseline, shown when it differs."""
    path = shutil.which("valgrind")
    valgrind = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip() if path else "none"
    return {"python": platform.python_version(), "machine": platform.machine(), "valgrind": valgrind}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def _spread(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: max(r[name] for r in runs) / min(r[name] for r in runs) - 1.0 for name in runs[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="write this run's counts as the new baseline")
    parser.add_argument("--runs", type=int, default=1, help="valgrind runs; the median is compared")
    parser.add_argument("--margin", type=float, help="allowed increase (fraction; default: the baseline's)")
    parser.add_argument("--requests", type=int, help="measured requests per scenario (default: the baseline's)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per scenario before")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--keep", type=Path, help="keep callgrind's profiles here (callgrind_annotate them)")
    parser.add_argument(
        "--as-worker",
        action="store_true",
        help="the mix through worker 0 of a 2-worker edge, against the same baseline: a worker's request path "
        "must cost what a single edge's does",
    )
    args = parser.parse_args(argv)
    if args.as_worker and args.update:
        parser.error("--update writes the single edge's baseline: run it without --as-worker")
    baseline: dict[str, Any] = json.loads(args.baseline.read_text()) if args.baseline.is_file() else {}
    requests = args.requests or baseline.get("requests_per_scenario", DEFAULT_REQUESTS)
    margin = args.margin or baseline.get("margin", DEFAULT_MARGIN)
    env = _environment()
    runs = []
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="fjordgate-gate-") as tmp:
            for i in range(args.runs):
                workdir = (args.keep or Path(tmp)) / f"run{i + 1}"
                t0 = time.monotonic()
                runs.append(measure_once(requests, args.warmup, workdir, args.as_worker))
                counts = ", ".join(f"{k} {v:,.0f}" for k, v in runs[-1].items())
                print(f"run {i + 1}: {counts} instructions/request ({time.monotonic() - t0:.0f} s)", flush=True)
    except MeasurementFailed as exc:
        print(f"performance gate: measurement failed: {exc}", file=sys.stderr)
        return 2
    measured = _median(runs)
    if len(runs) > 1:
        print("spread over runs (max/min - 1): " + ", ".join(f"{k} {v:.3%}" for k, v in _spread(runs).items()))
    if args.update:
        baseline = {
            "about": "Instructions per request of bench/gate's request mix under callgrind; "
            "rewritten on purpose by `python -m bench.gate --update` (bench/README.md).",
            "requests_per_scenario": requests,
            "margin": margin,
            "environment": env,
            "instructions_per_request": {k: round(v) for k, v in measured.items()},
        }
        args.baseline.write_text(json.dumps(baseline, indent=2) + "\n")
        print(f"baseline written to {args.baseline} ({time.monotonic() - started:.0f} s)")
        return 0
    if not baseline:
        print(f"performance gate: no baseline at {args.baseline}; create it with --update", file=sys.stderr)
        return 1
    if baseline.get("environment") != env:
        print(f"note: baseline measured with {baseline.get('environment')}, this run with {env}")
    verdicts = compare(baseline["instructions_per_request"], measured, margin)
    print(format_table(verdicts))
    ok = passed(verdicts)
    print(
        f"performance gate: {'PASS' if ok else 'FAIL'} (margin {margin:.0%}, {requests} requests per scenario, "
        f"{time.monotonic() - started:.0f} s)"
    )
    if not ok:
        print(
            "If the edge is meant to cost more now, run `.venv/bin/python -m bench.gate --update` and commit "
            "bench/gate/baseline.json saying why; `--keep DIR` keeps the profiles for callgrind_annotate.",
            file=sys.stderr,
        )
    return 0 if ok else 1
