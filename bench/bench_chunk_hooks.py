"""Instructions per stream event of a chunk hook's plumbing: `HookChain.chunk_run` (what the edge runs) against the
per-call `HookChain.run_response_chunk` and against awaiting the hook directly (no plumbing at all).

    .venv/bin/python bench/bench_chunk_hooks.py [--events 10000]

Each way runs under `valgrind --tool=callgrind` twice, with 1,000 and with 1,000 + `--events` events; the
difference of the two totals divided by `--events` is the cost of one event (start-up, imports and the plugin's
load cancel out). Instruction counts, not time: this box is shared, see bench/README.md. The hook is a null
`async def on_before_write` returning `ResponseWriteResponse()`, so what is counted is the plumbing, plus making
the event's `ResponseWriteRequest`; `direct` is that plus the bare await of the hook. The timeout ticker is pinned
to an hour, as in the gate, so its wake-ups under valgrind's slowdown are not counted.

Self-checking: every way must pass every event through unchanged, and a way's two runs must have handled the
number of events asked (each run prints it; a mismatch fails the script).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WAYS = ("direct", "chunk_run", "run_response_chunk")
_BASE_EVENTS = 1000


async def _run(way: str, events: int) -> int:
    from shared_sdk import BasePlugin, ResponseWriteRequest, ResponseWriteResponse
    from shared_sdk.host.handle import _Deadlines
    from shared_sdk.pipeline import HookChain, HookTiming
    from shared_sdk.testing import PluginHarness, make_context

    _Deadlines.TICK_S = 3600.0

    class Null(BasePlugin):
        name = "null"

        async def on_before_write(self, ctx: object, req: ResponseWriteRequest) -> ResponseWriteResponse:
            return ResponseWriteResponse()

    timings: list[HookTiming] = []
    passed = 0
    async with PluginHarness(Null()) as h:
        assert h.handle is not None
        chain = HookChain([h.handle], observer=timings.append)
        ctx = make_context(request_id="bench")
        plugin = Null()
        run = chain.chunk_run(ctx, chain.handles)
        for i in range(events):
            req = ResponseWriteRequest(request_id="bench", body=b"data: {}\n\n", is_stream_chunk=True, chunk_index=i)
            if way == "direct":
                out = await plugin.on_before_write(ctx, req)
                passed += out.drop_chunk is False and not out.modified
            elif way == "chunk_run":
                got = await run.run(req)
                passed += got is req
            else:
                got = await chain.run_response_chunk(ctx, chain.handles, req)
                passed += got is req
        run.finish()
    if way == "chunk_run" and [(t.chunks, t.outcome) for t in timings] != [(events, "pass")]:
        raise SystemExit(f"chunk_run reported {timings!r}, expected one timing of {events} calls")
    return passed


def _measure(way: str, events: int, workdir: Path) -> int:
    out = workdir / f"{way}.{events}.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        way,
        "--events",
        str(events),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or f"passed {events}" not in proc.stdout:
        raise SystemExit(f"{way} with {events} events failed:\n{proc.stdout}\n{proc.stderr[-2000:]}")
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if found is None:
        raise SystemExit(f"no instruction total from callgrind:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(f"passed {asyncio.run(_run(args.child, args.events))}")
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="bench-chunks-") as tmp:
        per_event = {}
        for way in WAYS:
            small = _measure(way, _BASE_EVENTS, Path(tmp))
            large = _measure(way, _BASE_EVENTS + args.events, Path(tmp))
            per_event[way] = (large - small) / args.events
    direct = per_event["direct"]
    print(f"{'way':<20} {'instr/event':>12} {'plumbing':>10}")
    for way, value in per_event.items():
        print(f"{way:<20} {value:>12,.0f} {value - direct:>10,.0f}")


if __name__ == "__main__":
    main()
