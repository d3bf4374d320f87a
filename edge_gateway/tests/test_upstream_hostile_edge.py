"""A real edge process (`python -m edge_gateway`, each transport) in front of a hostile vendor: the client gets a
clean OpenAI-shaped 502/504, the edge's memory stays bounded, and it keeps serving.

The memory figure is the edge process's peak resident set (`VmHWM`) after the endless-headers case against its
resident set before: an edge used to go from 86 MB to 3.5 GB in 10 s there. The bound is generous on purpose
(+200 MB); the transport-level suite (`test_upstream_hostile.py`) bounds each case tightly.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import orjson
import pytest

from .hostile_vendor import HostileVendor, Script, drip, endless, ok, raw, vendor_thread
from .support import CLIENT_KEY, edge_process_env, free_port, llm, make_snapshot, wait_http

COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "mock-gpt",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
)
BIG = orjson.dumps({**orjson.loads(COMPLETION), "padding": "x" * (3 << 20)})
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
SCRIPTS: dict[str, Script] = {
    "good": raw(ok(COMPLETION), keep=True),
    "big": raw(ok(BIG), keep=True),
    "gzip": raw(ok(gzip.compress(COMPLETION), b"content-encoding: gzip\r\n"), keep=True),
    "headers": endless(HEAD, b"x-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"),
    "drip": drip(HEAD + b"content-length: 100000\r\n\r\n", b"{", 0.2),
}


@contextmanager
def edge_process(vendor: HostileVendor, client: str, tmp_path) -> Iterator[tuple[str, int]]:
    base = f"http://127.0.0.1:{vendor.port}"
    llms = [
        llm(i, name, f"{base}/{name}", max_retries=0, first_byte_timeout_s=2.0, idle_stream_timeout_s=2.0)
        for i, name in enumerate(SCRIPTS, start=1)
    ]
    port = free_port()
    env = edge_process_env(
        make_snapshot(base, llms=llms), tmp_path, port, EDGE_UPSTREAM_CLIENT=client, EDGE_UPSTREAM_DEADLINE_S="3"
    )
    proc = subprocess.Popen([sys.executable, "-m", "edge_gateway"], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/ready")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def memory_kib(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as fh:
        fields = dict(line.split(":", 1) for line in fh)
    return {key: int(fields[key].split()[0]) for key in ("VmRSS", "VmHWM")}


def chat(edge: str, llm_slug: str) -> httpx.Response:
    return httpx.post(
        f"{edge}/v1/chat/completions",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": f"{llm_slug}/mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def assert_openai_error(reply: httpx.Response, status: int) -> dict:
    assert reply.status_code == status, reply.text[:300]
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"} and error["message"]
    return error


@pytest.mark.parametrize("client", ["h1", "aiohttp"])
def test_an_edge_in_front_of_a_hostile_vendor_answers_cleanly_and_stays_small(client, tmp_path):
    scripts = {f"/{name}/chat/completions": script for name, script in SCRIPTS.items()}
    with vendor_thread(scripts) as vendor, edge_process(vendor, client, tmp_path) as (edge, pid):
        assert chat(edge, "good").status_code == 200  # warm: the pool, the pipeline, the JSON decoders
        before = memory_kib(pid)

        error = assert_openai_error(chat(edge, "headers"), 502)
        assert error["type"] == "upstream_error"
        grown_mib = (memory_kib(pid)["VmHWM"] - before["VmRSS"]) / 1024
        assert grown_mib < 200, f"the edge's peak RSS grew by {grown_mib:.0f} MiB"

        error = assert_openai_error(chat(edge, "drip"), 504)
        assert error["type"] == "timeout"

        gzipped = chat(edge, "gzip")
        assert gzipped.status_code == 200 and "content-encoding" not in gzipped.headers
        assert gzipped.json()["choices"][0]["message"]["content"] == "fine"

        big = chat(edge, "big")
        assert big.status_code == 200 and len(big.json()["padding"]) == 3 << 20

        assert chat(edge, "good").status_code == 200
