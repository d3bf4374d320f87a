"""The gate's upstream: an OpenAI-shaped chat vendor on a loopback socket, in the gate's own process and loop.

Why in-process and this small: the gate counts every instruction of its process, so the mock must cost little and,
above all, the same on every run. It answers from pre-encoded bytes; a stream is written one SSE event per
`transport.write` with a loop turn (`asyncio.sleep(0)`) between events, so the edge reads each event on its own
(as it does from a real vendor that generates them one by one); a request whose `user` is "burst" gets the whole
stream in one write (as the shared yardstick's mock sends it: every event in the edge's first read) and the order of reads and writes is fixed by the loop, not by timing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httptools

__all__ = ["CHUNKS", "COMPLETION", "MockUpstream"]

CHUNKS = 20
"""Content events per stream (as the shared yardstick's mock sends)."""
COMPLETION = "Hello from the gate's mock vendor."
_USAGE = {"prompt_tokens": 12, "completion_tokens": CHUNKS, "total_tokens": 12 + CHUNKS}


def _chat_reply(model: str) -> bytes:
    body = json.dumps(
        {
            "id": "chatcmpl-gate",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": COMPLETION}, "finish_reason": "stop"}],
            "usage": _USAGE,
        }
    ).encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    return head + body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _stream_events(model: str) -> list[bytes]:
    """The stream, one chunked-encoding piece per SSE event: a role event, CHUNKS content events, the usage
    event, `[DONE]`, and the terminating zero-length chunk."""

    def event(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
        payload: dict[str, Any] = {
            "id": "chatcmpl-gate",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else [],
        }
        if usage is not None:
            payload["usage"] = usage
        return _chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    words = [f"tok{i} " for i in range(CHUNKS)]
    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": word}, "stop" if i == CHUNKS - 1 else None) for i, word in enumerate(words)]
    events.append(event({}, usage=_USAGE))
    events.append(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    return [head + events[0], *events[1:]]


class _Connection(asyncio.Protocol):
    """One keep-alive connection from the edge: httptools parses each request, the reply is pre-encoded."""

    def __init__(self, owner: MockUpstream) -> None:
        self.owner = owner
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.body.clear()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.owner.requests += 1
        compact = self.body.replace(b" ", b"")
        if b'"stream":true' in compact:
            if b'"user":"burst"' in compact:  # the whole stream in one write, as the yardstick's mock sends it
                assert self.transport is not None
                self.transport.write(b"".join(self.owner.stream_events))
            else:
                self.owner.spawn(self._stream())
        else:
            assert self.transport is not None
            self.transport.write(self.owner.chat_reply)

    async def _stream(self) -> None:
        for piece in self.owner.stream_events:
            if self.transport is None or self.transport.is_closing():
                return
            self.transport.write(piece)
            await asyncio.sleep(0)


class MockUpstream:
    """`async with MockUpstream(model) as mock:` serves `mock.base_url` (`http://127.0.0.1:<port>/v1`)."""

    def __init__(self, model: str) -> None:
        self.chat_reply = _chat_reply(model)
        self.stream_events = _stream_events(model)
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def __aenter__(self) -> MockUpstream:
        self._server = await asyncio.get_running_loop().create_server(lambda: _Connection(self), "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
