"""The deployed stack for benchmarks: PostgreSQL, NATS JetStream, a migrated control plane, the bridge, and edges
that take their config from it (NATS_URL: synced snapshot, telemetry spool, shared rate limits, leases).

Why a module of its own: `bench_governance.py` and `bench_edge.py` (its `deployed` targets) measure the same
processes an operator runs, and one copy of how they are started keeps both honest about what "deployed" means.

PostgreSQL is the server of DATABASE_URL (a fresh database is created and dropped) or, when DATABASE_URL is unset,
an embedded one (`fjordgate.embedded`, fsync off). NATS is an embedded server on a free port. Every process started
here is stopped by its pid when the stack closes.

    with DeployedStack(Path(tmp), database="fj_bench_x") as stack:
        url, proc = stack.edge("e1", "ns")
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from types import TracebackType

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_config_propagation import _wait_http, drop_database, fresh_database  # noqa: E402
from fjordgate.embedded import free_port, nats_plan, postgres_plan, run_server  # noqa: E402

COMMIT_TIMES = {"track_commit_timestamp": "on"}

MODEL = "mock-gpt"


def children(pid: int) -> list[int]:
    """The direct children of `pid` (an `EDGE_WORKERS=N` supervisor's workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its live descendants (PostgreSQL's backends); 0 for a process gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return own + sum(tree_cpu_seconds(child) for child in children(pid))
    except OSError:
        return 0.0


class DeployedStack:
    """The processes of one run and the helpers to seed the control plane and start edges against it."""

    def __init__(self, tmp: Path, *, database: str, bridge_poll_ms: int | None = None) -> None:
        """`bridge_poll_ms`: the bridge's outbox poll (config changes to the edges); None keeps its default."""
        self.tmp, self.database, self.bridge_poll_ms = tmp, database, bridge_poll_ms
        self.procs: list[subprocess.Popen] = []
        self.backend_pids: list[int] = []
        """PostgreSQL (when embedded), NATS and the bridge: what the edges' telemetry costs besides the edge."""
        self.env: dict[str, str] = {}
        self.bridge_pid = 0
        self.embedded_postgres = False
        """Whether this stack started its own PostgreSQL (its processes are then `backend_pids[0]` and descendants)."""
        self.db_url = ""
        self._stack = ExitStack()

    # -- lifecycle ------------------------------------------------------------------------------------------
    def __enter__(self) -> DeployedStack:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _open(self) -> None:
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            pg = self._stack.enter_context(
                run_server(
                    # Commit times make the bridge's lag exact per row (`bridge_lag.row_lags`).
                    postgres_plan(self.tmp / "pg", free_port(), durable=False, settings=COMMIT_TIMES),
                    self.tmp / "pg.log",
                )
            )
            server_url = pg.url
            self.backend_pids.append(pg.process.pid)
            self.embedded_postgres = True
        self.db_url = fresh_database(server_url, self.database)
        self._stack.callback(drop_database, self.db_url)
        nats = self._stack.enter_context(run_server(nats_plan(self.tmp / "nats", free_port()), self.tmp / "nats.log"))
        self.backend_pids.append(nats.process.pid)
        self.env = {
            **os.environ,
            "DATABASE_URL": self.db_url,
            "NATS_URL": nats.url,
            "DJANGO_SETTINGS_MODULE": "control_plane.config.settings",
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret"),
            "FJORDGATE_SECRET_KEY": os.environ.get("FJORDGATE_SECRET_KEY", Fernet.generate_key().decode()),
            "FJORDGATE_EDGE_SECRET": os.environ.get("FJORDGATE_EDGE_SECRET", Fernet.generate_key().decode()),
            "PYTHONPATH": str(ROOT),
            "FJORDGATE_LOG_LEVEL": "WARNING",
        }
        # This process seeds through the control plane's services, so it needs the same settings as the bridge.
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("DATABASE", "DJANGO", "FJORDGATE"))})
        os.environ["NATS_URL"] = self.env["NATS_URL"]
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=self.env, check=True)
        import django

        django.setup()
        bridge_port = free_port()
        bridge = self.start(
            [sys.executable, "manage.py", "run_bridge"],
            {
                "BRIDGE_HEALTH_PORT": str(bridge_port),
                **({"BRIDGE_POLL_INTERVAL_MS": str(self.bridge_poll_ms)} if self.bridge_poll_ms else {}),
            },
            f"http://127.0.0.1:{bridge_port}/health",
        )
        self.backend_pids.append(bridge.pid)
        self.bridge_pid = bridge.pid

    def backend_cpu_seconds(self) -> float:
        """CPU used so far by PostgreSQL (embedded only: another server's is not ours to read), NATS and the bridge."""
        return sum(tree_cpu_seconds(pid) for pid in self.backend_pids)

    def close(self) -> None:
        from django.db import connections

        connections.close_all()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        self._stack.close()

    # -- processes ------------------------------------------------------------------------------------------
    def start(
        self, args: list[str], env: dict[str, str], ready_url: str, *, prefix: list[str] | None = None
    ) -> subprocess.Popen:
        """Start `prefix + args` with the stack's environment plus `env`; return once `ready_url` answers 200."""
        proc = subprocess.Popen([*(prefix or []), *args], cwd=ROOT, env={**self.env, **env})
        self.procs.append(proc)
        _wait_http(ready_url, proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 30) -> None:
        """Stop one process this stack started (an edge between two measurements), by its pid."""
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.procs.remove(proc)

    def edge(
        self, name: str, namespace: str, *, env: dict[str, str] | None = None, prefix: list[str] | None = None
    ) -> tuple[str, subprocess.Popen]:
        """An edge of `namespace` (edge id `name`, own state dir); its base URL and process, once /ready is 200."""
        port = free_port()
        edge_env = {
            "EDGE_NAMESPACE": namespace,
            "EDGE_ID": name,
            "EDGE_PORT": str(port),
            "EDGE_STATE_DIR": str(self.tmp / name),
            "EDGE_LOG_LEVEL": "warning",
            "EDGE_HEARTBEAT_S": "5",
            # One process unless asked: the edge's default is one worker per core, and a benchmark reading one
            # pid's CPU, or counting edges, must not get a supervisor (0 CPU) and workers it does not see.
            "EDGE_WORKERS": "1",
            **(env or {}),
        }
        proc = self.start(
            [sys.executable, "-m", "edge_gateway"], edge_env, f"http://127.0.0.1:{port}/ready", prefix=prefix
        )
        return f"http://127.0.0.1:{port}", proc

    def snapshot_edge(
        self, name: str, namespace: str, snapshot: bytes, *, prefix: list[str] | None = None
    ) -> tuple[str, subprocess.Popen]:
        """An edge of `namespace` run from `snapshot` (a file), without NATS: no spool, bridge or leases; the
        comparison the deployed edges are measured beside. Its base URL and process, once /ready is 200."""
        port, state = free_port(), self.tmp / name
        state.mkdir(parents=True, exist_ok=True)
        (state / "snapshot.json").write_bytes(snapshot)
        env = {k: v for k, v in self.env.items() if k != "NATS_URL"}
        env.update(
            EDGE_SNAPSHOT_FILE=str(state / "snapshot.json"),
            EDGE_PORT=str(port),
            EDGE_NAMESPACE=namespace,
            EDGE_STATE_DIR=str(state / "state"),
            EDGE_ID=name,
            EDGE_LOG_LEVEL="warning",
            EDGE_WORKERS="1",
        )
        proc = subprocess.Popen([*(prefix or []), sys.executable, "-m", "edge_gateway"], cwd=ROOT, env=env)
        self.procs.append(proc)
        _wait_http(f"http://127.0.0.1:{port}/ready", proc)
        return f"http://127.0.0.1:{port}", proc

    def wait_config(self, urls: list[str], namespace: str, *, workers: int = 1, timeout: float = 60) -> None:
        """Until every edge (and each of its `workers`: fresh connections land on any) applied the current version."""
        from control_plane.sync.selectors import config_version_current

        version = config_version_current(namespace=namespace)[0]
        deadline = time.monotonic() + timeout
        for url in urls:
            current: set[str] = set()
            while len(current) < workers:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{url}: only workers {sorted(current)} applied v{version}")
                body = httpx.get(f"{url}/ready").json()  # a new connection per call
                if body.get("version", 0) >= version:
                    current.add(str(body.get("worker", "")))
                else:
                    time.sleep(0.05)

    # -- seeding --------------------------------------------------------------------------------------------
    def seed(self, namespace: str, mock_url: str, *, budget: Decimal | None = None, rpm: int = 0) -> tuple[int, str]:
        """A mock LLM, its price, an approved app with a fresh key and optionally an app budget / rpm limit."""
        from control_plane.applications.services import app_create, credential_import
        from control_plane.budgets.services import budget_create
        from control_plane.catalog.models import ModelPrice
        from control_plane.catalog.services import model_price_upsert
        from control_plane.llms.services import llm_create

        llm = llm_create(
            data={
                "name": namespace,
                "slug": f"mock-{namespace}",
                "vendor": "mock",
                "api_endpoint": mock_url,
                "default_model": MODEL,
                "namespace": namespace,
                "is_active": True,
                "max_retries": 0,
            }
        )
        if not ModelPrice.objects.filter(vendor="mock", model=MODEL).exists():
            model_price_upsert(
                data={
                    "vendor": "mock",
                    "model": MODEL,
                    "prompt_per_million": Decimal("1000"),
                    "completion_per_million": Decimal("2000"),
                }
            )
        app = app_create(
            data={
                "name": namespace,
                "namespace": namespace,
                "approved": True,
                "is_active": True,
                "llm_ids": [llm.pk],
                "rate_limit_rpm": rpm or None,
            }
        )
        key = f"fjg_bench_{namespace}_{uuid.uuid4().hex}"
        credential_import(app=app, key=key, name="bench")
        if budget is not None:
            budget_create(data={"scope": "app", "app": app, "limit": budget, "action": "block", "period": "monthly"})
        return app.pk, key
