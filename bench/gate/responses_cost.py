"""`python -m bench.gate.responses_cost`: instructions per translated `/v1/responses` request, under callgrind.

The gate's mix (`workload.py`) has no Responses request: its LLM is OpenAI's, which the edge passes through. This
one serves, through the same edge app, upstream client and in-process mock as the gate (no plugins), a Responses
request to an LLM without the Responses API (`responses_api: false`), so the edge translates it to Chat
Completions: `instructions`, a function tool, and a `previous_response_id` naming a stored earlier turn
(`store: false`, so every measured request does the same work). Beside the requests it counts, in a loop, the
translation alone (`responses_shapes.to_chat_request` of the same request) and a deep copy of its result: what
building the chat request twice costs, and what a copy would cost instead. ~1 minute.

    .venv/bin/python -m bench.gate.responses_cost [--requests 40] [--warmup 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import uvloop
from cryptography.fernet import Fernet

from edge_gateway.app import create_app
from edge_gateway.providers.responses_shapes import to_chat_request
from edge_gateway.settings import EdgeSettings
from shared_sdk.snapshot import encode_snapshot

from .gate import MeasurementFailed, measure_once
from .mock_upstream import MockUpstream
from .workload import (
    KEY,
    MODEL,
    PLUGINS,
    chat_scope,
    configure,
    instrument_on,
    mark,
    pin_timers,
    post,
    settle,
    snapshot,
)

__all__ = ["main"]

SCENARIOS = ("responses", "responses_stream", "translate", "deepcopy")
_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
_FIRST = {"model": MODEL, "instructions": "You are the gate's benchmark assistant.", "input": "Say hello."}


def _turn(previous: str, stream: bool) -> bytes:
    body = {
        "model": MODEL,
        "instructions": "You are the gate's benchmark assistant.",
        "input": [{"role": "user", "content": "And what is the weather in Oslo?"}],
        "tools": [_TOOL],
        "previous_response_id": previous,
        "max_output_tokens": 64,
        "store": False,
        "stream": stream,
    }
    return json.dumps(body).encode()


async def _request(app: Any, body: bytes, marker: bytes) -> bytes:
    """One request through the ASGI app as uvicorn delivers it; raises unless it is a 200 holding `marker`."""
    status, reply = await post(app, chat_scope(KEY, body, "/v1/responses"), body)
    if status != 200 or marker not in reply:
        raise SystemExit(f"expected 200 with {marker!r}, got {status}: {reply[:300]!r}")
    return reply


async def run(requests: int, warmup: int, measure: bool, state_dir: str) -> dict[str, Any]:
    configure(frozenset(PLUGINS))
    secret = Fernet.generate_key().decode()
    async with MockUpstream(MODEL) as mock:
        snap = snapshot(mock.base_url, secret)
        llm = msgspec.structs.replace(snap.llms[0], metadata={"responses_api": False})
        snap_path = Path(state_dir) / "snapshot.json"
        snap_path.write_bytes(encode_snapshot(msgspec.structs.replace(snap, llms=[llm])))
        settings = EdgeSettings(
            namespace="gate",
            edge_id="gate-edge",
            state_dir=str(Path(state_dir) / "edge"),
            snapshot_file=str(snap_path),
            edge_secret=secret,
            log_level="warning",
            telemetry_batch_size=1_000_000,
            telemetry_flush_interval_s=3600.0,
        )
        app = create_app(settings)
        edge = app.state.edge
        pin_timers(edge)
        async with app.app.router.lifespan_context(app.app):
            first = json.loads(await _request(app, json.dumps(_FIRST).encode(), b'"status":"completed"'))
            bodies = {
                "responses": (_turn(first["id"], False), b'"status":"completed"'),
                "responses_stream": (_turn(first["id"], True), b"response.completed"),
            }
            data = json.loads(bodies["responses"][0])
            history = await edge.runtime.responses.load(1, first["id"])
            history = history["items"]
            translated = to_chat_request(data, history, MODEL, False)
            for body, marker in bodies.values():
                for _ in range(warmup):
                    await _request(app, body, marker)
            await settle(edge)
            if measure:
                instrument_on()
                mark()
            for body, marker in bodies.values():
                for _ in range(requests):
                    await _request(app, body, marker)
                await settle(edge)
                if measure:
                    mark()
            for _ in range(requests):
                to_chat_request(data, history, MODEL, False)
            if measure:
                mark()
            for _ in range(requests):
                copy.deepcopy(translated)
            if measure:
                mark()
            return {"scenarios": list(SCENARIOS), "requests": requests, "upstream_requests": mock.requests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="measured requests (and loop rounds) per scenario")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured requests per scenario first")
    parser.add_argument("--keep", type=Path, help="keep callgrind's profiles here")
    parser.add_argument("--out", help="serve the requests (under callgrind) and write what ran here (JSON)")
    parser.add_argument("--no-measure", action="store_true", help="with --out: without callgrind (a smoke run)")
    args = parser.parse_args(argv)
    if args.out:  # the workload, started by `measure_once` (natively first, then under valgrind)
        with tempfile.TemporaryDirectory(prefix="fjordgate-responses-cost-") as tmp:
            ran = uvloop.run(run(args.requests, args.warmup, not args.no_measure, tmp))
        Path(args.out).write_text(json.dumps(ran))
        sys.stdout.flush()
        os._exit(0)
    try:
        with tempfile.TemporaryDirectory(prefix="fjordgate-responses-cost-") as tmp:
            workdir = args.keep or Path(tmp)
            counts = measure_once(args.requests, args.warmup, workdir, workload="bench.gate.responses_cost")
    except MeasurementFailed as exc:
        print(f"responses cost: measurement failed: {exc}", file=sys.stderr)
        return 2
    print(", ".join(f"{k} {v:,.0f}" for k, v in counts.items()) + " instructions per request (or per loop round)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
