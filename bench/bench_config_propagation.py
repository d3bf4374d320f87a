"""Config propagation benchmark: time from an admin change's commit to "applied" at both edges of its namespace.

Real processes: PostgreSQL, nats-server (JetStream), the bridge (`manage.py run_bridge`) and two edges
(`python -m edge_gateway`). Each of `--changes` changes is an `app_update` through the service layer (what the
admin and the API call), committed in this process; an edge counts as having applied it when its heartbeat
carries the new version (an edge heartbeats right after every apply, so this is apply time + one NATS hop). A
change starts only after both edges applied the previous one, so no two changes coalesce.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_config_propagation.py

PostgreSQL: the server of DATABASE_URL (a fresh database `fj_bench_propagation` is created on it and dropped
at the end), or an embedded server when DATABASE_URL is unset. NATS is always an embedded server on a free port.
Prints p50 / p90 / p99 / max per edge and for "both applied", in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from fjordgate.embedded import free_port, nats_plan, postgres_plan, run_server  # noqa: E402
from fjordgate.postgres_home import scratch_dir  # noqa: E402

BENCH_DB = "fj_bench_propagation"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode}")
        try:
            with _NO_PROXY.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready within {timeout}s")


def fresh_database(server_url: str, name: str) -> str:
    """A new empty database `name` on the server of `server_url` (dropped first when it exists); its URL. Shared by
    the benchmarks that start a control plane (`deployed_stack.py`, `bench_revocation.py`)."""
    import psycopg

    base, _, _ = server_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"


def drop_database(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class HeartbeatWatch:
    """Records, per edge, when its heartbeat first carried each version (a background thread with its own loop)."""

    def __init__(self, nats_url: str, namespace: str) -> None:
        self.nats_url = nats_url
        self.namespace = namespace
        self.first_seen: dict[tuple[str, int], float] = {}
        self.latest: dict[str, int] = {}
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        threading.Thread(target=self._loop.run_until_complete, args=(self._run(),), daemon=True).start()
        self._ready.wait(30)

    async def _run(self) -> None:
        import nats

        from shared_sdk.sync_protocol import EdgeHeartbeat, decode

        nc = self._nc = await nats.connect(self.nats_url)

        async def on_beat(message) -> None:
            now = time.perf_counter()
            beat = decode(message.data, EdgeHeartbeat)
            self.latest[beat.edge_id] = max(self.latest.get(beat.edge_id, 0), beat.version)
            self.first_seen.setdefault((beat.edge_id, beat.version), now)

        await nc.subscribe(f"fj.up.{self.namespace}.*.heartbeat", cb=on_beat)
        await nc.flush()
        self._ready.set()
        await self._stop.wait()
        await nc.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        time.sleep(0.2)

    def applied_at(self, edge_id: str, version: int) -> float | None:
        times = [t for (edge, v), t in list(self.first_seen.items()) if edge == edge_id and v >= version]
        return min(times) if times else None


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(pick(0.90), 2),
        "p99_ms": round(pick(0.99), 2),
        "max_ms": round(ordered[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--namespace", default="bench")
    args = parser.parse_args()
    py = sys.executable
    procs: list[subprocess.Popen] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="fj-bench-prop-") as tmp:
        tmpdir = Path(tmp)
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            pg_dir = scratch_dir("fj-bench-prop-pg-")  # where PostgreSQL's account can reach it, deleted after
            stack.callback(shutil.rmtree, pg_dir, ignore_errors=True)
            pg = stack.enter_context(
                run_server(postgres_plan(pg_dir / "pg", free_port(), durable=False), tmpdir / "pg.log")
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
        os.environ.update(
            {
                k: env[k]
                for k in (
                    "DATABASE_URL",
                    "DJANGO_SETTINGS_MODULE",
                    "DJANGO_SECRET_KEY",
                    "FJORDGATE_SECRET_KEY",
                    "FJORDGATE_EDGE_SECRET",
                    "NATS_URL",
                )
            }
        )
        subprocess.run([py, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)

        import django

        django.setup()
        from control_plane.applications.models import App
        from control_plane.applications.services import app_create, app_update, credential_import
        from control_plane.llms.services import llm_create
        from control_plane.sync.selectors import config_version_current

        ns = args.namespace
        llm = llm_create(
            data={
                "name": "bench",
                "slug": "bench-llm",
                "vendor": "mock",
                "api_endpoint": "http://127.0.0.1:9/v1",
                "default_model": "m",
                "namespace": ns,
                "is_active": True,
            }
        )
        app = app_create(
            data={"name": "bench", "namespace": ns, "approved": True, "is_active": True, "llm_ids": [llm.pk]}
        )
        credential_import(app=app, key="fjg_bench_propagation_key_0123456789", name="bench")

        try:
            bridge_port = free_port()
            procs.append(
                subprocess.Popen(
                    [py, "manage.py", "run_bridge"],
                    cwd=ROOT,
                    env={**env, "BRIDGE_HEALTH_PORT": str(bridge_port), "BRIDGE_POLL_INTERVAL_MS": "20"},
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
                            "EDGE_NAMESPACE": ns,
                            "EDGE_ID": name,
                            "EDGE_PORT": str(port),
                            "EDGE_STATE_DIR": str(tmpdir / name),
                            "EDGE_LOG_LEVEL": "warning",
                            "EDGE_HEARTBEAT_S": "5",
                        },
                    )
                )
                _wait_http(f"http://127.0.0.1:{port}/ready", procs[-1])
                edges[name] = port
            watch = HeartbeatWatch(nats.url, ns)
            version = config_version_current(namespace=ns)[0]
            deadline = time.monotonic() + 30
            while any(watch.latest.get(e, 0) < version for e in edges) and time.monotonic() < deadline:
                time.sleep(0.05)

            per_edge: dict[str, list[float]] = {e: [] for e in edges}
            both: list[float] = []
            target = App.objects.get(pk=app.pk)
            for i in range(args.changes):
                started = time.perf_counter()
                app_update(app=target, data={"description": f"change {i}"})  # committed when it returns
                version = config_version_current(namespace=ns)[0]
                deadline = time.monotonic() + 30
                while True:
                    seen = {e: watch.applied_at(e, version) for e in edges}
                    if all(seen.values()):
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"change {i} (v{version}) not applied at every edge within 30 s: {seen}")
                    time.sleep(0.001)
                for edge, at in seen.items():
                    per_edge[edge].append((at - started) * 1000)
                both.append((max(seen.values()) - started) * 1000)
                time.sleep(0.02)
            result = {
                "changes": args.changes,
                "both_edges_applied": _percentiles(both),
                **{edge: _percentiles(values) for edge, values in per_edge.items()},
            }
            watch.close()
            print(json.dumps(result, indent=2))
            print(
                f"\nsave -> applied at both edges over {args.changes} changes: "
                f"p50 {result['both_edges_applied']['p50_ms']} ms, p99 {result['both_edges_applied']['p99_ms']} ms"
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
