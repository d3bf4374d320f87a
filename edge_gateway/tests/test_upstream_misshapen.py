"""A vendor reply of the wrong shape on the translated paths: a 502 `upstream_bad_response` in the caller's dialect,
recorded by accounting, and the edge keeps serving; never a 500 "internal error in the edge gateway".

A hostile or broken vendor (Anthropic, Gemini, Bedrock, an OpenAI-compatible one) answered 200 with a list, `null`
or a string where its format has an object, a string where `content` is a list, a token count that is a string,
negative or 1e300 (past 64 bits it was a 502 saying the reply nested too deeply), or invalid UTF-8 in a reply the edge translates. Before: the translators' `.get` / `int()` /
decode raised out of the upstream phase, a 500 naming an internal error; a string count in an Anthropic
`/v1/messages` pass-through even got its 200 out and then crashed accounting (no record of the request).
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared_sdk import AnalyticsRecord

from .hostile_vendor import Script, ok, raw, vendor_thread
from .support import CLIENT_KEY, encrypt, llm, make_snapshot, run_edge

GOOD_MESSAGE = b'{"id":"m","type":"message","role":"assistant","content":[{"type":"text","text":"fine"}],"usage":{"input_tokens":3,"output_tokens":1},"stop_reason":"end_turn"}'
WHOLE_FLOAT_USAGE = b'{"id":"m","type":"message","role":"assistant","content":[{"type":"text","text":"fine"}],"usage":{"input_tokens":3.0,"output_tokens":2.0},"stop_reason":"end_turn"}'
BODIES: dict[str, bytes] = {
    "whole-float-usage": WHOLE_FLOAT_USAGE,
    "list": b"[1,2]",
    "null": b"null",
    "string": b'"x"',
    "ant-content-string": b'{"id":"m","type":"message","role":"assistant","content":"hi","usage":{"input_tokens":1,"output_tokens":1}}',
    "ant-content-ints": b'{"id":"m","type":"message","role":"assistant","content":[5,null],"usage":{"input_tokens":1,"output_tokens":1}}',
    "ant-usage-string": b'{"id":"m","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":1,"output_tokens":"x"},"stop_reason":"end_turn"}',
    "ant-usage-negative": b'{"id":"m","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":-1000000,"output_tokens":1},"stop_reason":"end_turn"}',
    "ant-usage-huge": b'{"id":"m","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":1e300,"output_tokens":1},"stop_reason":"end_turn"}',
    "gem-usage-string": b'{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":"x"}}',
    "gem-usage-huge": b'{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1e300}}',
    "bed-output-string": b'{"output":"x"}',
    "bed-usage-string": b'{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":"x"}}',
    "emb-none": b'{"candidates":[]}',
    "emb-fewer": b'{"embeddings":[]}',
    "emb-values-string": b'{"embeddings":[{"values":"123"}]}',
    "oai-invalid-utf8": b'{"choices":[{"message":{"content":"\xff\xfe"}}]}',
}
CASES = [  # (vendor, body): what each vendor's reader is handed
    *(("anthropic", name) for name in ("list", "null", "string", "ant-content-string", "ant-content-ints")),
    *(("anthropic", name) for name in ("ant-usage-string", "ant-usage-negative", "ant-usage-huge")),
    *(("google", name) for name in ("list", "gem-usage-string", "gem-usage-huge")),
    *(("bedrock", name) for name in ("list", "bed-output-string", "bed-usage-string")),
]


def _frame(event_type: str, payload: bytes) -> bytes:
    """One AWS event-stream message (both CRCs right), as Bedrock's ConverseStream sends them."""
    headers = b""
    for name, value in ((":event-type", event_type), (":message-type", "event"), (":content-type", "application/json")):
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack("!H", len(value)) + value.encode()
    prelude = struct.pack("!II", 16 + len(headers) + len(payload), len(headers))
    message = prelude + struct.pack("!I", binascii.crc32(prelude)) + headers + payload
    return message + struct.pack("!I", binascii.crc32(message))


SSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
EVENT_STREAM = b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\nconnection: close\r\n\r\n"
GEMINI_TEXT = b'data: {"candidates":[{"content":{"parts":[{"text":"hi"}],"role":"model"}}]}\n\n'
BEDROCK_TEXT = _frame("messageStart", b'{"role":"assistant"}') + _frame(
    "contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"hi"}}'
)
STREAMS: dict[str, bytes] = {  # a stream's whole body; the edge reads it at once, so it fails before its first chunk
    "anthropic-stream-null": SSE + b"event: message_start\ndata: null\n\n",
    "anthropic-stream-delta-int": SSE
    + b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":1}}}\n\n'
    + b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":5}\n\n',
    "google-stream-usage-string": SSE
    + GEMINI_TEXT
    + b'data: {"candidates":[{"content":{"parts":[{"text":"."}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":"x"}}\n\n',
    "bedrock-stream-usage-string": EVENT_STREAM
    + BEDROCK_TEXT
    + _frame("messageStop", b'{"stopReason":"end_turn"}')
    + _frame("metadata", b'{"usage":{"inputTokens":"x","outputTokens":1}}'),
}
OPENAI_STREAM = (
    SSE + b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: [1]\n\ndata: [DONE]\n\n'
)
EMBED_CASES = [("google", name) for name in ("emb-none", "emb-fewer", "emb-values-string")]
MODELS = {"anthropic": "claude-x", "google": "gemini-2.0-flash", "bedrock": "anthropic.claude-x", "mock": "mock-gpt"}


class _ByFirstSegment(dict[str, Script]):
    """The vendor's scripts by the first path segment (each LLM's base URL is `/{its slug}`)."""

    def __getitem__(self, path: str) -> Script:
        return super().__getitem__(path.split("/")[1])


def _slug(vendor: str, body: str) -> str:
    return f"{vendor}-{body}"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    streams = [(name.split("-", 1)[0], name.split("-", 1)[1]) for name in STREAMS]
    targets = [
        *CASES,
        ("anthropic", "good"),
        ("anthropic", "whole-float-usage"),
        ("mock", "oai-invalid-utf8"),
        *streams,
        ("mock", "stream-list"),
        *EMBED_CASES,
    ]
    scripts = _ByFirstSegment({_slug(v, b): raw(ok(BODIES.get(b, GOOD_MESSAGE)), keep=True) for v, b in targets})
    scripts.update({name: raw(body) for name, body in STREAMS.items()})
    scripts["mock-stream-list"] = raw(OPENAI_STREAM)
    with vendor_thread({}) as vendor:
        vendor.scripts = scripts
        base = f"http://127.0.0.1:{vendor.port}"
        llms = []
        for i, (vendor_name, body) in enumerate(targets, start=1):
            extra: dict[str, Any] = {}
            if vendor_name == "bedrock":
                extra = {"metadata": {"region": "eu-central-1"}, "api_key_encrypted": encrypt("AKIDTEST:secret")}
            url = f"{base}/{_slug(vendor_name, body)}" + ("/v1" if vendor_name == "mock" else "")
            llms.append(
                llm(
                    i,
                    _slug(vendor_name, body),
                    url,
                    vendor=vendor_name,
                    default_model=MODELS[vendor_name],
                    max_retries=0,
                    **extra,
                )
            )
        with run_edge(make_snapshot(base, llms=llms), tmp_path_factory.mktemp("misshapen")) as running:
            yield running


def _chat(edge: Any, slug: str, model: str, stream: bool = False) -> httpx.Response:
    return httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": f"{slug}/{model}", "messages": [{"role": "user", "content": "hi"}], "stream": stream},
        timeout=30,
    )


def _messages(edge: Any, slug: str, model: str, stream: bool = False) -> httpx.Response:
    return httpx.post(
        f"{edge.url}/v1/messages",
        headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
        json={
            "model": f"{slug}/{model}",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
        },
        timeout=30,
    )


def _recorded_502(edge: Any, reply: httpx.Response) -> None:
    record = edge.sink.record_of(reply.headers["x-request-id"], AnalyticsRecord)
    assert record.status_code == 502 and record.total_tokens == 0


@pytest.mark.parametrize(("vendor", "body"), CASES)
def test_an_openai_client_gets_a_502_for_a_misshapen_reply(edge, vendor, body):
    reply = _chat(edge, _slug(vendor, body), MODELS[vendor])
    assert reply.status_code == 502, reply.text[:300]
    error = reply.json()["error"]
    assert error["type"] == "upstream_error" and error["code"] == "upstream_bad_response"
    assert "internal" not in error["message"] and "nested" not in error["message"]
    _recorded_502(edge, reply)
    assert _chat(edge, _slug("anthropic", "good"), MODELS["anthropic"]).status_code == 200


@pytest.mark.parametrize(("vendor", "body"), CASES)
def test_an_anthropic_client_gets_a_502_in_its_own_shape(edge, vendor, body):
    reply = _messages(edge, _slug(vendor, body), MODELS[vendor])
    assert reply.status_code == 502, reply.text[:300]
    answer = reply.json()
    assert answer["type"] == "error" and answer["error"]["type"] == "api_error"
    assert "internal" not in answer["error"]["message"] and "nested" not in answer["error"]["message"]
    _recorded_502(edge, reply)
    assert _messages(edge, _slug("anthropic", "good"), MODELS["anthropic"]).status_code == 200


def test_a_count_written_as_a_whole_float_is_a_count(edge):
    """`3.0` is how some OpenAI-compatible servers write a count: accounted as 3, not refused as misshapen."""
    reply = _chat(edge, _slug("anthropic", "whole-float-usage"), MODELS["anthropic"])
    assert reply.status_code == 200, reply.text[:300]
    assert reply.json()["usage"]["total_tokens"] == 5
    assert edge.sink.record_of(reply.headers["x-request-id"], AnalyticsRecord).total_tokens == 5


def test_invalid_utf8_from_an_openai_vendor_is_a_502(edge):
    reply = _chat(edge, _slug("mock", "oai-invalid-utf8"), MODELS["mock"])
    assert reply.status_code == 502, reply.text[:300]
    assert reply.json()["error"]["code"] == "upstream_bad_response"
    _recorded_502(edge, reply)


@pytest.mark.parametrize("name", list(STREAMS))
def test_a_misshapen_stream_is_a_502_in_either_dialect(edge, name):
    vendor = name.split("-", 1)[0]
    reply = _chat(edge, name, MODELS[vendor], stream=True)
    assert reply.status_code == 502, reply.text[:300]
    assert reply.json()["error"]["code"] == "upstream_bad_response"
    _recorded_502(edge, reply)
    if vendor != "anthropic":  # an Anthropic stream to an Anthropic client is relayed event by event
        reply = _messages(edge, name, MODELS[vendor], stream=True)
        assert reply.status_code == 502, reply.text[:300]
        assert reply.json()["error"]["type"] == "api_error"
        _recorded_502(edge, reply)


def test_an_openai_stream_with_a_misshapen_event_ends_with_an_error_event(edge):
    """Before: the relayed stream's end raised, the edge then tried to start a 500 on a response already under
    way, and the client saw its connection cut mid-body (httpx: "incomplete chunked read")."""
    reply = _chat(edge, "mock-stream-list", MODELS["mock"], stream=True)
    assert reply.status_code == 200
    last = reply.text.strip().split("\n\n")[-1]
    assert last.startswith("data: ") and '"upstream_bad_response"' in last, reply.text[-300:]


@pytest.mark.parametrize(("vendor", "body"), EMBED_CASES)
def test_gemini_embeddings_missing_or_misshapen_are_a_502(edge, vendor, body):
    """Before: a `batchEmbedContents` answer without (enough) `embeddings` was a 200 with `data: []`, and a string
    `values` became one "dimension" per character."""
    reply = httpx.post(
        f"{edge.url}/v1/embeddings",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": f"{_slug(vendor, body)}/{MODELS[vendor]}", "input": "hello"},
        timeout=30,
    )
    assert reply.status_code == 502, reply.text[:300]
    assert reply.json()["error"]["code"] == "upstream_bad_response"
    _recorded_502(edge, reply)
