"""A body a plugin's hook returns is bounded as the edge bounds every other body it holds: by the largest of
`EDGE_MAX_BODY_BYTES` (a client's request) and the LLMs' `max_response_bytes` (a vendor's reply; 32 MiB by default).
Over it, the call is the plugin's failure, under its failure policy, in process and isolated alike: a rewritten
response body, a rewritten request (before the upstream call), a stream's rewritten events.

Before, an in-process plugin could return a body of any size (2 GB), which the edge held and sent; an isolated one was
only bounded by the gRPC message limit (64 MiB)."""

from __future__ import annotations

import json
import logging

import httpx
import msgspec
import pytest

from shared_sdk import (
    BasePlugin,
    Context,
    EnrichedRequest,
    PluginResponse,
    ResponseWriteRequest,
    ResponseWriteResponse,
    ShortCircuit,
    StreamEventsRequest,
    StreamEventsResponse,
)

from .support import CLIENT_KEY, one_plugin_snapshot, run_edge

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
OVER = (32 << 20) + 1
"""One byte over the default LLM's `max_response_bytes` (the test edge reads client bodies up to 4 MiB)."""


class Inflater(BasePlugin):
    """Returns a body one byte over the bound where the request's text says: `request`, `response` or `stream`."""

    name = "inflater"

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse | None:
        if b'"request"' not in req.body:
            return None
        return PluginResponse(modified=True, request=msgspec.structs.replace(req, body=b" " * OVER))

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse | None:
        if req.is_stream_chunk or b"Echo: response" not in req.body:
            return None
        return ResponseWriteResponse(modified=True, body=b"x" * OVER)

    async def on_before_write_events(self, ctx: Context, req: StreamEventsRequest) -> StreamEventsResponse | None:
        return StreamEventsResponse(modified=True, events=[b"data: " + b"x" * OVER + b"\n\n"])


class Streamer(BasePlugin):
    """Answers a streamed request itself with chunks of 1 MiB each, one byte over the bound together."""

    name = "streamer"

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse | None:
        if b'"stream"' not in req.body:
            return None
        mebibyte = b"data: " + b"x" * ((1 << 20) - 8) + b"\n\n"
        chunks = [mebibyte] * 32 + [b"!"]  # 32 MiB and one byte
        return PluginResponse(short_circuit=ShortCircuit(stream_chunks=chunks))


def chat(edge, content: str, stream: bool = False) -> httpx.Response:
    return httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers=AUTH,
        timeout=60,
        json={"model": "mock-gpt", "stream": stream, "messages": [{"role": "user", "content": content}]},
    )


def snapshot(upstream: str, policy: str, isolated: bool, plugin_class: type = Inflater):
    return one_plugin_snapshot(upstream, plugin_class, plugin_class.__name__.lower(), policy, isolated)


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_body_over_the_bound_fails_closed_as_the_plugins_failure(upstream, tmp_path, isolated):
    with run_edge(snapshot(upstream, "closed", isolated), tmp_path) as edge:
        request, response = chat(edge, "request"), chat(edge, "response")
        stream = chat(edge, "stream", stream=True)
    for reply in (request, response):
        assert reply.status_code == 500 and len(reply.content) < 1000
        assert reply.json()["error"]["message"] == "plugin 'inflater' failed"
        assert reply.json()["error"]["code"] == "plugin_exception"
    assert len(stream.content) < 10_000 and b"x" * 1000 not in stream.content  # ended with an error event
    assert b"plugin 'inflater'" in stream.content


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_body_over_the_bound_fails_open_skipping_the_plugin(upstream, tmp_path, caplog, isolated):
    with (
        caplog.at_level(logging.WARNING, logger="fjordgate.plugins"),
        run_edge(snapshot(upstream, "open", isolated), tmp_path) as edge,
    ):
        request, response = chat(edge, "request"), chat(edge, "response")
        stream = chat(edge, "stream", stream=True)
    assert request.status_code == 200 and "Echo: request" in request.text  # the upstream got the client's body
    assert response.status_code == 200 and "Echo: response" in response.text
    assert stream.status_code == 200 and "[DONE]" in stream.text and len(stream.content) < 100_000
    logged = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("fjordgate.plugins"))
    assert f"EnrichedRequest.body is {OVER} bytes, over the {32 << 20} a plugin may return" in logged
    assert f"ResponseWriteResponse.body is {OVER} bytes" in logged
    assert "StreamEventsResponse.events are" in logged


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
@pytest.mark.parametrize("policy", ["closed", "open"])
def test_a_short_circuit_stream_over_the_bound_is_the_plugins_failure(upstream, tmp_path, caplog, isolated, policy):
    """A short-circuit's `stream_chunks` were not bounded (each `bytes` field of an answer is, not a list of them):
    the edge streamed 32 MiB and more of them to the client. Now their total is bounded as any body a hook returns;
    over it the call fails under the plugin's policy: closed, the plugin's error; open, the plugin is skipped."""
    with (
        caplog.at_level(logging.WARNING, logger="fjordgate.plugins"),
        run_edge(snapshot(upstream, policy, isolated, Streamer), tmp_path) as edge,
    ):
        stream = chat(edge, "stream", stream=True)
    assert len(stream.content) < 100_000, stream.status_code
    if policy == "closed":
        assert stream.status_code == 500
        assert stream.json()["error"]["message"] == "plugin 'streamer' failed"
        assert stream.json()["error"]["code"] == "plugin_exception"
    else:
        events = [json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data: {")]
        text = "".join(choice["delta"].get("content") or "" for event in events for choice in event["choices"])
        assert stream.status_code == 200 and "Echo: stream" in text and "[DONE]" in stream.text  # the LLM's answer
        logged = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("fjordgate.plugins"))
        assert f"ShortCircuit.stream_chunks are {(32 << 20) + 1} bytes, over the {32 << 20}" in logged


class OddChunks(BasePlugin):
    """Answers a streamed request itself with `stream_chunks` that are not bytes: the kind the request's text names."""

    name = "oddchunks"

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse | None:
        odd: dict[bytes, object] = {b"str-chunk": "data: {}\n\n", b"int-chunk": 7, b"none-chunk": None}
        for word, chunk in odd.items():
            if word in req.body:
                chunks = [b"data: {}\n\n", chunk]
                return PluginResponse(short_circuit=ShortCircuit(stream_chunks=chunks))  # type: ignore[arg-type]
        return None


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
@pytest.mark.parametrize("policy", ["closed", "open"])
def test_short_circuit_stream_chunks_that_are_not_bytes_are_the_plugins_failure(
    upstream, tmp_path, caplog, isolated, policy
):
    """A short-circuit's `stream_chunks` holding a str, an int or None broke the edge's replay of them: a 500 naming
    no plugin (in process), whatever the plugin's failure policy. Now it is the plugin's failure under its policy, as
    a wrong type in any other field of its answer: closed, the plugin's error; open, skipped, the LLM answers."""
    with (
        caplog.at_level(logging.WARNING, logger="fjordgate.plugins"),
        run_edge(snapshot(upstream, policy, isolated, OddChunks), tmp_path) as edge,
    ):
        replies = [chat(edge, kind, stream=True) for kind in ("str-chunk", "int-chunk", "none-chunk")]
    for reply in replies:
        if policy == "closed":
            assert reply.status_code == 500, reply.text
            assert reply.json()["error"]["message"] == "plugin 'oddchunks' failed"
            assert reply.json()["error"]["code"] == "plugin_exception"
        else:
            assert reply.status_code == 200 and "[DONE]" in reply.text, reply.text
            events = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: {")]
            text = "".join(choice["delta"].get("content") or "" for event in events for choice in event["choices"])
            assert "Echo: " in text  # the LLM's answer, not the plugin's
    if policy == "open" and not isolated:
        logged = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("fjordgate.plugins"))
        for kind in ("str", "int", "NoneType"):
            assert f"ShortCircuit.stream_chunks are not all bytes (one is a {kind})" in logged
