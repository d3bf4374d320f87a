"""A plugin that returns another SDK message than its hook's (the request itself from a request hook, an
`UpstreamResponse` from a response hook) fails the call with a message saying what to return, in process and
isolated, instead of being converted field by field into an answer that changes nothing.

A hook's own message with a field of the wrong type (`body="slow down"`, a str) fails the call the same way,
naming the field, under the plugin's failure policy: before, the edge failed writing it (in process the client's
connection dropped mid-response, isolated a 500 "internal error in the edge gateway"), naming no plugin."""

from __future__ import annotations

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
    UpstreamResponse,
)

from .support import CLIENT_KEY, one_plugin_snapshot, run_edge

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}


class ReturnsTheRequest(BasePlugin):
    """The first plugin's usual mistake: change the request and return it as it is."""

    name = "returns-the-request"

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> EnrichedRequest:
        return msgspec.structs.replace(req, headers={**req.headers, "x-team": "blue"})


class ReturnsAResponse(BasePlugin):
    """The same mistake in a response hook: answer with the response it wants sent."""

    name = "returns-a-response"

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> UpstreamResponse:
        return UpstreamResponse(status_code=200, body=b'{"replaced": true}')


class TextBodies(BasePlugin):
    """Bodies given as text: a block over the request size, and a rewritten response."""

    name = "text-bodies"

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse | None:
        if b"too much" in req.body:
            return PluginResponse(block=True, status_code=429, body="slow down")  # type: ignore[arg-type]
        return None

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        return ResponseWriteResponse(modified=True, body='{"rewritten": true}')  # type: ignore[arg-type]


def chat(edge, content: str = "hi") -> httpx.Response:
    return httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers=AUTH,
        timeout=10,
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": content}]},
    )


def snapshot(upstream: str, cls: type, policy: str, isolated: bool):
    return one_plugin_snapshot(upstream, cls, "mistaken", policy, isolated)


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_returning_the_request_fails_closed_with_an_openai_error(upstream, tmp_path, isolated):
    with run_edge(snapshot(upstream, ReturnsTheRequest, "closed", isolated), tmp_path) as edge:
        reply = chat(edge)
    assert reply.status_code == 500
    assert reply.json()["error"]["code"] == "plugin_exception"


@pytest.mark.parametrize("cls", [ReturnsTheRequest, ReturnsAResponse])
def test_fail_open_logs_what_to_return_instead(upstream, tmp_path, caplog, cls):
    with (
        caplog.at_level(logging.WARNING, logger="fjordgate.plugins"),
        run_edge(snapshot(upstream, cls, "open", False), tmp_path) as edge,
    ):
        reply = chat(edge)
    assert reply.status_code == 200 and "Echo: hi" in reply.text  # skipped, the request served as it came
    logged = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("fjordgate.plugins"))
    returned = "EnrichedRequest" if cls is ReturnsTheRequest else "UpstreamResponse"
    assert "plugin 'mistaken'" in logged and f"returned {returned}" in logged
    assert "modified=True" in logged


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_str_body_fails_closed_with_an_openai_error_naming_no_internals(upstream, tmp_path, isolated):
    with run_edge(snapshot(upstream, TextBodies, "closed", isolated), tmp_path) as edge:
        blocked = chat(edge, "too much")
        rewritten = chat(edge)
    for reply in (blocked, rewritten):
        assert reply.status_code == 500
        assert reply.json()["error"]["code"] == "plugin_exception"


def test_a_str_body_fails_open_with_a_log_naming_the_plugin_and_the_field(upstream, tmp_path, caplog):
    with (
        caplog.at_level(logging.WARNING, logger="fjordgate.plugins"),
        run_edge(snapshot(upstream, TextBodies, "open", False), tmp_path) as edge,
    ):
        reply = chat(edge, "too much")
    assert reply.status_code == 200 and "Echo: too much" in reply.text  # the plugin skipped, the request served
    logged = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("fjordgate.plugins"))
    assert "plugin 'mistaken' handle_post_auth" in logged and "PluginResponse.body is str, expected bytes" in logged
    assert "ResponseWriteResponse.body is str, expected bytes | None" in logged
