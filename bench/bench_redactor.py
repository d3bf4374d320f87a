"""Per-event cost of the PII redactor's stream hook (`on_before_write` on a stream chunk), in isolation.

    .venv/bin/python bench/bench_redactor.py [--streams 400] [--rounds 5] [--callgrind] [--json]

Why in isolation: the edge benchmarks measure the redactor inside a whole request, where its share is a few per
cent of noise on this shared box. Here the plugin's own coroutine is driven directly (no event loop, no SDK
handle), over OpenAI-shaped `chat.completion.chunk` events as a vendor sends them:

  clean  a 40-event answer without PII: role chunk, text deltas, the finishing chunk, the usage chunk, [DONE]
  pii    the same length with an e-mail address and a phone number each split over several chunks
  numbers  the same length without PII but with many short numbers (dates, amounts, a list)

Each round feeds `--streams` streams of each kind (a fresh request id per stream, so the hold-back state is
created and dropped as on the edge) and checks the text the client would read: the clean answer unchanged, the
PII one with both values redacted and nothing lost. It prints microseconds per event (best round; wall clock, so
only a ratio within one run means anything on a busy machine) and, with `--callgrind`, instructions per event
counted by callgrind (repeatable on a busy machine: compare these before and after a change).
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from plugins.pii_redactor.plugin import PIIRedactor  # noqa: E402
from shared_sdk import Context, ResponseWriteRequest, ResponseWriteResponse  # noqa: E402

DONE = b"data: [DONE]\n\n"
_HEAD = {"id": "chatcmpl-9xYzBench0123456789", "object": "chat.completion.chunk", "created": 1764806400}
_MODEL = {"model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0ba0d124f1"}

_CLEAN = (
    "Sure. Here is a short summary of the report you sent: revenue grew in the third quarter, costs held "
    "steady, and the team expects the new product line to ship before the end of the year. The main risk is "
    "the supplier contract, which is up for renewal soon, so plan the talks early and keep a second vendor "
    "ready in case the terms change."
)
_PII = (
    "Sure. You can reach the account manager, Jane, at jane.doe@example.com or on +44 20 7946 0958 during "
    "office hours; she handles renewals for the northern region and can share the draft contract today. "
    "Mention the ticket number in the subject line so the request is routed to her queue without delay."
)
_NUMBERS = (
    "In 2025 revenue rose 12% to 4.5 million, the third quarter alone 1.3 million (up 8% on Q3 2024). Step 1: "
    "cut costs by 5%. Step 2: hire 14 people by 30 June. Step 3: open 2 offices, 1 in Oslo and 1 in Bergen; "
    "budget 750,000 for 18 months, review on 1 March 2026 at 10:30 in room 4B."
)
_PII_EXPECTED = _PII.replace("jane.doe@example.com", "[REDACTED:email]").replace("+44 20 7946 0958", "[REDACTED:phone]")


def _pieces(text: str) -> list[str]:
    """Split like a tokenizer does: short pieces, a leading space kept with the word, e-mail parts apart."""
    out: list[str] = []
    for word in text.split(" "):
        parts = []
        rest = word
        while len(rest) > 6:  # long words and addresses come as several tokens
            cut = next((i for i in range(3, 6) if rest[i] in ".@+"), 4)
            parts.append(rest[:cut])
            rest = rest[cut:]
        parts.append(rest)
        parts[0] = (" " if out else "") + parts[0]
        out.extend(parts)
    return out


def _event(choice: dict[str, Any], **extra: Any) -> bytes:
    return b"data: " + orjson.dumps({**_HEAD, **_MODEL, "choices": [choice], **extra}) + b"\n\n"


def stream_events(text: str, events: int = 40) -> list[bytes]:
    """One answer as `events` SSE events: role, text deltas (pieces merged to fit), finish, usage, [DONE]."""
    pieces = _pieces(text)
    deltas = events - 4
    n = len(pieces)
    if n < deltas:
        raise ValueError(f"{n} pieces cannot fill {deltas} text events")
    merged = ["".join(pieces[i * n // deltas : (i + 1) * n // deltas]) for i in range(deltas)]
    out = [_event({"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None}, "finish_reason": None})]
    out += [_event({"index": 0, "delta": {"content": p}, "logprobs": None, "finish_reason": None}) for p in merged]
    out.append(_event({"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}))
    usage = {"prompt_tokens": 64, "completion_tokens": len(pieces), "total_tokens": 64 + len(pieces)}
    out.append(b"data: " + orjson.dumps({**_HEAD, **_MODEL, "choices": [], "usage": usage}) + b"\n\n")
    out.append(DONE)
    return out


def client_text(sent: list[bytes]) -> str:
    """The assistant text a client reads from the events it was sent."""
    text = []
    for event in sent:
        if not event.startswith(b"data: {"):
            continue
        for piece in event.split(b"\n\n"):
            if piece.startswith(b"data: {"):
                for choice in orjson.loads(piece[6:]).get("choices") or ():
                    text.append((choice.get("delta") or {}).get("content") or "")
    return "".join(text)


def _drive(coro: Any) -> Any:
    """Run a coroutine that never suspends (the redactor's hook does no I/O) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the hook suspended: it is not the pure function this benchmark assumes")


class NoHook:
    """A hook that passes every event: what this harness costs by itself (the row `harness`)."""

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        return ResponseWriteResponse()


class Feed:
    """Streams of one kind, pre-built (requests and contexts), so the loop times the hook and nothing else."""

    def __init__(self, plugin: PIIRedactor | NoHook, events: list[bytes], streams: int, tag: str) -> None:
        self.plugin = plugin
        self.events = len(events) * streams
        self.calls = [
            (Context(request_id=f"{tag}-{s}"), [ResponseWriteRequest(body=e, is_stream_chunk=True) for e in events])
            for s in range(streams)
        ]

    def run(self) -> None:
        hook = self.plugin.on_before_write
        for ctx, reqs in self.calls:
            for req in reqs:
                _drive(hook(ctx, req))

    def outputs(self) -> Iterator[list[bytes]]:
        """What the client receives, stream by stream (for the self-check)."""
        for ctx, reqs in self.calls:
            sent = []
            for req in reqs:
                out: ResponseWriteResponse = _drive(self.plugin.on_before_write(ctx, req))
                sent.append(out.body if out.modified and out.body is not None else req.body)
            yield sent


def make_plugin() -> PIIRedactor:
    plugin = PIIRedactor()
    asyncio.run(plugin.initialize(Context(), {}))
    return plugin


def make_feeds(streams: int) -> dict[str, Feed]:
    """The two kinds of stream through one redactor, and the clean one through `NoHook` (the harness alone)."""
    plugin = make_plugin()
    return {
        "clean": Feed(plugin, stream_events(_CLEAN), streams, "clean"),
        "pii": Feed(plugin, stream_events(_PII), streams, "pii"),
        "numbers": Feed(plugin, stream_events(_NUMBERS), streams, "numbers"),
        "harness": Feed(NoHook(), stream_events(_CLEAN), streams, "harness"),
    }


def check(plugin: PIIRedactor) -> None:
    """The benchmark measures a redactor that works: clean text untouched, both values redacted, none lost."""
    for text, expected in ((_CLEAN, _CLEAN), (_PII, _PII_EXPECTED), (_NUMBERS, _NUMBERS)):
        for sent in Feed(plugin, stream_events(text), 2, "check").outputs():
            got = client_text(sent)
            if got != expected:
                raise SystemExit(f"the redactor's stream output is wrong:\n  got      {got!r}\n  expected {expected!r}")
            if sent[-1] != DONE and not sent[-1].endswith(DONE):
                raise SystemExit("the stream does not end with [DONE]")
    if plugin._streams:
        raise SystemExit(f"stream state left behind: {list(plugin._streams)}")


def time_feeds(feeds: dict[str, Feed], rounds: int) -> dict[str, float]:
    """Microseconds per event, best of `rounds` (the least disturbed by the machine's other work)."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, feed in feeds.items():
            t0 = time.perf_counter()
            feed.run()
            us = (time.perf_counter() - t0) / feed.events * 1e6
            best[name] = min(best.get(name, us), us)
    return best


def callgrind_child(streams: int, out: Path) -> None:
    """Under callgrind: warm up uninstrumented, then one marked block per kind (see `bench.gate.workload`)."""
    from bench.gate.workload import instrument_on, mark

    feeds = make_feeds(streams)
    for feed in feeds.values():
        feed.run()
    instrument_on()
    mark()
    for feed in feeds.values():
        feed.run()
        mark()
    out.write_text(json.dumps({"kinds": list(feeds), "events": {k: f.events for k, f in feeds.items()}}))


def count_instructions(streams: int) -> dict[str, float]:
    """Instructions per event of each kind, one callgrind run (PYTHONHASHSEED fixed, as the CI gate does)."""
    from bench.gate.gate import _VALGRIND_ARGS

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="bench-redactor-") as tmp:
        prefix, ran = Path(tmp) / "callgrind.out", Path(tmp) / "ran.json"
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
        cmd = [valgrind, *_VALGRIND_ARGS, f"--callgrind-out-file={prefix}", sys.executable, __file__]
        cmd += ["--callgrind-child", str(ran), "--streams", str(streams)]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0 or not ran.is_file():
            raise SystemExit(f"the callgrind run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        info = json.loads(ran.read_text())
        result = {}
        for i, kind in enumerate(info["kinds"]):
            text = prefix.with_name(f"{prefix.name}.{i + 2}").read_text()
            total = next(int(line.split()[1]) for line in text.splitlines() if line.startswith("totals:"))
            result[kind] = total / info["events"][kind]
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=400, help="streams of each kind per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true", help="also count instructions per event (~1 min)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--callgrind-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.callgrind_child:
        callgrind_child(args.streams, args.callgrind_child)
        return 0
    feeds = make_feeds(args.streams)
    plugin = feeds["clean"].plugin
    assert isinstance(plugin, PIIRedactor)
    check(plugin)
    us = time_feeds(feeds, args.rounds)
    check(plugin)
    instr = count_instructions(max(20, args.streams // 10)) if args.callgrind else {}
    if args.json:
        print(json.dumps({"us_per_event": us, "instructions_per_event": instr}))
        return 0
    print(f"PII redactor, stream hook per event ({len(stream_events(_CLEAN))} events a stream, output checked;")
    print("  harness = a hook that passes every event, driven the same way: subtract it for the redactor alone)")
    for kind in feeds:
        line = f"  {kind:8} {us[kind]:7.2f} us/event (best of {args.rounds} x {args.streams} streams)"
        if kind in instr:
            line += f"   {instr[kind]:10,.0f} instructions/event (callgrind)"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
