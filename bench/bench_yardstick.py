"""Every row of issue 17's closing table on the shared yardstick, in one run: direct, the floor, the snapshot edge,
the edge as deployed (1 worker, and N workers), and LiteLLM's proxy.

    .venv/bin/python bench/bench_yardstick.py [--duration 8] [--concurrency 1,32] [--rates 25] [--workers N]
                                              [--no-litellm] [--no-deployed] [--out-dir DIR]

Why a driver of our own rather than `run_litellm.sh`: that script samples CPU and RSS for one extra gateway only
(the process tree of its `EXTRA_START_CMD`), and the table needs five gateways side by side, each with its own
CPU per request. So this starts them (gateways pinned to CPU 1 as the yardstick does, the N-worker edge on every
core) and hands them, each with its pid, to the yardstick's own `compare.py`, which runs the same matrix over all
of them interleaved (wrk for closed loop, its `load.py` for open loop and TTFB) and writes `summary.md` and
`results.jsonl`. The upstream is the yardstick's `mock_upstream.py` (20 stream chunks); LiteLLM runs from its own
venv (`/tmp/litellm-venv`, `pip install 'litellm[proxy]'`) with the yardstick's configuration: no database, one
master key, `openai/gpt-4o-mini` pointed at the mock. Every process started here is stopped by pid at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

from bench.bench_edge import KEY, MODEL, check_deployed, free_port, pinned, snapshot, wait_ready  # noqa: E402
from shared_sdk.snapshot import encode_snapshot  # noqa: E402

YARDSTICK = Path(os.environ.get("BENCH_YARDSTICK", "/work/shared/bench"))
LITELLM_KEY = "sk-bench-1234"
LITELLM_CONFIG = """model_list:
  - model_name: {model}
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream}
      api_key: sk-mock-upstream
litellm_settings:
  num_retries: 0
  request_timeout: 30
  telemetry: false
  drop_params: true
general_settings:
  master_key: {key}
"""


class Processes:
    """The processes of one run, stopped by pid (TERM, then KILL after 10 s) in reverse order of start."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_litellm(procs: Processes, out: Path, upstream: str, venv: Path) -> tuple[int, str, str]:
    """LiteLLM's proxy on CPU 1, configured as the yardstick's script does; (pid, url, version) once it answers."""
    binary = venv / "bin" / "litellm"
    if not binary.is_file():
        raise SystemExit(f"no {binary}: python3 -m venv {venv} && {venv}/bin/pip install 'litellm[proxy]'")
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    config = out / "litellm_config.yaml"
    config.write_text(LITELLM_CONFIG.format(model=MODEL, upstream=upstream, key=LITELLM_KEY))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DIRECT_URL", "REDIS_HOST", "REDIS_URL"}}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"})
    proc = procs.start(
        [*pinned(1), str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        env,
        out / "litellm.log",
    )
    wait_ready(f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    check = httpx.post(
        url,
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {LITELLM_KEY}"},
        timeout=30,
    )
    if check.status_code != 200:
        raise SystemExit(f"LiteLLM's check request failed: {check.status_code} {check.text[:300]}")
    return proc.pid, url, version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    parser.add_argument("--warmup-s", type=int, default=2)
    parser.add_argument("--concurrency", default="1,32", help="closed-loop levels (wrk)")
    parser.add_argument("--rates", default="25", help="open-loop levels, req/s (the yardstick's load.py: TTFB)")
    parser.add_argument("--modes", default="nonstream,stream")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="the N-worker deployed edge")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--no-deployed", action="store_true", help="no PostgreSQL, NATS, bridge (fast)")
    parser.add_argument("--litellm-venv", type=Path, default=Path("/tmp/litellm-venv"))
    parser.add_argument("--out-dir", type=Path, default=Path(f"/tmp/bench-results/yardstick-{time.strftime('%H%M%S')}"))
    args = parser.parse_args()
    compare = YARDSTICK / "compare.py"
    if not compare.is_file():
        raise SystemExit(f"the shared yardstick is not at {YARDSTICK} (BENCH_YARDSTICK=...)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    secret = os.environ.setdefault("FJORDGATE_EDGE_SECRET", Fernet.generate_key().decode())
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="bench-yardstick-") as tmp, ExitStack() as exits:
        exits.callback(procs.close)
        mock_port = free_port()
        mock = procs.start(
            [*pinned(0), py, str(YARDSTICK / "mock_upstream.py"), "--port", str(mock_port), "--chunks", "20"]
        )
        upstream = f"http://127.0.0.1:{mock_port}/v1"
        wait_ready(f"http://127.0.0.1:{mock_port}/health")
        targets = [f"name=direct,url={upstream}/chat/completions,model={MODEL},pid={mock.pid}"]

        floor_port = free_port()
        floor = procs.start(
            [*pinned(1), py, "bench/floor_proxy.py", "--port", str(floor_port), "--upstream", upstream, "--key", KEY]
        )
        wait_ready(f"http://127.0.0.1:{floor_port}/health")
        targets.append(_target("floor", floor_port, KEY, floor.pid))

        snap = Path(tmp) / "snapshot.json"
        snap.write_bytes(encode_snapshot(snapshot(upstream)))
        edge_port = free_port()
        edge_env = {
            **os.environ,
            "FJORDGATE_EDGE_SECRET": secret,
            "EDGE_SNAPSHOT_FILE": str(snap),
            "EDGE_PORT": str(edge_port),
            "EDGE_NAMESPACE": "bench",
            "EDGE_STATE_DIR": str(Path(tmp) / "edge"),
            "EDGE_ID": "bench-edge",
            "EDGE_WORKERS": "1",
            "EDGE_LOG_LEVEL": "warning",
            "PYTHONPATH": str(ROOT),
        }
        edge_env.pop("NATS_URL", None)
        edge = procs.start([*pinned(1), py, "-m", "edge_gateway"], edge_env)
        wait_ready(f"http://127.0.0.1:{edge_port}/ready")
        targets.append(_target("edge-snapshot", edge_port, KEY, edge.pid))
        edges = {"edge-snapshot": f"http://127.0.0.1:{edge_port}"}

        if not args.no_deployed:
            targets += _deployed_targets(
                exits, Path(tmp), upstream, f"http://127.0.0.1:{mock_port}", args.workers, edges
            )

        if not args.no_litellm:
            pid, url, version = start_litellm(procs, args.out_dir, upstream, args.litellm_venv)
            print(f"LiteLLM {version} ready (pid {pid})", flush=True)
            targets.append(f"name=litellm-{version},url={url},key={LITELLM_KEY},model={MODEL},pid={pid}")

        argv = [py, str(compare)]
        for target in targets:
            argv += ["--target", target]
        argv += [
            "--modes",
            args.modes,
            "--concurrency",
            args.concurrency,
            "--rates",
            args.rates,
            "--duration",
            str(args.duration),
            "--warmup-s",
            str(args.warmup_s),
            "--loadgen",
            "auto",
            "--loadgen-cpus",
            "0",
            "--python",
            py,
            "--mock-stats-url",
            f"http://127.0.0.1:{mock_port}/stats",
            "--out-dir",
            str(args.out_dir),
        ]
        code = subprocess.run(argv, cwd=YARDSTICK).returncode
        summary = args.out_dir / "summary.md"
        if summary.is_file():
            print(summary.read_text())
        for name, base in edges.items():
            print(f"{name}: answers by status over the whole run (its /metrics): {answers_by_status(base)}")
        print(f"results: {summary} and {args.out_dir / 'results.jsonl'}")
        if code:
            raise SystemExit(code)


def _target(name: str, port: int, key: str, pid: int) -> str:
    return f"name={name},url=http://127.0.0.1:{port}/v1/chat/completions,key={key},model={MODEL},pid={pid}"


def answers_by_status(base: str) -> dict[str, int]:
    """An edge's LLM requests by HTTP status, summed over its workers, from `fjordgate_edge_requests_total` and
    `fjordgate_edge_rejected_requests_total`: the yardstick counts non-2xx answers but not which, and a refusal
    (402, 429, 503) says which part of the edge answered instead of the upstream."""
    counts: dict[str, int] = {}
    text = httpx.get(f"{base}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(("fjordgate_edge_requests_total{", "fjordgate_edge_rejected_requests_total{")):
            labels, _, value = line.rpartition(" ")
            status = labels.split('status="', 1)[1].split('"', 1)[0] if 'status="' in labels else "?"
            counts[status] = counts.get(status, 0) + int(float(value))
    return dict(sorted(counts.items()))


def _deployed_targets(
    exits: ExitStack, tmp: Path, upstream: str, mock_base: str, workers: int, edges: dict[str, str]
) -> list[str]:
    """The edge as deployed (`bench_edge.py`'s deployed targets, same stack and seeding), 1 worker and `workers`;
    each one's base URL is added to `edges`."""
    from bench.bench_edge import DEPLOYED_DB, DEPLOYED_NS, all_cpus
    from bench.bridge_lag import mock_request_count, stored_rows
    from bench.deployed_seed import seed_like_snapshot
    from bench.deployed_stack import DeployedStack

    with all_cpus():
        stack = exits.enter_context(DeployedStack(tmp / "deployed", database=DEPLOYED_DB))
    seed_like_snapshot(namespace=DEPLOYED_NS, upstream_v1=upstream, key=KEY, model=MODEL)
    answered = mock_request_count(mock_base)
    everywhere = ["taskset", "-c", f"0-{(os.cpu_count() or 1) - 1}"]
    targets = []
    for name, count in (("edge-deployed", 1), (f"edge-deployed-x{workers}", workers)):
        url, proc = stack.edge(
            name, DEPLOYED_NS, env={"EDGE_WORKERS": str(count)}, prefix=pinned(1) if count == 1 else everywhere
        )
        stack.wait_config([url], DEPLOYED_NS, workers=count)
        stored = stored_rows(stack.db_url, name)
        exits.callback(stored.close)  # type: ignore[attr-defined]
        check_deployed(url, answered, stored, 4 * count)
        edges[name] = url
        targets.append(f"name={name},url={url}/v1/chat/completions,key={KEY},model={MODEL},pid={proc.pid}")
    return targets


if __name__ == "__main__":
    main()
