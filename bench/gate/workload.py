"""The gate's fixed request mix, served by a real edge app in this process; run under callgrind by `gate.py`.

    valgrind --tool=callgrind --instr-atstart=no --dump-before=getloadavg ... python -m bench.gate.workload --out F

What runs: the edge's ASGI app from `create_app` (its lifespan included: KV, telemetry lanes, snapshot file,
`gc.freeze`), called directly with ASGI scopes (no HTTP server, no load generator), and the edge's own upstream
client (`H1Transport`) talking over loopback to `MockUpstream` in the same event loop (uvloop, as deployed).
The snapshot has the request tagger as a global plugin, the PII redactor and the text-rewrite plugin on the LLM's
chain and the request logger as a data collector (its window written at each block's end), as `bench/bench_edge.py`
does.

The mix, `--requests` of each in turn, each scenario its own measured block:
  chat          a plain chat completion (200)
  stream        a streamed chat completion, 20 content events, one per upstream read (200)
  stream_burst  the same stream written by the vendor at once: all its events in one read (the yardstick's shape)
  refused_key   an unknown key (401)
  rate_limited  a key whose app allows 1 request per minute, already used (429)
  governed      a plain chat completion of an app under the governance a deployed edge enforces (200): rpm and
                tpm limits (windows counted, tokens settled) and a blocking app budget (a reservation of the
                request's bound, settled at its cost), its records made durable as a deployed edge does (the
                telemetry shipper: encoded, appended to the journal, then spooled into SQLite by the spool's
                writer thread). What it leaves out: NATS (no lease round trips, no publishing), so the budget and
                the limits are this edge's own, as on an edge that has not reached the control plane yet.

How it is measured: start-up and warm-up run with callgrind's instrumentation off (valgrind then costs ~8x, not
~50x). The workload then turns instrumentation on for itself (`callgrind_control -i on <pid>`, spinning, not
blocked, so valgrind's gdbserver polls without ptrace), and calls `os.getloadavg` (libc's `getloadavg`, called by nothing else) before
and after each block: `--dump-before=getloadavg` makes callgrind write one profile per block, all threads included
(the KV's SQLite thread too). `gate.py` reads each block's instruction total; divided by `--requests` it is the
scenario's instructions per request.

What is pinned so a run does the same work whatever the machine's load (valgrind slows the process ~50x, so
anything driven by wall-clock time would fire a different number of times): PYTHONHASHSEED (by `gate.py`); the
rate limiter's clock (a fixed instant mid-minute, so the 429 never turns into an admission at a minute's edge);
the disconnect sweeper's tick, the plugin-call timeout ticker's and the housekeeping interval (an hour:
natively, these requests end long before the first tick); telemetry batching (no timed flush: each block ends by flushing the lanes and the KV buffer, so
every record a block produced is delivered, and its KV write stored, inside that block).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvloop
from cryptography.fernet import Fernet

from edge_gateway import app as edge_app
from edge_gateway.app import create_app
from edge_gateway.disconnects import DisconnectWatches
from edge_gateway.ratelimit import RateLimiter
from edge_gateway.settings import EdgeSettings
from edge_gateway.telemetry import shipper as shipper_module
from edge_gateway.telemetry.journal import Journal
from edge_gateway.telemetry.shipper import TelemetryShipper
from edge_gateway.telemetry.spool import Spool
from shared_sdk.host.handle import _Deadlines
from shared_sdk.snapshot import (
    AppConfig,
    BudgetConfig,
    ConfigSnapshot,
    CredentialConfig,
    LLMConfig,
    ModelPriceConfig,
    PluginBinding,
    PluginConfig,
    encode_snapshot,
    hash_credential,
)

from .mock_upstream import CHUNKS, COMPLETION, MockUpstream

__all__ = ["SCENARIOS", "chat_scope", "main"]

MODEL = "mock-gpt"
KEY = "sk-gate-app-0123456789"
LIMITED_KEY = "sk-gate-limited-0123456789"
GOVERNED_KEY = "sk-gate-governed-0123456789"
WRONG_KEY = "sk-gate-unknown-0123456789"
FIXED_NOW = 1_800_000_030.0
"""The rate limiter's clock: 30 s into a minute, for ever."""
_AN_HOUR = 3600.0
_CONTROL_TIMEOUT_S = 60.0

_PROMPT = [
    {"role": "system", "content": "You are the gate's benchmark assistant."},
    {"role": "user", "content": "Say hello to the benchmark. My address is ada@example.com, call +44 20 7946 0958."},
]
_CLEAN_PROMPT = [{"role": "user", "content": "Say hello to the benchmark."}]
_CHAT = json.dumps({"model": MODEL, "messages": _PROMPT, "max_tokens": 64}).encode()
_STREAM = json.dumps({"model": MODEL, "messages": _PROMPT, "max_tokens": 64, "stream": True}).encode()
_BURST = json.dumps({"model": MODEL, "messages": _PROMPT, "max_tokens": 64, "stream": True, "user": "burst"}).encode()

SCENARIOS: dict[str, tuple[str, bytes, int, bytes]] = {
    # name: (key, body, expected status, a byte string the response must contain)
    "chat": (KEY, _CHAT, 200, COMPLETION.encode()),
    "stream": (KEY, _STREAM, 200, f"token{CHUNKS - 1} ".encode()),
    "stream_burst": (KEY, _BURST, 200, f"token{CHUNKS - 1} ".encode()),
    "refused_key": (WRONG_KEY, _CHAT, 401, b"error"),
    "rate_limited": (LIMITED_KEY, _CHAT, 429, b"rate limit"),
    "governed": (GOVERNED_KEY, _CHAT, 200, COMPLETION.encode()),
}
DURABLE_SCENARIOS = frozenset({"governed"})
"""The scenarios whose records go to the deployed edge's durable telemetry path (`durable_telemetry`)."""


PLUGINS = ("request-tagger", "pii-redactor", "text-rewrite", "request-logger")
_without: frozenset[str] = frozenset()
"""Plugins left out of the snapshot (`--without`, for `plugin_costs.py`); none for the gate itself."""


def configure(without: frozenset[str] = frozenset(), clean_prompt: bool = False) -> None:
    """A variant of the mix for `plugin_costs.py`: plugins left out, or the prompt without PII (the yardstick's
    kind of prompt, where the redactor finds nothing). The scenarios' checks follow: without the text-rewrite
    plugin a stream says `tok`, not `token`."""
    global _without
    _without = without
    for name, (key, body, status, marker) in list(SCENARIOS.items()):
        if clean_prompt:
            data = json.loads(body)
            data["messages"] = _CLEAN_PROMPT
            body = json.dumps(data).encode()
        if "text-rewrite" in without and marker.startswith(b"token"):
            marker = b"tok" + marker[len(b"token") :]
        SCENARIOS[name] = (key, body, status, marker)


def snapshot(upstream_v1: str, secret: str) -> ConfigSnapshot:
    plugins = [
        PluginConfig(
            slug="request-tagger",
            name="tagger",
            import_path="plugins.request_tagger.plugin:create_plugin",
            config={"tags": ["gate"], "headers": {"x-team": "gate"}},
            global_order=0,
        ),
        PluginConfig(slug="pii-redactor", name="pii", import_path="plugins.pii_redactor.plugin:create_plugin"),
        PluginConfig(
            slug="text-rewrite",
            name="rewrite",
            import_path="plugins.text_rewrite.plugin:create_plugin",
            config={"replace": {"tok": "token"}},
        ),
        # Its window is written by `settle` at each block's end (60 s: never by its own timer inside a block).
        PluginConfig(
            slug="request-logger",
            name="logger",
            import_path="plugins.request_logger.plugin:create_plugin",
            config={"window_s": 60},
        ),
    ]
    plugins = [p for p in plugins if p.slug not in _without]
    llm = LLMConfig(
        id=1,
        slug="gate",
        name="gate",
        vendor="openai",
        api_base=upstream_v1,
        api_key_encrypted=Fernet(secret.encode()).encrypt(b"sk-upstream").decode(),
        default_model=MODEL,
        allowed_models=[MODEL],
        plugin_chain=[
            PluginBinding(plugin_slug=slug, order=order)
            for order, slug in enumerate(("pii-redactor", "text-rewrite"))
            if slug not in _without
        ],
    )
    return ConfigSnapshot(
        namespace="gate",
        version=1,
        llms=[llm],
        apps=[
            AppConfig(id=1, name="gate", llm_ids=[1]),
            AppConfig(id=2, name="gate-limited", llm_ids=[1], rate_limit_rpm=1),
            AppConfig(id=3, name="gate-governed", llm_ids=[1], rate_limit_rpm=10_000_000, rate_limit_tpm=2_000_000_000),
        ],
        credentials=[
            CredentialConfig(key_hash=hash_credential(KEY), app_id=1, credential_id=1),
            CredentialConfig(key_hash=hash_credential(LIMITED_KEY), app_id=2, credential_id=2),
            CredentialConfig(key_hash=hash_credential(GOVERNED_KEY), app_id=3, credential_id=3),
        ],
        budgets=[BudgetConfig(id=1, scope="app", target_id=3, limit=Decimal("1000000"), action="block")],
        plugins=plugins,
        prices=[
            ModelPriceConfig(
                vendor="openai", model=MODEL, prompt_per_million=Decimal("0.15"), completion_per_million=Decimal("0.6")
            )
        ],
    )


def chat_scope(key: str, body: bytes, path: str = "/v1/chat/completions") -> dict[str, Any]:
    """The ASGI scope uvicorn would hand the edge for a chat completion (or another POST to `path`) with `key`
    and `body`."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"edge.gate"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer " + key.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }


async def request(app: Any, name: str, first_of_minute: bool = False) -> None:
    """One request of scenario `name` through the ASGI app, as uvicorn would deliver it; raises when the answer
    is not the scenario's (a gate that counted a broken path would compare nothing). `first_of_minute`: the
    limited key's one admitted request (a chat answer), after which it gets 429."""
    key, body, expected, marker = SCENARIOS[name]
    if first_of_minute:
        expected, marker = SCENARIOS["chat"][2:]
    status, reply = await post(app, chat_scope(key, body), body)
    if status != expected or marker not in reply:
        raise SystemExit(f"scenario {name}: expected {expected} with {marker!r}, got {status}: {reply[:300]!r}")


async def post(app: Any, scope: dict[str, Any], body: bytes) -> tuple[int, bytes]:
    """One POST of `body` through the ASGI app as uvicorn delivers it: (status, the whole answer)."""
    done = asyncio.get_running_loop().create_future()
    delivered = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done  # as uvicorn: http.disconnect only once the response is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False) and not done.done():
                done.set_result(None)

    await app(scope, receive, send)
    return status, b"".join(chunks)


def mark() -> None:
    """Callgrind writes a profile here (`--dump-before=getloadavg`): the end of one measured block. Why
    `os.getloadavg`: CPython calls libc's `getloadavg` with a plain call, which callgrind sees as entering that
    function, and nothing else in the process calls it (a `ctypes` call into libc goes through libffi, whose
    trampoline callgrind does not count as a function entry)."""
    os.getloadavg()


def instrument_on() -> None:
    """Turn callgrind's instrumentation on for this process. Spins while `callgrind_control` talks to valgrind's
    gdbserver: a process blocked in a system call could only be reached with ptrace, one that runs is polled."""
    control = shutil.which("callgrind_control")
    if control is None:
        raise SystemExit("callgrind_control not found (it comes with valgrind)")
    proc = subprocess.Popen([control, "-i", "on", str(os.getpid())], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + _CONTROL_TIMEOUT_S
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"callgrind_control did not reach valgrind in {_CONTROL_TIMEOUT_S:.0f} s")
    if proc.returncode != 0:
        raise SystemExit(f"callgrind_control -i on failed ({proc.returncode}): is this running under callgrind?")


def pin_timers(edge: Any) -> None:
    """See the module docstring: the work the edge does must not depend on how slow valgrind makes it."""
    DisconnectWatches.TICK_S = _AN_HOUR
    _Deadlines.TICK_S = _AN_HOUR  # the plugin-call timeout ticker: started once, never woken by the clock
    edge_app._HOUSEKEEPING_INTERVAL_S = _AN_HOUR
    edge.runtime.limiter = RateLimiter(clock=lambda: FIXED_NOW)


@asynccontextmanager
async def durable_telemetry(state_dir: str) -> AsyncIterator[TelemetryShipper]:
    """The durable sink a deployed edge's sync service builds (spool, journal, shipper), without NATS: the records
    stay in the spool. Its journal goes to the spool only in `settle`: on the shipper's own timer, how many records
    each commit took (and whether the next record found the spool busy) would depend on valgrind's speed."""
    shipper_module.JOURNAL_DRAIN_S = _AN_HOUR
    shipper_module.JOURNAL_DRAIN_AT = 1 << 30
    spool = Spool(Path(state_dir) / "spool.sqlite3", max_bytes=1 << 30)
    journal = Journal(Path(state_dir) / "spool.journal", size=8 * 1024 * 1024)
    shipper = TelemetryShipper(namespace="gate", edge_id="gate-edge", spool=spool, journal=journal, proxy_logs=False)
    await spool.open()
    await shipper.open_journal()
    try:
        yield shipper
    finally:
        await shipper.close_journal()
        await spool.close()


async def settle(edge: Any, shipper: TelemetryShipper | None = None) -> None:
    """Deliver the block's telemetry (and spool what the shipper's journal holds), write the request logger's
    window (its KV row) and store the KV buffer, then let the KV's own delayed flush (armed by those writes, now
    with nothing left to store) run out."""
    await edge.telemetry.flush()
    if shipper is not None:
        await shipper.flush_journal()
    collectors = edge.store.current.collectors
    for handle in collectors.handles if collectors is not None else ():
        if handle.slug == "request-logger":  # its held entries, written as its timer would
            await handle.plugin.write_held()
    await edge.kv.flush()
    await asyncio.sleep(edge.kv.commit_delay_s * 3)


async def run(requests: int, warmup: int, measure: bool, state_dir: str, as_worker: bool = False) -> dict[str, Any]:
    secret = Fernet.generate_key().decode()
    async with MockUpstream(MODEL) as mock:
        snap_path = Path(state_dir) / "snapshot.json"
        snap_path.write_bytes(encode_snapshot(snapshot(mock.base_url, secret)))
        settings = EdgeSettings(
            namespace="gate",
            edge_id="gate-edge",
            state_dir=str(Path(state_dir) / "edge"),
            snapshot_file=str(snap_path),
            edge_secret=secret,
            log_level="warning",
            telemetry_batch_size=1_000_000,
            telemetry_flush_interval_s=_AN_HOUR,
            # worker 0 of a 2-worker edge: its own state dir, the metrics answering scrapes (`--as-worker`)
            **({"worker": "0", "workers": 2} if as_worker else {}),
        )
        app = create_app(settings)
        edge = app.state.edge
        pin_timers(edge)
        async with app.app.router.lifespan_context(app.app), durable_telemetry(state_dir) as shipper:
            await request(app, "rate_limited", first_of_minute=True)
            for name in SCENARIOS:
                with durable_sink(edge, shipper if name in DURABLE_SCENARIOS else None):
                    for _ in range(warmup):
                        await request(app, name)
                    await settle(edge, shipper)
            check_governed(edge, shipper, warmup)
            if measure:
                instrument_on()
                mark()  # everything before this line is one dump, ignored
            for name in SCENARIOS:
                with durable_sink(edge, shipper if name in DURABLE_SCENARIOS else None):
                    for _ in range(requests):
                        await request(app, name)
                    await settle(edge, shipper)
                if measure:
                    mark()
            check_governed(edge, shipper, warmup + requests)
            return {"scenarios": list(SCENARIOS), "requests": requests, "upstream_requests": mock.requests}


def check_governed(edge: Any, shipper: TelemetryShipper, requests: int) -> None:
    """Raise unless the governed scenario's `requests` took the governed path: each one record in the spool,
    each charged to the app's budget and counted in its rpm and tpm windows (a gate that counted a path that
    skipped them would compare nothing)."""
    budget = edge.runtime.budgets.applicable(3, None, 1)
    spent = budget[0].spent if budget else 0
    # a window that counted `requests` requests (or at least as many tokens) has no room for one more under a
    # limit of `requests`
    counted = [bool(edge.runtime.limiter.check(f"app:3:{unit}", requests, 1)) for unit in ("rpm", "tpm")]
    if shipper.spool.records != requests or not spent or counted != [True, True]:
        raise SystemExit(
            f"governed: {shipper.spool.records} records spooled, budget spent {spent}, rpm and tpm counted "
            f"{counted} after {requests} requests (expected {requests}, more than 0, both)"
        )


@contextmanager
def durable_sink(edge: Any, shipper: TelemetryShipper | None) -> Iterator[None]:
    """`shipper` as the edge's durable sink for one block (as `app.py` registers the sync service's), if given."""
    if shipper is None:
        yield
        return
    edge.telemetry.add_durable_sink(shipper, name="nats")
    try:
        yield
    finally:
        edge.telemetry.remove_sink(shipper)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="measured requests per scenario")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per scenario first")
    parser.add_argument("--out", required=True, help="where to write what ran (JSON)")
    parser.add_argument("--no-measure", action="store_true", help="run the mix without callgrind (a smoke run)")
    parser.add_argument("--as-worker", action="store_true", help="run the edge as worker 0 of a 2-worker edge")
    parser.add_argument("--without", default="", help="plugins to leave out, comma-separated, or 'all'")
    parser.add_argument("--clean-prompt", action="store_true", help="a prompt without PII (the yardstick's kind)")
    args = parser.parse_args(argv)
    without = frozenset(PLUGINS if args.without == "all" else filter(None, args.without.split(",")))
    if without - set(PLUGINS):
        parser.error(f"--without takes {', '.join(PLUGINS)} or 'all'")
    configure(without, args.clean_prompt)
    with tempfile.TemporaryDirectory(prefix="fjordgate-gate-") as tmp:
        ran = uvloop.run(run(args.requests, args.warmup, not args.no_measure, tmp, args.as_worker))
        Path(args.out).write_text(json.dumps(ran))
    sys.stdout.flush()
    # No interpreter teardown: it would only add an unmeasured tail to valgrind's run time.
    os._exit(0)


if __name__ == "__main__":
    main()
