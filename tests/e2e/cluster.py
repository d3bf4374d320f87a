"""Real Fjordgate processes for the end-to-end sync tests: the bridge, edges, the mock LLM, seeded data.

Everything runs as it does in production: `python manage.py run_bridge` and `python -m edge_gateway` as
subprocesses (tests/support/processes.py: own process group, output captured for failure messages), talking
over a real nats-server (the restartable `nats_server` fixture) and writing to the same PostgreSQL database the
test reads: pytest-django's test database, whose URL is handed to the bridge. Tests using this need
`transactional_db`, so what the test writes is committed and visible to the processes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.support.processes import ProcessHandle, wait_for_http

from .nats_server import NatsServer, free_port

PYTHON = sys.executable
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MODEL = "mock-gpt"


def http(method: str, url: str, *, body: Any = None, headers: dict | None = None, timeout: float = 10) -> tuple:
    """(status, parsed JSON or text, headers); never raises on HTTP errors."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            raw, status, out_headers = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        raw, status, out_headers = exc.read(), exc.code, dict(exc.headers)
    try:
        return status, json.loads(raw), out_headers
    except ValueError:
        return status, raw.decode(errors="replace"), out_headers


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, message: str = "condition", step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout:.0f}s")
        time.sleep(step)


@dataclass
class Edge:
    name: str
    namespace: str
    port: int
    state_dir: Path
    env: dict[str, str]
    handle: ProcessHandle | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> dict:
        status, body, _ = http("GET", f"{self.url}/ready", timeout=3)
        return body if status == 200 and isinstance(body, dict) else {}

    def chat(self, key: str, *, request_id: str | None = None, model: str = MODEL, timeout: float = 10) -> tuple:
        return http(
            "POST",
            f"{self.url}/v1/chat/completions",
            body={"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8},
            headers={"authorization": f"Bearer {key}", "x-request-id": request_id or uuid.uuid4().hex},
            timeout=timeout,
        )


@dataclass
class Cluster:
    """The processes of one test; `start_process` is the `processes` fixture (stops everything at teardown)."""

    start_process: Callable[..., ProcessHandle]
    nats: NatsServer  # or a NatsCluster (tests/e2e/nats_cluster.py): anything with a `url`
    tmp: Path
    db_url: str
    bridge: ProcessHandle | None = None
    bridge_port: int = 0
    mock_url: str = ""
    edges: dict[str, Edge] = field(default_factory=dict)
    bridge_env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the bridge (NATS_REPLICAS on a NATS cluster)."""

    def base_env(self) -> dict[str, str]:
        return {
            "NATS_URL": self.nats.url,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "FJORDGATE_EDGE_SECRET": os.environ["FJORDGATE_EDGE_SECRET"],
        }

    def start_mock(self, *extra_args: str) -> str:
        port = free_port()
        self.start_process(
            [PYTHON, "-m", "fjordgate.mock_llm", "--port", str(port), "--log-size", "0", *extra_args],
            ready_url=f"http://127.0.0.1:{port}/health",
            name="mock-llm",
        )
        self.mock_url = f"http://127.0.0.1:{port}/v1"
        return self.mock_url

    def start_bridge(self) -> ProcessHandle:
        self.bridge_port = self.bridge_port or free_port()
        env = {
            **self.base_env(),
            "DATABASE_URL": self.db_url,
            "DJANGO_SETTINGS_MODULE": "control_plane.config.settings",
            "BRIDGE_HEALTH_PORT": str(self.bridge_port),
            "BRIDGE_POLL_INTERVAL_MS": "20",
            "FJORDGATE_LOG_LEVEL": "INFO",
            **self.bridge_env,
        }
        self.bridge = self.start_process(
            [PYTHON, "manage.py", "run_bridge"],
            env,
            ready_url=f"http://127.0.0.1:{self.bridge_port}/health",
            timeout=60,
            name="bridge",
        )
        return self.bridge

    def add_edge(self, name: str, namespace: str, **extra_env: str) -> Edge:
        edge = Edge(name, namespace, free_port(), self.tmp / name, {})
        edge.env = {
            **self.base_env(),
            "EDGE_NAMESPACE": namespace,
            "EDGE_ID": name,
            "EDGE_PORT": str(edge.port),
            "EDGE_STATE_DIR": str(edge.state_dir),
            "EDGE_HEARTBEAT_S": "0.5",
            "EDGE_LOG_LEVEL": "info",
            "EDGE_SNAPSHOT_FILE": None,
            "EDGE_WORKERS": "1",  # one process, whatever the machine's cores (test_processes_workers.py runs more)
            **extra_env,
        }
        self.edges[name] = edge
        return edge

    def start_edge(self, edge: Edge, *, wait_ready: bool = True) -> Edge:
        edge.handle = self.start_process(
            [PYTHON, "-m", "edge_gateway"],
            edge.env,
            ready_url=f"{edge.url}/health",
            timeout=60,
            name=f"edge-{edge.name}",
        )
        if wait_ready:
            wait_for_http(f"{edge.url}/ready", 60, edge.handle)
        return edge

    def kill_edge(self, edge: Edge) -> None:
        """SIGKILL: no shutdown code runs (no flush, no spool close)."""
        assert edge.handle is not None
        edge.handle.stop(timeout=0, sig=signal.SIGKILL)


@dataclass
class Seed:
    namespace: str
    llm_id: int
    app_id: int
    key: str


def seed_namespace(namespace: str, mock_url: str) -> Seed:
    """An LLM on the mock, a global price, an approved active app linked to it, and a key (through services)."""
    from control_plane.applications.services import app_create, credential_import
    from control_plane.catalog.models import ModelPrice
    from control_plane.catalog.services import model_price_upsert
    from control_plane.llms.services import llm_create

    llm = llm_create(
        data={
            "name": f"mock {namespace}",
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
            price=None,
            data={
                "vendor": "mock",
                "model": MODEL,
                "prompt_per_million": Decimal("1000"),
                "completion_per_million": Decimal("2000"),
                "currency": "USD",
            },
        )
    app = app_create(
        data={
            "name": f"app {namespace}",
            "namespace": namespace,
            "approved": True,
            "is_active": True,
            "llm_ids": [llm.pk],
        }
    )
    key = f"fjg_test_{namespace}_{uuid.uuid4().hex}"
    credential_import(app=app, key=key, name="e2e")
    return Seed(namespace, llm.pk, app.pk, key)


def config_version(namespace: str) -> int:
    from control_plane.sync.selectors import config_version_current

    return config_version_current(namespace=namespace)[0]
