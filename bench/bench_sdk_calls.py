"""Per-call overhead of the plugin host: direct method call vs in-process handle vs isolated (gRPC) handle.

    .venv/bin/python bench/bench_sdk_calls.py [--inprocess-calls 20000] [--isolated-calls 3000] [--json]

All figures come from the same run, on the same request object, for the same trivial `handle_post_auth`
(returns `PluginResponse()`), so the differences are the host's own cost: context binding, timeout, result
check (in-process) plus msgpack encoding and a gRPC round trip over a Unix socket (isolated). Also measured:
one post-auth phase of a `HookChain` holding that single plugin (what the edge pays per request and plugin).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared_sdk import Runtime  # noqa: E402
from shared_sdk.host import PluginHost, PluginSpec  # noqa: E402
from shared_sdk.pipeline import HookChain  # noqa: E402
from shared_sdk.testing import make_context, make_request, make_services  # noqa: E402

PLUGIN = "shared_sdk.tests.sample_plugins:Echo"


async def measure(fn: Callable[[], Awaitable[object]], calls: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        await fn()
    samples = []
    clock = time.perf_counter_ns
    started = clock()
    for _ in range(calls):
        t0 = clock()
        await fn()
        samples.append(clock() - t0)
    elapsed_s = (clock() - started) / 1e9
    samples.sort()
    return {
        "calls": calls,
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[int(len(samples) * 0.99) - 1] / 1000,
        "mean_us": statistics.fmean(samples) / 1000,
        "calls_per_s": calls / elapsed_s,
    }


async def run(inprocess_calls: int, isolated_calls: int) -> dict[str, dict[str, float]]:
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug))
    inproc = await host.load(PluginSpec(slug="echo", import_path=PLUGIN))
    isolated = await host.load(PluginSpec(slug="echo-isolated", import_path=PLUGIN, isolated=True))
    ctx = make_context(Runtime.GATEWAY)
    req = make_request("hello")
    plugin = inproc.plugin  # type: ignore[attr-defined]
    chain = HookChain([inproc])
    try:
        results = {
            "direct_call": await measure(lambda: plugin.handle_post_auth(ctx, req), inprocess_calls, 2000),
            "inprocess_handle": await measure(lambda: inproc.call("handle_post_auth", ctx, req), inprocess_calls, 2000),
            "inprocess_chain_phase": await measure(
                lambda: chain.run_request_phase("post_auth", ctx, req), inprocess_calls, 2000
            ),
            "isolated_handle": await measure(lambda: isolated.call("handle_post_auth", ctx, req), isolated_calls, 300),
        }
    finally:
        await host.aclose()
    base = results["direct_call"]["p50_us"]
    for row in results.values():
        row["p50_ratio_to_direct"] = row["p50_us"] / base if base else float("nan")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inprocess-calls", type=int, default=20000)
    parser.add_argument("--isolated-calls", type=int, default=3000)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = asyncio.run(run(args.inprocess_calls, args.isolated_calls))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'path':<24}{'calls':>8}{'p50 us':>10}{'p99 us':>10}{'calls/s':>12}{'p50 x direct':>14}")
    for name, r in results.items():
        print(
            f"{name:<24}{r['calls']:>8}{r['p50_us']:>10.2f}{r['p99_us']:>10.2f}"
            f"{r['calls_per_s']:>12.0f}{r['p50_ratio_to_direct']:>14.1f}"
        )


if __name__ == "__main__":
    main()
