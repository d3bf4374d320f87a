"""The edge owns a response's framing: a full answer carries its `content-length` (not chunked encoding), and what a
response hook (or a vendor) sets among the headers cannot break the HTTP exchange: framing and connection headers
are dropped (a wrong `content-length` would cut the body short and desynchronise the kept-alive connection), a
header that is not valid HTTP (CR/LF in a value: header injection; a name with spaces; a value that is not
latin-1) is dropped instead of failing the response, and the plugin's valid headers still arrive.

Checked on the wire (a raw socket: clients hide the framing), against a real edge (uvicorn, the edge's protocol).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from shared_sdk import (
    BasePlugin,
    Context,
    EndpointRegistration,
    EndpointRequest,
    EndpointResponse,
    PluginResponse,
    ResponseWriteRequest,
    ResponseWriteResponse,
    ShortCircuit,
    UpstreamResponse,
)
from shared_sdk.snapshot import PluginConfig

from .support import CLIENT_KEY, make_snapshot, run_edge

HOSTILE_HEADERS = {
    "content-length": "1",
    "transfer-encoding": "chunked",
    "connection": "close",
    "keep-alive": "timeout=1",
    "upgrade": "h2c",
    "trailer": "x-later",
    "te": "trailers",
    "x-injected": "ok\r\nset-cookie: stolen=1",
    "x-bad name": "spaces in the name",
    "x-euro": "\u20ac",
    "x-plugin": "kept",
}


class HeaderSetter(BasePlugin):
    """Sets `config["headers"]` on every response (full and streamed), on its endpoint's (`/plugins/header-setter/
    hello`) and, with `short_circuit`, answers requests itself with them."""

    name = "header-setter"
    version = "1.0.0"

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.headers: dict[str, str] = config.get("headers", {})
        self.short_circuit = bool(config.get("short_circuit"))
        self.status: int = config.get("status", 200)

    async def handle_post_auth(self, ctx: Context, req: Any) -> PluginResponse:
        if not self.short_circuit:
            return PluginResponse()
        body = json.dumps({"answered_by": "plugin"}).encode()
        answer = UpstreamResponse(status_code=self.status, headers=dict(self.headers), body=body)
        return PluginResponse(short_circuit=ShortCircuit(response=answer))

    async def on_before_write_headers(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        return ResponseWriteResponse(modified=True, headers={**req.headers, **self.headers})

    def get_endpoint_registrations(self) -> list[EndpointRegistration]:
        return [EndpointRegistration(path="/hello", methods=["GET"], require_auth=False)]

    async def handle_endpoint_request(self, ctx: Context, req: EndpointRequest) -> EndpointResponse:
        return EndpointResponse(status_code=self.status, headers=dict(self.headers), body=b'{"hello": "world"}')


def _edge(upstream: str, tmp_path: Any, **config: Any) -> Any:
    plugin = PluginConfig(
        slug="header-setter",
        name="header-setter",
        import_path="edge_gateway.tests.test_response_headers:HeaderSetter",
        config=config,
        global_order=1,
    )
    return run_edge(make_snapshot(upstream, plugins=[plugin] if config else []), tmp_path)


def _request(body: dict[str, Any], path: str = "/v1/chat/completions") -> bytes:
    raw = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nhost: edge\r\nauthorization: Bearer {CLIENT_KEY}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(raw)}\r\n\r\n"
    ).encode() + raw


class _Connection:
    """One kept-alive connection; `exchange` sends a request and reads exactly one response as its head frames it."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=15)
        self.buffer = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        assert data, "the edge closed the connection"
        self.buffer += data

    def exchange(self, request: bytes) -> tuple[int, dict[str, list[str]], bytes]:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        assert "transfer-encoding" not in headers, f"a full answer is framed by its length: {headers}"
        (length,) = headers["content-length"]
        while len(self.buffer) < int(length):
            self._fill()
        body, self.buffer = self.buffer[: int(length)], self.buffer[int(length) :]
        return status, headers, body

    def close(self) -> None:
        self.sock.close()


def _assert_only_safe_headers(headers: dict[str, list[str]]) -> None:
    assert headers["x-plugin"] == ["kept"]
    for dropped in ("connection", "keep-alive", "upgrade", "trailer", "te", "x-injected", "x-bad name", "x-euro"):
        assert dropped not in headers, (dropped, headers)
    assert "set-cookie" not in headers  # nothing injected through a value


@pytest.fixture
def connection():
    opened: list[_Connection] = []

    def open_(url: str) -> _Connection:
        opened.append(_Connection(url))
        return opened[-1]

    yield open_
    for conn in opened:
        conn.close()


def test_a_full_answer_carries_its_length(upstream, tmp_path, connection):
    with _edge(upstream, tmp_path) as edge:
        conn = connection(edge.url)
        for _ in range(2):  # the same kept-alive connection, twice
            status, headers, body = conn.exchange(
                _request({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]})
            )
            assert status == 200 and json.loads(body)["choices"][0]["message"]["content"]
        status, headers, body = conn.exchange(_request({"model": "no-such-model", "messages": []}))
        assert status >= 400 and json.loads(body)["error"]  # an error answer too


def test_framing_headers_a_response_hook_sets_cannot_break_the_answer(upstream, tmp_path, connection):
    with _edge(upstream, tmp_path, headers=HOSTILE_HEADERS) as edge:
        conn = connection(edge.url)
        for _ in range(2):  # the connection stays in sync: a second answer on it is whole too
            status, headers, body = conn.exchange(
                _request({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]})
            )
            assert status == 200, body
            assert json.loads(body)["choices"][0]["message"]["content"]
            _assert_only_safe_headers(headers)


def test_a_short_circuit_answer_with_hostile_headers_is_whole(upstream, tmp_path, connection):
    with _edge(upstream, tmp_path, headers=HOSTILE_HEADERS, short_circuit=True) as edge:
        conn = connection(edge.url)
        for _ in range(2):
            status, headers, body = conn.exchange(
                _request({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]})
            )
            assert status == 200 and json.loads(body) == {"answered_by": "plugin"}
            _assert_only_safe_headers(headers)


def test_a_stream_with_hostile_headers_is_chunked_and_whole(upstream, tmp_path):
    with _edge(upstream, tmp_path, headers=HOSTILE_HEADERS) as edge:
        host, port = edge.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            sock.sendall(_request(body))
            raw = b""
            while not raw.endswith(b"0\r\n\r\n"):
                data = sock.recv(65536)
                assert data, raw
                raw += data
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").lower().split("\r\n")
        assert lines[0].startswith("http/1.1 200")
        assert "transfer-encoding: chunked" in lines and not any(x.startswith("content-length") for x in lines)
        assert "x-plugin: kept" in lines and not any(
            x.startswith(("connection", "x-injected", "set-cookie")) for x in lines
        )
        assert b"data: [DONE]" in rest


def test_a_plugin_endpoint_with_hostile_headers_answers_whole(upstream, tmp_path):
    with _edge(upstream, tmp_path, headers=HOSTILE_HEADERS) as edge:
        host, port = edge.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            sock.sendall(b"GET /plugins/header-setter/hello HTTP/1.1\r\nhost: edge\r\nconnection: close\r\n\r\n")
            raw = b""
            while data := sock.recv(65536):
                raw += data
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").lower().split("\r\n")
        assert lines[0].startswith("http/1.1 200"), raw
        assert "transfer-encoding: chunked" in lines and not any(x.startswith("content-length") for x in lines)
        assert "x-plugin: kept" in lines and not any(
            x.startswith(("x-injected", "set-cookie", "upgrade")) for x in lines
        )
        assert b'{"hello": "world"}' in rest


INVALID_STATUSES = pytest.mark.parametrize("status", [0, 99, 101, 199, 600, 1000])


@INVALID_STATUSES
def test_a_short_circuit_with_an_invalid_status_is_a_502_error(upstream, tmp_path, connection, status):
    """A 1xx is not a final answer (101 would tell the client the connection switched protocols), and anything
    outside 100-599 is not HTTP: the client gets the plugin's failure as an error, on a connection still in sync."""
    with _edge(upstream, tmp_path, short_circuit=True, status=status) as edge:
        conn = connection(edge.url)
        for _ in range(2):
            answer, _, body = conn.exchange(
                _request({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]})
            )
            assert answer == 502, body
            error = json.loads(body)["error"]
            assert error["code"] == "invalid_status" and str(status) in error["message"]


@INVALID_STATUSES
def test_a_plugin_endpoint_with_an_invalid_status_is_a_502_error(upstream, tmp_path, connection, status):
    with _edge(upstream, tmp_path, status=status) as edge:
        conn = connection(edge.url)
        answer, _, body = conn.exchange(b"GET /plugins/header-setter/hello HTTP/1.1\r\nhost: edge\r\n\r\n")
        assert answer == 502, body
        assert json.loads(body)["error"]["code"] == "plugin_invalid_status"
