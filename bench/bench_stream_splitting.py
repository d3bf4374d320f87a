"""CPU time to cut one huge stream event out of 1 KiB network pieces: the edge's splitters against the old ones.

    .venv/bin/python bench/bench_stream_splitting.py [--sizes 1 2 4 8] [--piece 1024] [--rounds 5] [--json]

Why: a hostile or broken vendor may send one event of many MB (bounded by the LLM's `max_response_bytes` and its
deadline) in small TCP segments. The old splitters joined what waited to each read and searched it all again, CPU
quadratic in the event's size, on the loop that serves every other tenant of the edge. The new ones
(`edge_gateway.providers.sse.SSESplitter`, `bedrock_stream.EventStreamSplitter`) search each read once and join
the pieces once. The old algorithms are reproduced below, as they were before the change.

For each size N (MiB): an SSE event (`data: xxx...\\n\\n`) and a Bedrock event-stream frame (a contentBlockDelta of
N MiB of text) fed in `--piece`-byte pieces; CPU time (`time.process_time`) of the new splitter (best of
`--rounds`) and of the old one (one round: it is the slow one, and its time dwarfs the noise), and each one's time
at N over its time at N = 1 (linear: ~2x per doubling; quadratic: ~4x). Every run checks that each splitter gives
back the whole event. The old SSE splitter at 8 MiB takes tens of seconds.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge_gateway.providers.bedrock_stream import EventStreamSplitter  # noqa: E402
from edge_gateway.providers.sse import SSESplitter  # noqa: E402
from fjordgate.mock_llm.bedrock_format import event_frame  # noqa: E402

MIB = 1 << 20


class Splitter(Protocol):
    def feed(self, piece: bytes) -> list[bytes]: ...


class OldSSESplitter:
    """`SSESplitter` before: the waiting bytes joined to each read, and all of them searched again."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, piece: bytes) -> list[bytes]:
        data = self._buffer + piece if self._buffer else piece
        if data.find(b"\r") >= 0:
            data = data.replace(b"\r\n", b"\n")
        if data.find(b"\n\n") < 0:
            self._buffer = data
            return []
        parts = data.split(b"\n\n")
        self._buffer = parts.pop()
        return [part + b"\n\n" for part in parts if part.strip()]


class OldEventStreamSplitter:
    """`EventStreamSplitter` before: the waiting bytes joined to each read."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, piece: bytes) -> list[bytes]:
        data = self._buffer + piece if self._buffer else piece
        frames: list[bytes] = []
        start = 0
        while len(data) - start >= 4:
            (total,) = struct.unpack_from("!I", data, start)
            if len(data) - start < total:
                break
            frames.append(data[start : start + total])
            start += total
        self._buffer = data[start:]
        return frames


def sse_event(size: int) -> tuple[bytes, bytes]:
    """(the wire, the event the splitter gives back)."""
    event = b"data: " + b"x" * size + b"\n\n"
    return event, event


def bedrock_frame(size: int) -> tuple[bytes, bytes]:
    frame = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x" * size}})
    return frame, frame


def cpu_seconds(make: Callable[[], Splitter], pieces: list[bytes], expected: bytes) -> float:
    splitter = make()
    out: list[bytes] = []
    started = time.process_time()
    for piece in pieces:
        out += splitter.feed(piece)
    spent = time.process_time() - started
    if out != [expected]:
        raise SystemExit(f"{type(splitter).__name__} did not give back the whole event")
    return spent


CASES: dict[str, tuple[Callable[[int], tuple[bytes, bytes]], Callable[[], Splitter], Callable[[], Splitter]]] = {
    "sse": (sse_event, SSESplitter, OldSSESplitter),
    "bedrock": (bedrock_frame, EventStreamSplitter, OldEventStreamSplitter),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8], help="event sizes in MiB")
    parser.add_argument("--piece", type=int, default=1024, help="bytes per network read")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the new splitter (best kept)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    results: dict[str, list[dict[str, float]]] = {}
    for name, (make_wire, new, old) in CASES.items():
        rows = results[name] = []
        for size in args.sizes:
            wire, expected = make_wire(size * MIB)
            pieces = [wire[i : i + args.piece] for i in range(0, len(wire), args.piece)]
            new_s = min(cpu_seconds(new, pieces, expected) for _ in range(args.rounds))
            old_s = cpu_seconds(old, pieces, expected)
            rows.append({"mib": size, "reads": len(pieces), "new_s": new_s, "old_s": old_s})
            if not args.json:
                print(f"{name:8} {size:3} MiB {len(pieces):6} reads  new {new_s * 1e3:9.1f} ms  old {old_s:8.2f} s")
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print()
    print("splitter  MiB      new ms  new/N=1     old s  old/N=1  old/new")
    for name, rows in results.items():
        first = rows[0]
        for row in rows:
            print(
                f"{name:8} {row['mib']:4} {row['new_s'] * 1e3:11.1f} {row['new_s'] / first['new_s']:8.2f}"
                f" {row['old_s']:9.2f} {row['old_s'] / first['old_s']:8.2f} {row['old_s'] / row['new_s']:8.0f}"
            )


if __name__ == "__main__":
    main()
