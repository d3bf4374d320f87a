"""What tracing costs the edge: CPU per request with tracing off, on at a 1 % sample, and on at 100 %, in one run.

    .venv/bin/python bench/bench_otel.py [--rounds 3] [--duration 6] [--concurrency 32]

Three edges (`python -m edge_gateway`, the snapshot of `bench_edge.py`: key auth, the request tagger, the PII
redactor, the request logger, accounting) serve the same fast mock upstream side by side: one without
`EDGE_OTEL_ENDPOINT`, one with it at `EDGE_OTEL_SAMPLE_RATIO=0.01`, one at 1.0, all exporting to a local OTLP/HTTP
sink process that answers 200 to every export. Each round loads each edge in turn under closed-loop load (wrk
when installed, else this repository's Python generator) and reads the edge's CPU seconds from /proc; the rounds
alternate the order, and the median per edge is reported with its ratio to the edge without tracing (and the
median of each round's ratio). The cost at 1 % is also computed from parts: the unsampled path timed in-process
plus 1 % of what a sampled request adds (the 100 % edge's extra), which the box's noise blurs less. Edges run
pinned to CPU 1, the mock, the sink and the load generator to CPU 0, as in `bench_edge.py`. The machine is shared:
compare ratios of the same run, and run it twice.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_edge import (  # noqa: E402
    KEY,
    ROOT,
    SHARED_MOCK,
    cpu_seconds,
    encode_snapshot,
    free_port,
    pinned,
    snapshot,
    start,
    throughput,
    wait_ready,
    wrk_throughput,
)
from cryptography.fernet import Fernet  # noqa: E402

_SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
"""

MODES = (("off", None), ("ratio 0.01", "0.01"), ("ratio 1.0", "1.0"))


def measure_once(url: str, pid: int, concurrency: int, duration: float, python_load: bool) -> float:
    """CPU ms per request of the edge `pid` under closed-loop load for `duration` seconds."""
    uvloop.run(throughput(url, KEY, concurrency, 1.0))  # warm-up
    cpu0 = cpu_seconds(pid)
    count = None if python_load else wrk_throughput(url, KEY, concurrency, duration)
    if count is None:
        count = uvloop.run(throughput(url, KEY, concurrency, duration))
    return (cpu_seconds(pid) - cpu0) * 1000 / count


def report(samples: dict[str, list[float]], rounds: int, how: str) -> None:
    base = statistics.median(samples["off"])
    print(f"\n| edge ({how}) | CPU ms per request (median of {rounds}) | vs off | paired rounds, median |")
    print("|---|---|---|---|")
    for name, _ in MODES:
        median = statistics.median(samples[name])
        paired = statistics.median(a / b - 1 for a, b in zip(samples[name], samples["off"], strict=True))
        print(f"| {name} | {median:.4f} | {100 * (median / base - 1):+.1f} % | {100 * paired:+.1f} % |")
    unsampled_ms = unsampled_decision_us() / 1000
    sampled_ms = statistics.median(samples["ratio 1.0"]) - base
    estimate = unsampled_ms + 0.01 * sampled_ms
    print(
        f"\nAt 1 %, from parts: the unsampled path {unsampled_ms * 1000:.2f} us (timed in-process) + 1 % of a "
        f"sampled request's extra {sampled_ms:.3f} ms = {estimate * 1000:.1f} us per request, "
        f"{100 * estimate / base:+.1f} % of the untraced edge's {base:.3f} ms."
    )


def unsampled_decision_us(calls: int = 200_000) -> float:
    """CPU microseconds of what a request the sampler drops costs the edge (`EdgeTracing.start_request` that
    returns None, and the six phases' checks that then build nothing), in this process."""
    import time

    from edge_gateway.tracing import EdgeTracing

    tracing = EdgeTracing(endpoint="http://127.0.0.1:9/", sample_ratio=0.0, edge_id="bench", namespace="bench")
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json", "content-length": "120"}
    start_request, check = tracing.start_request, tracing.start_handoff  # every phase's check is the same test
    started = time.process_time()
    for _ in range(calls):
        start_request(headers, "chat")
        for _ in range(6):  # plugin phases, the upstream attempt, the hand-off
            check()
    spent = time.process_time() - started
    tracing.shutdown()
    return spent * 1e6 / calls


_REPLY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": "mock-gpt",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello, benchmark."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }
).encode()


class _CannedTransport:
    """An upstream that answers at once, so the in-process loop measures the edge alone."""

    async def send(self, request: object) -> object:
        from edge_gateway.upstream import UpstreamReply

        return UpstreamReply(200, {"content-type": "application/json"}, _REPLY)

    async def aclose(self) -> None:
        pass


async def _inprocess(snap_path: Path, sink: str, tmp: str, requests: int, rounds: int) -> dict[str, list[float]]:
    """CPU ms per request of `Pipeline.serve` itself (process CPU, the exporter thread included), three edges in
    this process, no network and no other process's load in the figure."""
    import asyncio
    import logging
    import time

    from bench_edge import BODY

    from edge_gateway.app import create_app
    from edge_gateway.settings import EdgeSettings

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query_string": b"",
        "client": ("127.0.0.1", 40000),
        "headers": [
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
    }

    def receiver() -> object:
        """One request's `receive`: the body, then nothing until the watcher is cancelled (no disconnect)."""
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}

        return receive

    async def send(message: dict) -> None:
        pass

    logging.disable(logging.WARNING)  # the loop watchdog's notes about this tight loop
    edges = {}
    for name, ratio in MODES:
        settings = EdgeSettings(
            namespace="bench",
            edge_id="bench-edge",
            state_dir=str(Path(tmp) / f"inproc-{len(edges)}"),
            snapshot_file=str(snap_path),
            edge_secret=os.environ["FJORDGATE_EDGE_SECRET"],
            otel_endpoint=sink if ratio is not None else None,
            otel_sample_ratio=float(ratio) if ratio is not None else 0.01,
        )
        edge = create_app(settings, transport=_CannedTransport()).state.edge
        await edge.kv.open()
        await edge.telemetry.start()
        await edge.store.apply_file(str(snap_path))
        edges[name] = edge
    samples: dict[str, list[float]] = {name: [] for name, _ in MODES}
    for round_ in range(rounds):
        order = [name for name, _ in MODES]
        if round_ % 2:
            order.reverse()
        for name in order:
            serve = edges[name].pipeline.serve
            for _ in range(200):  # warm-up
                await serve(scope, receiver(), send, "chat")
                await asyncio.sleep(0)
            if edges[name].runtime.tracing is not None:
                edges[name].runtime.tracing.provider.force_flush()
            started = time.process_time()
            for _ in range(requests):
                await serve(scope, receiver(), send, "chat")
                await asyncio.sleep(0)  # the telemetry lanes and the watchers run between requests, as under load
            tracing = edges[name].runtime.tracing
            if tracing is not None:  # its spans' export is its cost, not the next edge's
                tracing.provider.force_flush()
            samples[name].append((time.process_time() - started) * 1000 / requests)
    for edge in edges.values():
        await edge.telemetry.stop()
        await edge.store.aclose()
        await edge.kv.close()
        if edge.runtime.tracing is not None:
            edge.runtime.tracing.shutdown()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of closed-loop load per edge and round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--python-load", action="store_true", help="this script's load generator, not wrk")
    parser.add_argument(
        "--inprocess",
        action="store_true",
        help="instead: three edges in this process, `Pipeline.serve` called in a loop with an upstream that answers "
        "at once (CPU of the edge alone, no network, less noise from a busy box)",
    )
    parser.add_argument("--requests", type=int, default=3000, help="requests per edge and round (--inprocess)")
    args = parser.parse_args()
    py = sys.executable
    try:
        os.sched_setaffinity(0, {0})
    except (AttributeError, OSError):
        pass
    procs = []
    tmp = tempfile.mkdtemp(prefix="bench-otel-")
    try:
        mock_port, sink_port = free_port(), free_port()
        if SHARED_MOCK.is_file():
            procs.append(start([*pinned(0), py, str(SHARED_MOCK), "--port", str(mock_port), "--chunks", "20"]))
        else:
            procs.append(start([*pinned(0), py, "-m", "fjordgate.mock_llm", "--port", str(mock_port)]))
        procs.append(start([*pinned(0), py, "-c", _SINK, str(sink_port)]))
        upstream = f"http://127.0.0.1:{mock_port}/v1"
        wait_ready(f"http://127.0.0.1:{mock_port}/health")
        wait_ready(f"http://127.0.0.1:{sink_port}/")
        os.environ.setdefault("FJORDGATE_EDGE_SECRET", Fernet.generate_key().decode())
        snap_path = Path(tmp) / "snapshot.json"
        snap_path.write_bytes(encode_snapshot(snapshot(upstream)))
        if args.inprocess:
            samples = uvloop.run(
                _inprocess(snap_path, f"http://127.0.0.1:{sink_port}", tmp, args.requests, args.rounds)
            )
            report(samples, args.rounds, "in-process")
            return
        edges: dict[str, tuple[str, int]] = {}
        for name, ratio in MODES:
            port = free_port()
            env = {
                **os.environ,
                "EDGE_SNAPSHOT_FILE": str(snap_path),
                "EDGE_PORT": str(port),
                "EDGE_NAMESPACE": "bench",
                "EDGE_STATE_DIR": str(Path(tmp) / f"state-{port}"),
                "EDGE_ID": "bench-edge",
                "EDGE_LOG_LEVEL": "warning",
                "EDGE_WORKERS": "1",
                "PYTHONPATH": str(ROOT),
            }
            env.pop("NATS_URL", None)
            if ratio is not None:
                env.update(EDGE_OTEL_ENDPOINT=f"http://127.0.0.1:{sink_port}", EDGE_OTEL_SAMPLE_RATIO=ratio)
            proc = start([*pinned(1), py, "-m", "edge_gateway"], env)
            procs.append(proc)
            wait_ready(f"http://127.0.0.1:{port}/ready")
            edges[name] = (f"http://127.0.0.1:{port}/v1/chat/completions", proc.pid)
        samples: dict[str, list[float]] = {name: [] for name, _ in MODES}
        for round_ in range(args.rounds):
            order = [name for name, _ in MODES]
            if round_ % 2:
                order.reverse()
            for name in order:
                url, pid = edges[name]
                samples[name].append(measure_once(url, pid, args.concurrency, args.duration, args.python_load))
            print(json.dumps({"round": round_ + 1, **{k: round(v[-1], 4) for k, v in samples.items()}}), flush=True)
        report(samples, args.rounds, "edges under load")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(5)
            except Exception:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
