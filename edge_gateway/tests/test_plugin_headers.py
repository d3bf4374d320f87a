"""Headers a plugin returns are checked like its bodies and statuses: a value that is not a str (an int, None,
bytes, a list), or a name that is not a str, is empty or holds CR, LF, NUL or ':', fails the call naming the plugin,
the hook and the header, under the plugin's failure policy, in process and isolated alike. (A str value holding CR
or LF is the edge's to drop, header by header: `test_response_headers.py`.)

Before, an isolated plugin's `{"x-count": 3}` failed decoding on the edge's side of the wire: a 500 "internal error
in the edge gateway" naming no plugin, whatever its failure policy. In process, such a value was dropped by the
response writer (a list raised: a 500 as well), and a request hook's went on to the upstream call, which failed on
it (a 500), refused it (a 502 naming no plugin) or sent it (an empty name: the vendor's 400)."""

from __future__ import annotations

import logging

import anthropic
import httpx
import msgspec
import pytest

from shared_sdk import BasePlugin, Context, EnrichedRequest, PluginResponse, ResponseWriteRequest, ResponseWriteResponse

from .support import CLIENT_KEY, one_plugin_snapshot, run_edge

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}

BAD_HEADERS: dict[str, dict] = {
    "int-value": {"x-count": 3},
    "none-value": {"x-none": None},
    "bytes-value": {"x-raw": b"raw"},
    "list-value": {"x-list": ["a", "b"]},
    "int-name": {7: "seven"},
    "empty-name": {"": "empty"},
    "crlf-name": {"x-a\r\nx-injected": "1"},
    "colon-name": {"x-a: b": "1"},
}


class BadHeaders(BasePlugin):
    """Adds the header named by the request's last message to the request, or to the response."""

    name = "bad-headers"

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse | None:
        where, _, case = msgspec.json.decode(req.body)["messages"][-1]["content"].partition(":")
        if where != "request":
            return None
        headers = {**req.headers, **BAD_HEADERS[case]}
        return PluginResponse(modified=True, request=msgspec.structs.replace(req, headers=headers))

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse | None:
        if b"response:" not in req.body:  # the mock's echo holds the request's text
            return None
        case = req.body.split(b"response:", 1)[1].split(b'"', 1)[0].decode()
        return ResponseWriteResponse(modified=True, headers={**req.headers, **BAD_HEADERS[case]})


def chat(edge, content: str) -> httpx.Response:
    return httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers=AUTH,
        timeout=15,
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": content}]},
    )


def snapshot(upstream: str, policy: str, isolated: bool):
    return one_plugin_snapshot(upstream, BadHeaders, "bad-headers", policy, isolated)


CASES = [(where, case) for where in ("request", "response") for case in BAD_HEADERS]


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_bad_header_fails_closed_as_the_plugins_failure_in_the_callers_dialect(upstream, tmp_path, isolated):
    with run_edge(snapshot(upstream, "closed", isolated), tmp_path) as edge:
        replies = {(where, case): chat(edge, f"{where}:{case}") for where, case in CASES}
        client = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
        with pytest.raises(anthropic.InternalServerError) as refused:
            client.messages.create(
                model="mock-gpt", max_tokens=50, messages=[{"role": "user", "content": "response:int-value"}]
            )
    for key, reply in replies.items():
        assert (key, reply.status_code) == (key, 500)
        assert reply.json()["error"] == {
            "message": "plugin 'bad-headers' failed",
            "type": "plugin_error",
            "param": None,
            "code": "plugin_exception",
        }
    assert refused.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "plugin 'bad-headers' failed"},
    }


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_bad_header_fails_open_skipping_the_plugin_with_a_log_naming_it(upstream, tmp_path, caplog, isolated):
    with (
        caplog.at_level(logging.WARNING, logger="fjordgate.plugins"),
        run_edge(snapshot(upstream, "open", isolated), tmp_path) as edge,
    ):
        replies = {(where, case): chat(edge, f"{where}:{case}") for where, case in CASES}
    for (where, case), reply in replies.items():
        assert ((where, case), reply.status_code) == ((where, case), 200)
        assert f"Echo: {where}:{case}" in reply.text  # served without the plugin's change
        assert "x-injected" not in reply.headers and "x-count" not in reply.headers
    logged = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("fjordgate.plugins"))
    assert "plugin 'bad-headers' handle_post_auth" in logged
    assert "PluginResponse.request: EnrichedRequest.headers: 'x-count' is int, expected str" in logged
    assert "ResponseWriteResponse.headers: 'x-list' is list, expected str" in logged
    assert "ResponseWriteResponse.headers: the name 'x-a: b' holds CR, LF, NUL or ':'" in logged
