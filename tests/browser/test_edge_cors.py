"""A page in Chromium calls an edge on another origin (`EDGE_CORS_ALLOW_ORIGINS`, `edge_gateway/cors.py`), as a
browser app with the openai SDK's `dangerouslyAllowBrowser` does: `fetch()` with an `Authorization` header (so
the browser sends a preflight first), then reads the answer and its request id. From an origin the edge allows,
the page gets the completion; from one it does not, the browser refuses the call. A real edge process
(`python -m edge_gateway`) in front of the mock LLM."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from edge_gateway.tests.support import CLIENT_KEY, edge_process_env, free_port, make_snapshot, start_mock, wait_http

PAGE = b"<!doctype html><html><head><title>playground</title></head><body>a browser app</body></html>"
CALL = """async ([url, key]) => {
    try {
        const reply = await fetch(url, {
            method: "POST",
            headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json"},
            body: JSON.stringify({model: "mock-gpt", messages: [{role: "user", content: "hello from a page"}]}),
        });
        return {status: reply.status, body: await reply.json(), id: reply.headers.get("x-request-id")};
    } catch (error) {
        return {refused: String(error)};
    }
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def pages() -> Iterator[tuple[str, str]]:
    """Two sites serving the app's page: (allowed origin, other origin), on two ports of 127.0.0.1."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Page) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield tuple(f"http://127.0.0.1:{s.server_address[1]}" for s in servers)  # type: ignore[misc]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def edge(pages: tuple[str, str], tmp_path_factory: Any) -> Iterator[str]:
    port = free_port()
    with start_mock() as upstream:
        env = edge_process_env(
            make_snapshot(upstream), tmp_path_factory.mktemp("edge"), port, EDGE_CORS_ALLOW_ORIGINS=pages[0]
        )
        proc = subprocess.Popen([sys.executable, "-m", "edge_gateway"], env=env)
        try:
            wait_http(f"http://127.0.0.1:{port}/ready")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(20)


def test_a_page_of_an_allowed_origin_reads_the_edges_answer(page, pages, edge):
    page.goto(pages[0])
    answer = page.evaluate(CALL, [f"{edge}/v1/chat/completions", CLIENT_KEY])
    assert answer.get("status") == 200, answer
    assert "hello from a page" in answer["body"]["choices"][0]["message"]["content"]
    assert answer["id"]  # an exposed header the page may read
    refused = page.evaluate(CALL, [f"{edge}/v1/chat/completions", "sk-wrong"])
    assert refused.get("status") == 401 and refused["body"]["error"]["code"] == "invalid_api_key"


def test_a_page_of_another_origin_is_refused_by_the_browser(page, pages, edge):
    page.goto(pages[1])
    answer = page.evaluate(CALL, [f"{edge}/v1/chat/completions", CLIENT_KEY])
    assert "refused" in answer and "fetch" in answer["refused"].lower(), answer
