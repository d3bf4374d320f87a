"""Test support: a real mock upstream process, snapshot builders, and a real edge served by uvicorn in a thread.

Why real servers: the edge's behaviour that users notice (streaming, disconnects, timeouts, retries) lives
in the HTTP layers, which an in-process ASGI shim would fake.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
import uvicorn
from cryptography.fernet import Fernet

from edge_gateway.app import create_app
from edge_gateway.server import server_config
from edge_gateway.settings import EdgeSettings
from shared_sdk.snapshot import (
    AppConfig,
    BudgetConfig,
    ConfigSnapshot,
    CredentialConfig,
    FallbackTarget,
    LLMConfig,
    ModelPriceConfig,
    PluginBinding,
    PluginConfig,
    UserConfig,
    encode_snapshot,
    hash_credential,
    snapshot_checksum,
)

EDGE_SECRET = Fernet.generate_key().decode()
VENDOR_KEY = "sk-vendor-secret"
CLIENT_KEY = "sk-client-app1"
USER_KEY = "sk-client-user7"
OTHER_KEY = "sk-client-app2"

__all__ = [
    "CLIENT_KEY",
    "EDGE_SECRET",
    "OTHER_KEY",
    "USER_KEY",
    "VENDOR_KEY",
    "AppConfig",
    "BudgetConfig",
    "FallbackTarget",
    "LLMConfig",
    "ModelPriceConfig",
    "PluginBinding",
    "PluginConfig",
    "RecordingSink",
    "UserConfig",
    "free_port",
    "make_snapshot",
    "one_plugin_snapshot",
    "run_edge",
    "start_mock",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready in {timeout}s")


@contextmanager
def start_mock(*args: str) -> Iterator[str]:
    """`python -m fjordgate.mock_llm` as a real process; yields its base URL (without /v1)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fjordgate.mock_llm", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def encrypt(value: str) -> str:
    return Fernet(EDGE_SECRET.encode()).encrypt(value.encode()).decode()


def llm(
    id: int, slug: str, api_base: str, *, vendor: str = "mock", default_model: str = "mock-gpt", **kwargs: Any
) -> LLMConfig:
    kwargs.setdefault("api_key_encrypted", encrypt(VENDOR_KEY))
    kwargs.setdefault("first_byte_timeout_s", 10.0)
    kwargs.setdefault("idle_stream_timeout_s", 10.0)
    return LLMConfig(
        id=id, slug=slug, name=slug, vendor=vendor, api_base=api_base, default_model=default_model, **kwargs
    )


def default_credentials() -> list[CredentialConfig]:
    return [
        CredentialConfig(key_hash=hash_credential(CLIENT_KEY), app_id=1, credential_id=1),
        CredentialConfig(key_hash=hash_credential(USER_KEY), app_id=1, credential_id=2, user_id=7),
        CredentialConfig(key_hash=hash_credential(OTHER_KEY), app_id=2, credential_id=3),
    ]


MOCK_PRICE = ModelPriceConfig(
    vendor="mock", model="mock-gpt", prompt_per_million=Decimal("1000"), completion_per_million=Decimal("2000")
)
"""`mock-gpt`'s price unless a test names others: $1000 per million prompt tokens, $2000 per million completion."""


def make_snapshot(
    upstream: str,
    *,
    llms: list[LLMConfig] | None = None,
    apps: list[AppConfig] | None = None,
    plugins: list[PluginConfig] | None = None,
    budgets: list[BudgetConfig] | None = None,
    prices: list[ModelPriceConfig] | None = None,
    users: list[UserConfig] | None = None,
    credentials: list[CredentialConfig] | None = None,
    namespace: str = "test",
    version: int = 1,
) -> ConfigSnapshot:
    """A namespace with one mock LLM (`mock-llm`, model `mock-gpt`), app 1 (key CLIENT_KEY, and USER_KEY for
    user 7) linked to it, and app 2 (OTHER_KEY) linked to nothing, unless overridden."""
    llms = llms if llms is not None else [llm(1, "mock-llm", f"{upstream}/v1")]
    apps = (
        apps
        if apps is not None
        else [
            AppConfig(id=1, name="app-one", llm_ids=[x.id for x in llms]),
            AppConfig(id=2, name="app-two", llm_ids=[]),
        ]
    )
    credentials = credentials if credentials is not None else default_credentials()
    prices = prices if prices is not None else [MOCK_PRICE]
    snap = ConfigSnapshot(
        namespace=namespace,
        version=version,
        generated_at=time.time(),
        llms=llms,
        apps=apps,
        credentials=credentials,
        users=users or [UserConfig(id=7, email="u7@example.com")],
        plugins=plugins or [],
        prices=prices,
        budgets=budgets or [],
    )
    import msgspec

    return msgspec.structs.replace(snap, checksum=snapshot_checksum(snap))


def one_plugin_snapshot(upstream: str, cls: type, slug: str, policy: str, isolated: bool) -> ConfigSnapshot:
    """`make_snapshot` with `cls` (a plugin class of a test module) as the one global plugin: the shape of the
    tests of what a plugin may return, run fail-closed and fail-open, in process and isolated."""
    plugin = PluginConfig(
        slug=slug,
        name=cls.__name__,
        import_path=f"{cls.__module__}:{cls.__name__}",
        global_order=0,
        failure_policy=policy,  # type: ignore[arg-type]
        isolated=isolated,
    )
    return make_snapshot(upstream, plugins=[plugin])


class RecordingSink:
    """A telemetry sink keeping every record (thread-safe enough for list.append / copying)."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    async def submit_batch(self, records: list[Any]) -> None:
        self.records.extend(records)

    def of(self, kind: type) -> list[Any]:
        return [r for r in list(self.records) if isinstance(r, kind)]

    def wait_for(self, kind: type, count: int, timeout: float = 5.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(kind)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} {kind.__name__} records, got {len(self.of(kind))}")

    def record_of(self, request_id: str, kind: type, timeout: float = 5.0) -> Any:
        """The `kind` record of one request (its `x-request-id`): records of earlier requests may still arrive
        after a test cleared the sink, so "the last record" is not this request's."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.of(kind):
                if record.request_id == request_id:
                    return record
            time.sleep(0.02)
        raise AssertionError(f"no {kind.__name__} record of request {request_id}")


class RunningEdge:
    def __init__(self, url: str, app: Any, loop: asyncio.AbstractEventLoop, sink: RecordingSink) -> None:
        self.url = url
        self.app = app
        self.edge = app.state.edge
        self.loop = loop
        self.sink = sink

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the edge's loop (e.g. `edge.store.apply(snapshot)`) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


def edge_process_env(snapshot: ConfigSnapshot, tmp_path: Any, port: int, **extra: str) -> dict[str, str]:
    """The environment of `python -m edge_gateway` serving `snapshot` from a file in `tmp_path` on `port`, with its
    state in `tmp_path/state`, without NATS and one worker unless `extra` says otherwise."""
    path = os.path.join(str(tmp_path), "snapshot.json")
    with open(path, "wb") as fh:
        fh.write(encode_snapshot(snapshot))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "NATS_"))}
    env.update(
        EDGE_SNAPSHOT_FILE=path,
        EDGE_PORT=str(port),
        EDGE_NAMESPACE=snapshot.namespace,
        EDGE_STATE_DIR=os.path.join(str(tmp_path), "state"),
        FJORDGATE_EDGE_SECRET=EDGE_SECRET,
        EDGE_LOG_LEVEL="warning",
        EDGE_WORKERS="1",  # the single-process edge (the default is one worker per core)
    )
    env.update(extra)
    return env


@contextmanager
def run_edge(
    snapshot: ConfigSnapshot,
    tmp_path: Any,
    *,
    event_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
    **settings: Any,
) -> Iterator[RunningEdge]:
    """A real edge (uvicorn, own thread and loop) serving `snapshot` from a file. `event_loop`: `uvloop.new_event_loop`
    for what depends on the loop a deployed edge runs (`python -m edge_gateway` runs uvloop's)."""
    path = os.path.join(str(tmp_path), f"snapshot-{time.monotonic_ns()}.json")
    with open(path, "wb") as fh:
        fh.write(encode_snapshot(snapshot))
    port = free_port()
    defaults: dict[str, Any] = dict(
        namespace=snapshot.namespace,
        edge_id="edge-test",
        port=port,
        state_dir=os.path.join(str(tmp_path), f"state-{port}"),
        snapshot_file=path,
        edge_secret=EDGE_SECRET,
        retry_initial_backoff_s=0.01,
        retry_max_backoff_s=0.05,
        telemetry_flush_interval_s=0.05,
        plugin_import_roots=("plugins", "edge_gateway.tests"),  # the test plugins, besides the bundled ones
    )
    defaults.update(settings)
    app = create_app(EdgeSettings(**defaults))
    sink = RecordingSink()
    app.state.edge.telemetry.add_sink(sink, name="test")
    server = uvicorn.Server(server_config(app, app.state.edge.settings, log_level="warning"))
    loop_holder: dict[str, asyncio.AbstractEventLoop] = {}

    def run() -> None:
        loop = event_loop()
        loop_holder["loop"] = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve())
        loop.close()

    thread = threading.Thread(target=run, name=f"edge-{port}", daemon=True)
    thread.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/ready")
        yield RunningEdge(f"http://127.0.0.1:{port}", app, loop_holder["loop"], sink)
    finally:
        server.should_exit = True
        thread.join(15)


@contextmanager
def edge_workers(snapshot: ConfigSnapshot, tmp_path: Any, workers: int = 2) -> Iterator[str]:
    """A real `python -m edge_gateway` with `workers` worker processes (its supervisor, SO_REUSEPORT) serving
    `snapshot`; yields its URL once every worker has answered `/ready` (each connection goes to either)."""
    import subprocess
    import sys

    port = free_port()
    env = edge_process_env(snapshot, tmp_path, port, EDGE_WORKERS=str(workers))
    proc = subprocess.Popen([sys.executable, "-m", "edge_gateway"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/ready", timeout=60)
        seen: set[str] = set()
        expected = {str(i) for i in range(workers)}
        for _ in range(200):
            seen.add(httpx.get(f"{url}/ready", timeout=5).json()["worker"])
            if seen == expected:
                break
        assert seen == expected
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@contextmanager
def request_in_flight(edge: RunningEdge, latency_ms: int) -> Iterator[None]:
    """A chat request the mock answers after `latency_ms`, sent from a thread; entered once the edge counts it in
    flight under its current config, left once it was answered."""
    reply = threading.Thread(
        target=httpx.post,
        args=(f"{edge.url}/v1/chat/completions",),
        kwargs={
            "headers": {"authorization": f"Bearer {CLIENT_KEY}"},
            "json": {
                "model": "mock-gpt",
                "mock": f"latency_ms={latency_ms}",
                "messages": [{"role": "user", "content": "hi"}],
            },
            "timeout": 10,
        },
    )
    reply.start()
    try:
        while not edge.edge.store.current.in_flight:
            reply.join(0.01)
        yield
    finally:
        reply.join(10)
