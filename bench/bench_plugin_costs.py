"""What each bundled plugin of the benchmark's edge costs per request: the floor, the snapshot edge with every plugin,
with none, and with each one left out, under the same load, in alternation.

    .venv/bin/python bench/bench_plugin_costs.py [--rounds 3] [--duration 4] [--concurrency 32]

Why: the throughput target of issue 17 compares the edge, with its four plugins on (request tagger, PII redactor,
request logger, text rewrite; `bench_edge.snapshot`), to a floor that checks one key and nothing else. Whether the
gap is the edge's own path or the plugins' work decides where to cut next, and a figure per plugin tells a plugin
author what a plugin of that kind costs. A plugin left out means it is neither loaded nor bound, so its figure is
everything it brings: its hooks, their plumbing and what it does (the logger's KV writes, for one).

Each edge is the snapshot-file edge (no NATS, one worker) pinned to CPU 1 like the floor; the yardstick's mock and
wrk run on CPU 0. CPU per request is the process's CPU over wrk's answered requests (`deployed_overhead.py`), and a
round measures every target once, so the medians compare targets measured seconds apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cryptography.fernet import Fernet  # noqa: E402

os.environ.setdefault("FJORDGATE_EDGE_SECRET", Fernet.generate_key().decode())

from bench_edge import KEY, SHARED_MOCK, free_port, pinned, snapshot, start, wait_ready  # noqa: E402
from deployed_overhead import cpu_ms_per_request  # noqa: E402

from shared_sdk.snapshot import ConfigSnapshot, encode_snapshot  # noqa: E402


def without(full: ConfigSnapshot, slug: str | None) -> ConfigSnapshot:
    """`full` without the plugin `slug` (None: without any), neither loaded nor bound to the LLM."""
    llm = full.llms[0]
    chain = [b for b in llm.plugin_chain if slug is not None and b.plugin_slug != slug]
    plugins = [p for p in full.plugins if slug is not None and p.slug != slug]
    return msgspec.structs.replace(full, plugins=plugins, llms=[msgspec.structs.replace(llm, plugin_chain=chain)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of wrk load per target and round")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    py = sys.executable
    os.sched_setaffinity(0, {0})
    procs: list[subprocess.Popen] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-plugin-costs-"))
    try:
        mock_port = free_port()
        procs.append(start([*pinned(0), py, str(SHARED_MOCK), "--port", str(mock_port), "--chunks", "20"]))
        upstream = f"http://127.0.0.1:{mock_port}/v1"
        wait_ready(f"http://127.0.0.1:{mock_port}/health")
        targets: dict[str, tuple[str, int]] = {}
        port = free_port()
        floor_argv = [py, str(ROOT / "bench" / "floor_proxy.py"), "--port", str(port), "--upstream", upstream]
        floor = start([*pinned(1), *floor_argv, "--key", KEY])
        procs.append(floor)
        wait_ready(f"http://127.0.0.1:{port}/health")
        targets["floor"] = (f"http://127.0.0.1:{port}/v1/chat/completions", floor.pid)
        full = snapshot(upstream)
        variants = {"edge": full, "edge, no plugin": without(full, None)}
        variants |= {f"edge without {p.slug}": without(full, p.slug) for p in full.plugins}
        for index, (name, snap) in enumerate(variants.items()):
            port, path = free_port(), tmp / f"snapshot-{index}.json"
            path.write_bytes(encode_snapshot(snap))
            env = dict(os.environ, EDGE_SNAPSHOT_FILE=str(path), EDGE_PORT=str(port), EDGE_NAMESPACE="bench")
            env |= {"EDGE_STATE_DIR": str(tmp / f"state-{index}"), "EDGE_ID": f"bench-{index}", "EDGE_WORKERS": "1"}
            env |= {"EDGE_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT)}
            env.pop("NATS_URL", None)
            edge = start([*pinned(1), py, "-m", "edge_gateway"], env=env)
            procs.append(edge)
            wait_ready(f"http://127.0.0.1:{port}/ready")
            targets[name] = (f"http://127.0.0.1:{port}/v1/chat/completions", edge.pid)
        cpu: dict[str, list[float]] = {name: [] for name in targets}
        for round_no in range(1, args.rounds + 1):
            for name, (url, pid) in targets.items():
                cpu[name].append(cpu_ms_per_request(url, pid, args.duration, args.concurrency)[0])
            print(f"round {round_no}: " + ", ".join(f"{name} {v[-1]:.3f}" for name, v in cpu.items()), flush=True)
        median = {name: statistics.median(values) for name, values in cpu.items()}
        floor_ms, edge_ms = median["floor"], median["edge"]
        print(
            f"\nCPU per request at c={args.concurrency}, medians of {args.rounds} rounds (ms; / floor; throughput / floor):"
        )
        for name, ms in median.items():
            print(f"  {name:<32} {ms:.3f}  {ms / floor_ms:.2f}x  {floor_ms / ms:.2f}x")
        print("What each plugin costs (the edge's figure minus the edge's without it):")
        for name, ms in median.items():
            if name.startswith("edge without "):
                print(f"  {name.removeprefix('edge without '):<32} {edge_ms - ms:+.3f} ms")
        print(f"  {'all four':<32} {edge_ms - median['edge, no plugin']:+.3f} ms")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


if __name__ == "__main__":
    main()
