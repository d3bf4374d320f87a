"""Governance benchmark: how strict budgets hold across edges, and what leasing costs the hot path.

Real processes: PostgreSQL, nats-server, the bridge, N edges (`python -m edge_gateway`) and the mock LLM with
`--latency-ms`. In one run it prints:
- overshoot for 1, 2 and 4 edges: 16 clients spread over the edges against one small app budget; answered
  spend minus the limit, in money and in requests (negative = what was left unspent at the end);
- admitted per rpm window: an unpaced burst over 2 edges against an app's rpm limit (leased per minute, like
  tpm limits: docs/governance.md#rate-limits);
- CPU per request of one edge with governance on (a leased budget with ample headroom) vs off (no budget):
  the edge process's user+system CPU over the same requests, interleaved rounds.
Revocation p50/p99 belongs to the revocation work (issue 12, other half) and is not measured here.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_governance.py

PostgreSQL: the server of DATABASE_URL (a fresh database `fj_bench_governance` is created and dropped), or an
embedded one when unset. NATS is an embedded server on a free port.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.deployed_stack import DeployedStack  # noqa: E402
from fjordgate.embedded import free_port  # noqa: E402

BENCH_DB = "fj_bench_governance"
MODEL = "mock-gpt"
CLIENTS = 16
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Rig:
    """The deployed stack of one run, with the mock LLM every namespace of this benchmark is seeded against."""

    def __init__(self, stack: DeployedStack, mock_url: str) -> None:
        self.stack, self.mock_url = stack, mock_url

    def edge(self, name: str, namespace: str) -> tuple[str, subprocess.Popen]:
        return self.stack.edge(name, namespace)

    def seed(self, namespace: str, *, budget: Decimal | None = None, rpm: int = 0) -> tuple[int, str]:
        return self.stack.seed(namespace, self.mock_url, budget=budget, rpm=rpm)

    def wait_config(self, urls: list[str], namespace: str) -> None:
        self.stack.wait_config(urls, namespace)


def _burst(urls: list[str], key: str, per_client: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    lock = threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(base_url=urls[index % len(urls)], timeout=30) as http:
            for _ in range(per_client):
                status = http.post("/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"})
                with lock:
                    counts[status.status_code] = counts.get(status.status_code, 0) + 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts


def _spend(app_id: int, expected: int) -> tuple[Decimal, int]:
    from django.db.models import Sum

    from control_plane.analytics.models import BudgetUsageRecord

    rows = BudgetUsageRecord.objects.filter(app_id=app_id)
    deadline = time.monotonic() + 60
    while rows.count() < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    paid = rows.filter(cost__gt=0)
    return paid.aggregate(s=Sum("cost"))["s"] or Decimal(0), paid.count()


def overshoot(rig: Rig, edges: int, limit: Decimal, per_client: int) -> dict:
    namespace = f"over{edges}"
    app_id, key = rig.seed(namespace, budget=limit)
    urls = [rig.edge(f"{namespace}-e{i}", namespace)[0] for i in range(edges)]
    rig.wait_config(urls, namespace)
    counts = _burst(urls, key, per_client)
    spent, answered = _spend(app_id, sum(counts.values()))
    one = spent / answered if answered else Decimal(0)
    over = spent - limit
    return {
        "edges": edges,
        "answered": counts.get(200, 0),
        "refused_402": counts.get(402, 0),
        "spent": str(spent),
        "overshoot_money": str(over),
        "overshoot_requests": round(float(over / one), 2) if one else 0.0,
    }


def rpm_window(rig: Rig, rpm: int) -> dict:
    namespace = "rpm"
    _, key = rig.seed(namespace, rpm=rpm)
    urls = [rig.edge(f"rpm-e{i}", namespace)[0] for i in range(2)]
    rig.wait_config(urls, namespace)
    while time.time() % 60 > 40:  # the burst stays inside one fixed minute
        time.sleep(0.5)
    counts = _burst(urls, key, max(2, 4 * rpm // CLIENTS))
    return {"limit_rpm": rpm, "edges": 2, "admitted": counts.get(200, 0), "refused_429": counts.get(429, 0)}


def cpu(rig: Rig, requests: int, rounds: int) -> dict:
    _, key_on = rig.seed("cpu-on", budget=Decimal("1000000"))
    _, key_off = rig.seed("cpu-off")
    url_on, proc_on = rig.edge("cpu-on-e", "cpu-on")
    url_off, proc_off = rig.edge("cpu-off-e", "cpu-off")
    rig.wait_config([url_on], "cpu-on")
    rig.wait_config([url_off], "cpu-off")
    used = {"on": 0.0, "off": 0.0}
    for _ in range(rounds):
        for label, url, proc, key in (("on", url_on, proc_on, key_on), ("off", url_off, proc_off, key_off)):
            before = _cpu_s(proc.pid)
            _burst([url], key, requests // CLIENTS)
            used[label] += _cpu_s(proc.pid) - before
    total = (requests // CLIENTS) * CLIENTS * rounds
    on_us, off_us = used["on"] / total * 1e6, used["off"] / total * 1e6
    return {
        "requests_each": total,
        "cpu_us_per_request_on": round(on_us, 1),
        "cpu_us_per_request_off": round(off_us, 1),
        "added_cpu_pct": round((on_us / off_us - 1) * 100, 1) if off_us else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", default="0.25", help="the small budget, in USD")
    parser.add_argument("--per-client", type=int, default=8, help="requests per client in the overshoot runs")
    parser.add_argument("--rpm", type=int, default=30)
    parser.add_argument("--cpu-requests", type=int, default=800, help="requests per round and side")
    parser.add_argument("--cpu-rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=int, default=20)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="fj-bench-gov-") as tmp,
        DeployedStack(Path(tmp), database=BENCH_DB, bridge_poll_ms=20) as stack,
    ):
        mock_port = free_port()
        stack.start(
            [
                sys.executable,
                "-m",
                "fjordgate.mock_llm",
                "--port",
                str(mock_port),
                "--log-size",
                "0",
                "--latency-ms",
                str(args.latency_ms),
            ],
            {},
            f"http://127.0.0.1:{mock_port}/health",
        )
        rig = Rig(stack, f"http://127.0.0.1:{mock_port}/v1")
        limit = Decimal(args.limit)
        result = {
            "overshoot": [overshoot(rig, edges, limit, args.per_client) for edges in (1, 2, 4)],
            "rpm_window": rpm_window(rig, args.rpm),
            "cpu": cpu(rig, args.cpu_requests, args.cpu_rounds),
            "revocation": "not measured here (revocation is the other half of issue 12)",
        }
        print(json.dumps(result, indent=2))
        for row in result["overshoot"]:
            print(
                f"{row['edges']} edge(s), budget {limit}: {row['answered']} answered, spent {row['spent']}, "
                f"overshoot {row['overshoot_money']} ({row['overshoot_requests']} requests)"
            )
        rpm = result["rpm_window"]
        print(f"rpm {rpm['limit_rpm']} over 2 edges, unpaced burst: {rpm['admitted']} admitted in one window")
        c = result["cpu"]
        print(
            f"edge CPU per request: governance on {c['cpu_us_per_request_on']} us, off "
            f"{c['cpu_us_per_request_off']} us ({c['added_cpu_pct']:+} %)"
        )


if __name__ == "__main__":
    main()
