"""Where a stream's time to first byte goes inside the edge: the CI gate's workload, natively, stream scenario.

    .venv/bin/python bench/bench_stream_ttfb.py [--requests 400]

Runs `bench.gate.workload` (the edge's ASGI app with the gate's snapshot: request tagger, PII redactor on the
LLM's chain, request logger; its own upstream client against the in-process mock vendor) without callgrind, and
times, per stream request, with `time.perf_counter` around the edge's own functions:

  before_respond_stream   request in -> the upstream's first event is in (`respond_stream` called): everything
                          a chat request does too (intake, auth, hooks, the upstream call and its first read)
  start_sent              -> the response start is sent (headers hooks, id headers)
  first_send              -> the first event went through the chunk hooks and was sent: the first byte
  ttft                    the edge's own `ttft_s` (request in -> first send), as its analytics record it
  per_event               respond_stream's whole time / the events of the stream (the mock's work included)

Wall clock in one process (the mock shares the loop): on a busy machine compare the parts of one run, not runs.
Every answer is checked by the workload (a broken stream fails the run instead of looking fast).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.gate import workload  # noqa: E402
from bench.gate.mock_upstream import CHUNKS  # noqa: E402
from edge_gateway import fallbacks, respond_stream, short_circuits  # noqa: E402

EVENTS = CHUNKS + 3  # the role event, the content events, the usage event, [DONE]


def instrument(parts: dict[str, list[float]]) -> None:
    """Wrap the stream path's steps (module attributes the edge looks up at call time) with timers."""
    state: dict[str, Any] = {}
    respond, start, send = respond_stream.respond_stream, respond_stream._start, respond_stream._Relay.send

    async def timed_respond(out: Any, hooks: Any, executed: Any, result: Any) -> None:
        state["in"], state["sent"] = time.perf_counter(), False
        parts["before_respond_stream"].append(state["in"] - out.ex.started)
        await respond(out, hooks, executed, result)
        parts["per_event"].append((time.perf_counter() - state["in"]) / EVENTS)
        parts["ttft"].append(out.ex.ttft_s)

    async def timed_start(out: Any, hooks: Any, executed: Any, result: Any) -> Any:
        headers = await start(out, hooks, executed, result)
        parts["start_sent"].append(time.perf_counter() - state["in"])
        return headers

    async def timed_send(self: Any, events: list[bytes]) -> None:
        if not state["sent"]:
            state["sent"] = True
            parts["first_send"].append(time.perf_counter() - state["in"])
        await send(self, events)

    for module in (respond_stream, fallbacks, short_circuits):
        if hasattr(module, "respond_stream"):
            module.respond_stream = timed_respond  # type: ignore[attr-defined]
    respond_stream._start = timed_start  # type: ignore[assignment]
    respond_stream._Relay.send = timed_send  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="stream requests measured (after 30 of warm-up)")
    args = parser.parse_args(argv)
    parts: dict[str, list[float]] = {
        k: [] for k in ("before_respond_stream", "start_sent", "first_send", "ttft", "per_event")
    }
    instrument(parts)
    with tempfile.TemporaryDirectory(prefix="bench-stream-ttfb-") as tmp:
        uvloop.run(workload.run(args.requests, 30, False, tmp))
    streams = len(parts["ttft"])
    if streams < args.requests:
        raise SystemExit(f"only {streams} streams were timed: the edge's stream path was not the one wrapped")
    print(f"stream time to first byte inside the edge, median of {args.requests} streams (wall clock, us):")
    for name, values in parts.items():
        print(f"  {name:22} {statistics.median(values[-args.requests :]) * 1e6:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
