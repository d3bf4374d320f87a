"""A plugin that returns another SDK message than its hook's (the request itself from a request hook, an
`UpstreamResponse` from a response hook) fails the call with a message saying what to return, in process and
isolated, instead of being converted field by field into an answer that changes nothing."""

from __future__ import annotations

import logging

import httpx
import msgspec
import pytest

from shared_sdk import BasePlugin, Context, EnrichedRequest, ResponseWriteRequest, UpstreamResponse

from .support import CLIENT_KEY, PluginConfig, make_snapshot, run_edge

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


def chat(edge) -> httpx.Response:
    return httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers=AUTH,
        timeout=10,
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
    )


def snapshot(upstream: str, cls: type, policy: str, isolated: bool):
    plugin = PluginConfig(
        slug="mistaken",
        name=cls.__name__,
        import_path=f"edge_gateway.tests.test_plugin_results:{cls.__name__}",
        global_order=0,
        failure_policy=policy,  # type: ignore[arg-type]
        isolated=isolated,
    )
    return make_snapshot(upstream, plugins=[plugin])


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
