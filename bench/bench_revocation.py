"""Revocation benchmark: time from a revoking commit to the first refused request at each of two edges.

Real processes: PostgreSQL, nats-server (JetStream), the bridge (`manage.py run_bridge`), two edges
(`python -m edge_gateway`) and the mock LLM. Each round seeds one victim per kind (`tests/e2e/revocation.py`:
user deactivated, removed from the group granting the LLM, app deactivated, key revoked, key expired, LLM
deleted), then for each: waits until both edges serve it, commits the revocation through the service layer (the
expired key: no write, its `expires_at` passes) and probes both edges every 20 ms until they refuse. The latency
is commit -> first refusing answer received (an upper bound of the edge's real switch-over).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_revocation.py [--rounds 5]

PostgreSQL: the server of DATABASE_URL (a fresh database is created and dropped) or an embedded one. Prints
p50 / p90 / p99 / max per kind and over every kind except the expired key (which needs no sync), in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_config_propagation import _percentiles, _wait_http, drop_database, fresh_database  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

from fjordgate.embedded import free_port, nats_plan, postgres_plan, run_server  # noqa: E402

BENCH_DB = "fj_bench_revocation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--namespace", default="bench")
    args = parser.parse_args()
    py = sys.executable
    procs: list[subprocess.Popen] = []
    with ExitStack() as stack:  # the temporary directory (embedded servers' data) goes last
        tmpdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fj-bench-revoke-")))
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            pg = stack.enter_context(
                run_server(postgres_plan(tmpdir / "pg", free_port(), durable=False), tmpdir / "pg.log")
            )
            server_url = pg.url
        db_url = fresh_database(server_url, BENCH_DB)
        stack.callback(drop_database, db_url)
        nats = stack.enter_context(run_server(nats_plan(tmpdir / "nats", free_port()), tmpdir / "nats.log"))
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "NATS_URL": nats.url,
            "DJANGO_SETTINGS_MODULE": "control_plane.config.settings",
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret"),
            "FJORDGATE_SECRET_KEY": os.environ.get("FJORDGATE_SECRET_KEY", Fernet.generate_key().decode()),
            "FJORDGATE_EDGE_SECRET": os.environ.get("FJORDGATE_EDGE_SECRET", Fernet.generate_key().decode()),
            "PYTHONPATH": str(ROOT),
            "FJORDGATE_LOG_LEVEL": "WARNING",
        }
        names = ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "FJORDGATE_SECRET_KEY")
        os.environ.update({k: env[k] for k in (*names, "FJORDGATE_EDGE_SECRET", "NATS_URL")})
        subprocess.run([py, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)

        import django

        django.setup()
        from tests.e2e.cluster import seed_namespace
        from tests.e2e.revocation import KINDS, run_victim, seed_victims

        try:
            mock_port = free_port()
            procs.append(
                subprocess.Popen(
                    [py, "-m", "fjordgate.mock_llm", "--port", str(mock_port), "--log-size", "0"], cwd=ROOT, env=env
                )
            )
            _wait_http(f"http://127.0.0.1:{mock_port}/health", procs[-1])
            mock_url = f"http://127.0.0.1:{mock_port}/v1"
            seed = seed_namespace(args.namespace, mock_url)
            bridge_port = free_port()
            procs.append(
                subprocess.Popen(
                    [py, "manage.py", "run_bridge"],
                    cwd=ROOT,
                    env={**env, "BRIDGE_HEALTH_PORT": str(bridge_port), "BRIDGE_HEALTH_HOST": "127.0.0.1"},
                )
            )
            _wait_http(f"http://127.0.0.1:{bridge_port}/health", procs[-1])
            edges = {}
            for name in ("edge-1", "edge-2"):
                port = free_port()
                procs.append(
                    subprocess.Popen(
                        [py, "-m", "edge_gateway"],
                        cwd=ROOT,
                        env={
                            **env,
                            "EDGE_NAMESPACE": args.namespace,
                            "EDGE_ID": name,
                            "EDGE_PORT": str(port),
                            "EDGE_STATE_DIR": str(tmpdir / name),
                            "EDGE_LOG_LEVEL": "warning",
                        },
                    )
                )
                _wait_http(f"http://127.0.0.1:{port}/ready", procs[-1])
                edges[name] = f"http://127.0.0.1:{port}"

            samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
            for _ in range(args.rounds):
                for victim in seed_victims(args.namespace, mock_url, seed.llm_id):
                    samples[victim.kind].extend(run_victim(victim, edges).values())
                    time.sleep(0.05)
            synced = [ms for kind, values in samples.items() if kind != "key_expired" for ms in values]
            result = {
                "rounds": args.rounds,
                "edges": len(edges),
                "all_synced_kinds": _percentiles(synced),
                **{kind: _percentiles(values) for kind, values in samples.items()},
            }
            print(json.dumps(result, indent=2))
            print(
                f"\ncommit -> refused at each of {len(edges)} edges, {len(synced)} samples: "
                f"p50 {result['all_synced_kinds']['p50_ms']} ms, p99 {result['all_synced_kinds']['p99_ms']} ms"
            )
        finally:
            from django.db import connections

            connections.close_all()
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


if __name__ == "__main__":
    main()
