"""Cutting a vendor's stream into whole events, however the network cut it, in work linear in the bytes received.

Two properties, on both splitters (`sse.SSESplitter`, Bedrock's `bedrock_stream.EventStreamSplitter`):

- The events (and the unfinished tail) are those of the whole stream fed at once, for a fixed set of streams cut
  in pieces of every size and at every pair of offsets: CRLF, a CRLF or a blank line cut in two, blank events,
  stray CRs. Before, a stray CR before a CRLF (`\\r\\r\\n`) gave different events depending on where the stream
  was cut (the text that waited was normalised again with each read).
- While an event is unfinished, a read allocates about its own size, not the event's so far: the edge used to join
  what waited to each read (and search all of it again), CPU quadratic in a trickled event's size on the loop
  that serves every tenant (`bench/bench_stream_splitting.py` has the figures). Measured with tracemalloc, as
  `test_upstream_hostile.py` bounds a hostile exchange's memory: no timing.

The same per-read bound holds for the tool-call arguments a Gemini-format client's stream collects
(`gemini_answers.ChatToGeminiStream`), and for the text and tool calls of a plugin's short-circuit stream answered
to a non-streaming request (`short_circuits.collect_stream`), both of which used to be joined with `+=` per fragment.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import orjson
import pytest

from edge_gateway.errors import UpstreamError
from edge_gateway.providers.bedrock_stream import EventStreamSplitter
from edge_gateway.providers.gemini_answers import ChatToGeminiStream
from edge_gateway.providers.sse import SSESplitter
from edge_gateway.short_circuits import _merge, collect_stream
from fjordgate.mock_llm.bedrock_format import event_frame

SSE_STREAMS = [
    b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n',
    b'data: {"a":1}\r\n\r\nevent: ping\r\ndata: x\r\n\r\ndata: [DONE]\r\n\r\n',
    b"\n\n\n\ndata: a\n\n: comment\n\n \n\n\r\n\r\ndata: b\n\n\n",  # blank events, a blank line more
    b"data: x\r\r\n\r\ndata: y\r\n\r\r\n\r\n",  # a stray CR before a CRLF
    b"data: a\rb\r\n\r\n\r\rdata: c\n\n",  # lone CRs are not line ends
    b"data: a\n\ndata: unfinished\r",  # a truncated stream: its tail, with the CR that waited for an LF
    'data: {"t":"héllo 🌊"}\n\nevent: message_start\ndata: {"x":\ndata: 1}\n\n'.encode(),
]
CHUNK = 1 << 10
"""A trickling vendor's piece (one small TCP segment)."""
EVENT_SIZE = 2 << 20
PER_READ_BOUND = 64 << 10
"""What one read of an unfinished event may allocate: its piece, the list of pieces growing, with room to spare (the
old splitters allocated the whole event so far, up to `EVENT_SIZE`, on every read)."""


def whole(stream: bytes) -> tuple[list[bytes], bytes]:
    """The events of a stream fed at once, and its tail: CRLF as LF, cut at blank lines, blank events dropped."""
    parts = stream.replace(b"\r\n", b"\n").split(b"\n\n")
    rest = parts.pop()
    return [part + b"\n\n" for part in parts if part.strip()], rest


def split_sse(pieces: Iterable[bytes]) -> tuple[list[bytes], bytes]:
    splitter = SSESplitter()
    events = [event for piece in pieces for event in splitter.feed(piece)]
    return events, splitter.tail()


def cut(stream: bytes, *offsets: int) -> list[bytes]:
    bounds = [0, *offsets, len(stream)]
    return [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def in_pieces(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


@pytest.mark.parametrize("stream", SSE_STREAMS)
def test_sse_events_are_the_same_however_the_stream_is_cut(stream):
    expected = whole(stream)
    assert split_sse([stream]) == expected
    for size in range(1, len(stream) + 1):
        assert split_sse(in_pieces(stream, size)) == expected, f"pieces of {size}"
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            assert split_sse(cut(stream, first, second)) == expected, f"cut at {first} and {second}"


def test_sse_events_keep_their_bytes():
    events, rest = whole(SSE_STREAMS[1])
    assert events == [b'data: {"a":1}\n\n', b"event: ping\ndata: x\n\n", b"data: [DONE]\n\n"] and rest == b""
    assert whole(SSE_STREAMS[3]) == ([b"data: x\r\n\n", b"data: y\n\r\n\n"], b"")
    assert whole(SSE_STREAMS[5]) == ([b"data: a\n\n"], b"data: unfinished\r")


FRAMES = [
    event_frame("messageStart", {"role": "assistant"}),
    event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " héllo"}}),
    event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x" * 300}}),
    event_frame("messageStop", {"stopReason": "end_turn"}),
]
WIRE = b"".join(FRAMES)


def split_frames(pieces: Iterable[bytes]) -> tuple[list[bytes], bytes]:
    splitter = EventStreamSplitter()
    frames = [frame for piece in pieces for frame in splitter.feed(piece)]
    return frames, splitter.tail()


def test_event_stream_frames_are_the_same_however_the_stream_is_cut():
    for size in range(1, len(WIRE) + 1):
        assert split_frames(in_pieces(WIRE, size)) == (FRAMES, b""), f"pieces of {size}"
    for first in range(0, len(WIRE) + 1, 3):
        for second in range(first, len(WIRE) + 1, 5):
            assert split_frames(cut(WIRE, first, second)) == (FRAMES, b""), f"cut at {first} and {second}"
    truncated = WIRE[: len(FRAMES[0]) + 10]
    assert split_frames(in_pieces(truncated, 3)) == (FRAMES[:1], truncated[len(FRAMES[0]) :])


@pytest.mark.parametrize("size", [1, 2, 3, 5, 16])
def test_an_invalid_frame_length_is_a_502_wherever_its_prefix_is_cut(size):
    wire = FRAMES[0] + b"\xff\xff\xff\xff" + b"\0" * 12
    with pytest.raises(UpstreamError) as caught:
        split_frames(in_pieces(wire, size))
    assert (caught.value.status_code, caught.value.code) == (502, "upstream_bad_response")


Piece = TypeVar("Piece")


def allocated_per_read(feed: Callable[[Piece], object], pieces: list[Piece]) -> list[int]:
    """Bytes each call of `feed` allocated above what was allocated before it (tracemalloc's peak)."""
    tracemalloc.start()
    try:
        sizes = []
        for piece in pieces:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            feed(piece)
            sizes.append(tracemalloc.get_traced_memory()[1] - before)
        return sizes
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_a_trickled_sse_event_costs_each_read_its_own_size(newline):
    event = b"data: " + b"x" * EVENT_SIZE + newline + newline
    splitter = SSESplitter()
    events: list[bytes] = []
    sizes = allocated_per_read(lambda piece: events.extend(splitter.feed(piece)), in_pieces(event, CHUNK))
    assert events == [b"data: " + b"x" * EVENT_SIZE + b"\n\n"]
    assert max(sizes[:-1]) < PER_READ_BOUND, f"a read allocated {max(sizes[:-1])} bytes"


def test_a_trickled_event_stream_frame_costs_each_read_its_own_size():
    frame = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x" * EVENT_SIZE}})
    splitter = EventStreamSplitter()
    frames: list[bytes] = []
    sizes = allocated_per_read(lambda piece: frames.extend(splitter.feed(piece)), in_pieces(frame, CHUNK))
    assert frames == [frame]
    assert max(sizes[:-1]) < PER_READ_BOUND, f"a read allocated {max(sizes[:-1])} bytes"


def test_streamed_tool_call_arguments_cost_each_event_its_own_size():
    fragment = "x" * 400
    events = [
        b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f"}}]}}]}\n\n'
    ]
    delta = {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}}]}
    events += [b"data: " + orjson.dumps(delta) + b"\n\n"] * (EVENT_SIZE // len(fragment))
    stream = ChatToGeminiStream("gemini-2.5-flash")
    sizes = allocated_per_read(stream.feed, events)
    stream.feed(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n')
    (last,) = stream.feed(b"data: [DONE]\n\n")
    (part,) = orjson.loads(last[6:])["candidates"][0]["content"]["parts"]
    assert part["functionCall"]["args"] == {"_raw": fragment * (len(events) - 1)}  # not JSON: kept as sent
    assert max(sizes) < PER_READ_BOUND, f"an event allocated {max(sizes)} bytes"


FRAGMENT = "x" * 400
SHORT_CIRCUIT_CHUNKS = {
    "content": ("chat", {"index": 0, "delta": {"content": FRAGMENT}}),
    "arguments": ("chat", {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": FRAGMENT}}]}}),
    "text": ("completions", {"index": 0, "text": FRAGMENT}),
}


@pytest.mark.parametrize("fragments", list(SHORT_CIRCUIT_CHUNKS))
def test_a_short_circuit_stream_collected_in_full_costs_each_chunk_its_own_size(fragments):
    """A plugin answering a non-streaming request with 2 MiB of stream chunks: each chunk merged allocates about
    its own size (before, the answer so far), and the collected answer holds every fragment."""
    kind, choice = SHORT_CIRCUIT_CHUNKS[fragments]
    steps = [choice] * (EVENT_SIZE // len(FRAGMENT))
    acc: dict[str, Any] = {}
    sizes = allocated_per_read(lambda step: _merge(kind, acc, step), steps)
    assert max(sizes) < PER_READ_BOUND, f"a chunk allocated {max(sizes)} bytes"
    opening = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
    first = {"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, **opening}]}}
    chunks = [orjson.dumps({"object": "chunk", "choices": [c]}) for c in [first, *steps[:100]]]
    answer = orjson.loads(collect_stream(kind, chunks))["choices"][0]
    whole = FRAGMENT * 100
    if fragments == "text":
        assert answer["text"] == whole
    elif fragments == "content":
        assert answer["message"]["content"] == whole
    else:
        assert answer["message"]["tool_calls"] == [{**opening, "function": {"name": "f", "arguments": whole}}]
