"""Instructions per request of the HTTP server layer alone: the edge's protocol against uvicorn's own.

    .venv/bin/python bench/bench_server_layer.py [--requests 200]

Why: `python -m bench.gate` calls the edge's ASGI app directly, so what the edge's HTTP protocol
(`edge_gateway.server.EdgeHttpProtocol`: deadlines, head bounds, connection cap) adds per request over
uvicorn's `HttpToolsProtocol` (which the floor runs) is in no gate figure, yet it is paid on every request of
`bench_edge.py`'s throughput. Each protocol serves a fixed ASGI answer on loopback to a raw keep-alive client in the
same uvloop loop; the measured block runs under callgrind (instrumentation turned on after start-up and warm-up,
as the gate does, `bench/gate/workload.py`), so the figure is repeatable on a busy box. The client and the loop
cost the same on both sides: compare the difference, or the ratio. Each answer is checked (status line and body).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
_REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\ncontent-type: application/json\r\n"
    b"authorization: Bearer sk-bench\r\ncontent-length: %d\r\n\r\n" % len(_BODY)
) + _BODY
_ANSWER = b'{"ok":true}'
_WARMUP = 200


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_ANSWER))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _ANSWER})


class _Client(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.waiter: asyncio.Future[bytes] | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.buffer.endswith(_ANSWER) and self.waiter is not None:
            reply, self.buffer = self.buffer, b""
            self.waiter.set_result(reply)

    async def one(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(_REQUEST)
        reply = await self.waiter
        if not reply.startswith(b"HTTP/1.1 200 "):
            raise SystemExit(f"unexpected answer: {reply[:200]!r}")


async def _serve(kind: str, requests: int, measure: bool) -> None:
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from bench.gate.workload import instrument_on, mark
    from edge_gateway.server import EdgeHttpProtocol

    protocol = EdgeHttpProtocol if kind == "edge" else HttpToolsProtocol
    config = uvicorn.Config(_app, http=protocol, log_level="warning", access_log=False, lifespan="off")
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: protocol(config=config, server_state=state, app_state={}), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, client = await loop.create_connection(_Client, "127.0.0.1", port)
    for _ in range(_WARMUP):
        await client.one()
    if measure:
        instrument_on()
        mark()
    for _ in range(requests):
        await client.one()
    if measure:
        mark()


def _child(kind: str, requests: int, measure: bool) -> None:
    import uvloop

    uvloop.run(_serve(kind, requests, measure))
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown under valgrind


def _measure(kind: str, requests: int, workdir: Path) -> float:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    out = workdir / f"callgrind.{kind}"
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    smoke = [sys.executable, __file__, "--child", kind, "--requests", "5", "--no-measure"]
    subprocess.run(smoke, cwd=ROOT, env=env, check=True, timeout=60)
    command = [
        valgrind,
        "--tool=callgrind",
        "--instr-atstart=no",
        "--dump-before=getloadavg",
        "--dump-line=no",
        "--dump-instr=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        kind,
        "--requests",
        str(requests),
    ]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    block = out.with_name(out.name + ".2")
    if proc.returncode != 0 or not block.is_file():
        raise SystemExit(f"the {kind} run failed under valgrind (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    total = next(int(line.split()[1]) for line in block.read_text().splitlines() if line.startswith("totals:"))
    return total / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--child", choices=("edge", "uvicorn"), help=argparse.SUPPRESS)
    parser.add_argument("--no-measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.requests, not args.no_measure)
    with tempfile.TemporaryDirectory(prefix="fjordgate-server-layer-") as tmp:
        figures = {kind: _measure(kind, args.requests, Path(tmp)) for kind in ("uvicorn", "edge")}
    for kind, value in figures.items():
        print(f"{kind:<8} {value:>10,.0f} instructions/request (server layer + client + loop)")
    added = figures["edge"] - figures["uvicorn"]
    print(f"edge protocol adds {added:,.0f} instructions/request ({figures['edge'] / figures['uvicorn']:.3f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
