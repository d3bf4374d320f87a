"""Hostile clients at the edge's listener: slow-loris heads and bodies, huge heads, too many connections and
malformed HTTP are answered in the edge's JSON error shape and disconnected, while the edge keeps serving."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from .support import CLIENT_KEY, make_snapshot, run_edge

CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=15)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the edge sends until it closes the connection (the socket timeout fails a test that hangs)."""
    chunks: list[bytes] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _status_and_error(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower()
    return status, json.loads(body)["error"]


def _serves(url: str) -> None:
    reply = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {CLIENT_KEY}"}, json=CHAT)
    assert reply.status_code == 200, reply.text


@pytest.fixture
def edge(upstream, tmp_path):
    with run_edge(make_snapshot(upstream), tmp_path, header_timeout_s=0.5, body_timeout_s=0.5) as running:
        yield running


def test_a_connection_that_sends_nothing_is_answered_408_and_closed(edge):
    with _connect(edge.url) as sock:
        status, error = _status_and_error(_read_all(sock))
    assert status == 408 and error["code"] == "request_timeout"
    _serves(edge.url)


def test_a_head_dripped_a_byte_at_a_time_is_cut_off(edge):
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n" + b"x-slow: " + b"a" * 1000
    with _connect(edge.url) as sock:
        closed = False
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.01)
            # The edge's answer arrives while we are still dripping; stop once the connection is closed.
            sock.setblocking(False)
            try:
                data = sock.recv(65536, socket.MSG_PEEK)
            except BlockingIOError:
                data = None
            finally:
                sock.setblocking(True)
            if data:
                closed = True
                break
        assert closed, "the edge waited for the whole dripped head"
        status, error = _status_and_error(_read_all(sock))
    assert status == 408 and error["code"] == "request_timeout"


def test_a_body_that_never_arrives_is_answered_408(edge):
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
        + f"authorization: Bearer {CLIENT_KEY}\r\n".encode()
        + b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
    )
    with _connect(edge.url) as sock:
        sock.sendall(head)
        status, error = _status_and_error(_read_all(sock))
    assert status == 408 and error["code"] == "request_timeout"
    _serves(edge.url)


def test_a_body_deadline_shorter_than_the_head_deadline_is_kept(upstream, tmp_path):
    """A connection has one timer, set for its head deadline (30 s here); a body deadline due before it moves the
    timer earlier, so the 408 comes after the body's 0.5 s, not the head's 30 s (the socket gives up at 15)."""
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
        + f"authorization: Bearer {CLIENT_KEY}\r\n".encode()
        + b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
    )
    with run_edge(make_snapshot(upstream), tmp_path, header_timeout_s=30, body_timeout_s=0.5) as running:
        with _connect(running.url) as sock:
            started = time.monotonic()
            sock.sendall(head)
            status, error = _status_and_error(_read_all(sock))
        assert status == 408 and error["code"] == "request_timeout"
        assert time.monotonic() - started < 5
        _serves(running.url)


def test_many_slow_loris_connections_are_all_closed_and_the_edge_serves_meanwhile(edge):
    sockets = [_connect(edge.url) for _ in range(300)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n")  # never finished
        _serves(edge.url)
        answers = [_status_and_error(_read_all(sock))[0] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert answers == [408] * 300


def test_an_oversized_head_gets_431_and_the_edge_keeps_serving(edge):
    with _connect(edge.url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        try:
            for _ in range(200):  # 200 x 1 KiB: over the 64 KiB bound
                sock.sendall(b"x-filler: " + b"a" * 1024 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, error = _status_and_error(_read_all(sock))
    assert status == 431 and error["code"] == "headers_too_large"
    _serves(edge.url)


def test_too_many_headers_get_431(edge):
    lines = b"".join(b"x-h%d: v\r\n" % i for i in range(150))
    with _connect(edge.url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n" + lines + b"\r\n")
        status, error = _status_and_error(_read_all(sock))
    assert status == 431


@pytest.mark.parametrize(
    "garbage",
    [b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nbad header line\r\n\r\n", b"\x00\x01\x02\r\n\r\n"],
)
def test_malformed_http_gets_a_json_400(edge, garbage):
    with _connect(edge.url) as sock:
        sock.sendall(garbage)
        status, error = _status_and_error(_read_all(sock))
    assert status == 400 and error["type"] == "invalid_request_error" and error["code"] == "invalid_http"


def test_connections_over_the_cap_get_503_until_one_closes(upstream, tmp_path):
    with run_edge(make_snapshot(upstream), tmp_path, max_connections=4, header_timeout_s=30) as edge:
        held = [_connect(edge.url) for _ in range(4)]
        try:
            time.sleep(0.2)  # let the edge accept all four
            with _connect(edge.url) as extra:
                status, error = _status_and_error(_read_all(extra))
            assert status == 503 and error["code"] == "too_many_connections"
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 10
        while True:  # the held connections' close reaches the edge asynchronously
            try:
                _serves(edge.url)
                break
            except (AssertionError, httpx.HTTPError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def test_a_kept_alive_client_is_unaffected_by_the_deadlines(edge):
    with httpx.Client() as client:
        for _ in range(3):
            reply = client.post(
                f"{edge.url}/v1/chat/completions", headers={"authorization": f"Bearer {CLIENT_KEY}"}, json=CHAT
            )
            assert reply.status_code == 200
            time.sleep(0.3)  # idle between requests, under the keep-alive timeout


def test_a_header_value_that_never_ends_gets_431_before_the_head_deadline(edge):
    """The parser holds an unfinished header value in no parsed header: without counting the bytes read, 20 MiB
    of one value were taken in (and held) until the head deadline, then answered 408."""
    with _connect(edge.url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: ")
        try:
            for _ in range(20_000):  # 20 MiB, over the 64 KiB bound 320 times (what follows a refusal is discarded)
                sock.sendall(b"a" * 1024)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, error = _status_and_error(_read_all(sock))
    assert status == 431 and error["code"] == "headers_too_large"  # not the head deadline's 408
    _serves(edge.url)
