"""A stream's last read (the one holding `[DONE]`) is sent with the end of the body; if the upstream breaks after
it, what the client reads stays in the order the vendor sent it: that read, then the error event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from edge_gateway.errors import UpstreamError
from edge_gateway.exchange import Exchange
from edge_gateway.providers.base import Usage
from edge_gateway.respond_full import Outlet
from edge_gateway.respond_stream import DONE, respond_stream
from edge_gateway.upstream_call import StreamResult
from shared_sdk import Context, Runtime

FIRST = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
LAST = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'


class _Reply:
    async def aclose(self) -> None:
        return None


def _relayed(breaks_after_done: bool) -> list[dict[str, Any]]:
    async def rest() -> AsyncIterator[list[bytes]]:
        yield [LAST, DONE]
        if breaks_after_done:
            raise UpstreamError(502, "upstream stream broken", retryable=False, code="upstream_stream_broken")

    async def run() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        ctx = Context(runtime=Runtime.GATEWAY, request_id="r1")
        ex = Exchange("r1", time.perf_counter(), time.time(), None, ctx, "chat", "POST", "/v1/chat/completions")  # type: ignore[arg-type]
        result = StreamResult(200, {"content-type": "text/event-stream"}, [FIRST], rest(), Usage(), _Reply())
        await respond_stream(Outlet(ex, send, False), None, (), result)
        return [m for m in sent if m["type"] == "http.response.body"]

    return asyncio.run(run())


def test_the_read_holding_done_ends_the_body_in_one_message():
    bodies = _relayed(breaks_after_done=False)
    assert [(m["body"], m["more_body"]) for m in bodies] == [(FIRST, True), (LAST + DONE, False)]


def test_an_upstream_break_after_done_is_reported_after_that_read():
    bodies = _relayed(breaks_after_done=True)
    text = b"".join(m["body"] for m in bodies)
    assert text.startswith(FIRST + LAST + DONE) and b"upstream_stream_broken" in text[len(FIRST + LAST + DONE) :]
    assert not bodies[-1]["more_body"] and all(m["more_body"] for m in bodies[:-1])
