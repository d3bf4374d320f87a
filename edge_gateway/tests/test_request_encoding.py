"""A client's compressed request body (`Content-Encoding`, `intake.read_body`): gzip and deflate are decoded (the
vendor gets, and the hooks see, the JSON), the body limit bounds the decoded size (a gzip bomb is a 413 after at
most the limit, not gigabytes in memory), corrupt data is a 400 and an encoding the edge cannot read a 415, each
in the caller's format (OpenAI, Anthropic, Gemini). Against a real edge and the mock LLM, with real HTTP requests."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from typing import Any

import httpx
import pytest

from .support import CLIENT_KEY, make_snapshot, run_edge

LIMIT = 64 * 1024
CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "compressed hello"}]}
OPENAI = ("/v1/chat/completions", {"authorization": f"Bearer {CLIENT_KEY}"}, CHAT)
ANTHROPIC = ("/v1/messages", {"x-api-key": CLIENT_KEY}, {**CHAT, "max_tokens": 20})
GEMINI = (
    "/v1beta/models/mock-gpt:generateContent",
    {"x-goog-api-key": CLIENT_KEY},
    {"contents": [{"parts": [{"text": "compressed hello"}]}]},
)


@pytest.fixture(scope="module")
def edge(mock_upstream: str, tmp_path_factory: Any) -> Any:
    with run_edge(make_snapshot(mock_upstream), tmp_path_factory.mktemp("edge"), max_body_bytes=LIMIT) as running:
        yield running


def post(edge: Any, door: tuple[str, dict[str, str], dict[str, Any]], body: bytes, encoding: str) -> httpx.Response:
    path, headers, _ = door
    sent = {**headers, "content-type": "application/json", "content-encoding": encoding}
    return httpx.post(edge.url + path, content=body, headers=sent, timeout=30)


def raw_deflate(data: bytes) -> bytes:
    z = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return z.compress(data) + z.flush()


@pytest.mark.parametrize(
    "encoding,encode",
    [
        ("gzip", gzip.compress),
        ("GZip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
        ("identity", lambda b: b),
    ],
)
def test_a_compressed_body_is_served(edge, encoding, encode):
    reply = post(edge, OPENAI, encode(json.dumps(CHAT).encode()), encoding)
    assert reply.status_code == 200, reply.text
    assert "compressed hello" in reply.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("door", [ANTHROPIC, GEMINI], ids=["anthropic", "gemini"])
def test_a_gzip_body_is_served_on_the_other_doors(edge, door):
    reply = post(edge, door, gzip.compress(json.dumps(door[2]).encode()), "gzip")
    assert reply.status_code == 200, reply.text
    assert "compressed hello" in reply.text


def test_a_gzip_bomb_is_a_413_within_the_limit(edge):
    bomb = gzip.compress(b"\0" * (10 * 1024 * 1024), 9)  # ~10 KB on the wire, 10 MB decoded
    assert len(bomb) < LIMIT
    tracemalloc.start()
    try:
        reply = post(edge, OPENAI, bomb, "gzip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "body_too_large"
    assert peak < 4 * 1024 * 1024  # the limit plus a piece or two, never the 10 MB


def test_a_body_over_the_limit_only_once_decoded_is_a_413(edge):
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * (2 * LIMIT)}]}
    reply = post(edge, OPENAI, gzip.compress(json.dumps(big).encode()), "gzip")
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    "door,expected",
    [
        (OPENAI, lambda r: r.json()["error"]["code"] == "body_too_large"),
        (ANTHROPIC, lambda r: r.json()["error"]["type"] == "request_too_large"),
        (GEMINI, lambda r: r.json()["error"]["status"] == "INVALID_ARGUMENT"),
    ],
    ids=["openai", "anthropic", "gemini"],
)
def test_the_bombs_413_is_in_the_callers_format(edge, door, expected):
    reply = post(edge, door, gzip.compress(b"\0" * (4 * LIMIT)), "gzip")
    assert reply.status_code == 413 and expected(reply), reply.text


@pytest.mark.parametrize(
    "body,encoding",
    [
        (b"not gzip at all", "gzip"),
        (gzip.compress(json.dumps(CHAT).encode())[:-12], "gzip"),  # cut short
        (b"", "gzip"),
        (b"\x78\x9c garbage", "deflate"),
    ],
    ids=["garbage", "truncated", "empty", "deflate-garbage"],
)
def test_corrupt_data_is_a_400(edge, body, encoding):
    reply = post(edge, OPENAI, body, encoding)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "invalid_encoding" and error["type"] == "invalid_request_error"


def test_corrupt_data_is_a_400_in_anthropics_and_googles_format(edge):
    anthropic = post(edge, ANTHROPIC, b"not gzip", "gzip")
    assert anthropic.status_code == 400 and anthropic.json()["error"]["type"] == "invalid_request_error"
    assert "not valid gzip" in anthropic.json()["error"]["message"]
    gemini = post(edge, GEMINI, b"not gzip", "gzip")
    assert gemini.status_code == 400 and gemini.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "not valid gzip" in gemini.json()["error"]["message"]


@pytest.mark.parametrize("encoding", ["zstd", "foo", "br", "gzip, gzip", "compress"])
def test_an_encoding_the_edge_cannot_read_is_a_415(edge, encoding):
    reply = post(edge, OPENAI, json.dumps(CHAT).encode(), encoding)
    assert reply.status_code == 415
    error = reply.json()["error"]
    assert error["code"] == "unsupported_content_encoding" and "gzip" in error["message"]


def test_the_415_is_in_anthropics_and_googles_format(edge):
    anthropic = post(edge, ANTHROPIC, json.dumps(ANTHROPIC[2]).encode(), "zstd")
    assert anthropic.status_code == 415
    assert anthropic.json()["type"] == "error" and anthropic.json()["error"]["type"] == "invalid_request_error"
    gemini = post(edge, GEMINI, json.dumps(GEMINI[2]).encode(), "zstd")
    assert gemini.status_code == 415 and gemini.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_an_unknown_caller_learns_nothing_about_the_encoding(edge):
    reply = httpx.post(
        edge.url + "/v1/chat/completions",
        content=b"junk",
        headers={"authorization": "Bearer sk-wrong", "content-encoding": "zstd"},
    )
    assert reply.status_code == 401
