"""A reply of the wrong shape from an OpenAI-compatible vendor on the paths the edge relays without translating:
a 502 `upstream_bad_response`, accounted as a failed request; a good reply (with or without `usage`) is untouched.

Before: chat, legacy completions, embeddings and pass-through Responses relayed a 200 whose body did not decode
(`[1,2]`, `null`, `5`, `"choices": "x"`, a count of "a lot", not JSON) as it was, with no tokens at all, so the
request cost nothing against budgets and rate limits; a stream's unreadable usage chunk was skipped the same way.
A native pass-through (`/llm/call/...`) may answer anything on paths the edge does not know (speech, files): only
a JSON object whose `usage` cannot be read is refused there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from shared_sdk import AnalyticsRecord

from .hostile_vendor import Script, ok, raw, vendor_thread
from .support import CLIENT_KEY, llm, make_snapshot, run_edge

ANSWER = b'{"id":"c","object":"chat.completion","created":1,"model":"mock-gpt","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}]'
BODIES: dict[str, bytes] = {
    "list": b"[1,2]",
    "null": b"null",
    "int": b"5",
    "choices-string": b'{"choices":"x"}',
    "usage-string": ANSWER + b',"usage":{"prompt_tokens":"a lot","completion_tokens":1}}',
    "usage-not-object": b'{"object":"response","output":[],"choices":[],"usage":"x"}',
    "not-json": b"not json",
    "invalid-utf8": b'{"choices":[{"index":0,"message":{"role":"assistant","content":"\xff\xfe"}}]}',
}
GOOD: dict[str, bytes] = {
    "no-usage": ANSWER + b"}",
    "float-usage": ANSWER + b',"usage":{"prompt_tokens":3.0,"completion_tokens":2.0,"total_tokens":5.0}}',
}
SSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
STREAM_USAGE_STRING = (  # the whole stream at once: the edge reads it before its first chunk went out
    SSE
    + b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    + b'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":"a lot"}}\n\n'
    + b"data: [DONE]\n\n"
)
SPEECH = b"HTTP/1.1 200 OK\r\ncontent-type: audio/mpeg\r\ncontent-length: 6\r\n\r\nID3\x04\xff\xfb"


class _BySlug(dict[str, Script]):
    """The vendor's script by the first path segment (each LLM's base URL is `/{its slug}/v1`)."""

    def __getitem__(self, path: str) -> Script:
        return super().__getitem__(path.split("/")[1])


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    scripts = _BySlug({name: raw(ok(body), keep=True) for name, body in {**BODIES, **GOOD}.items()})
    scripts["stream-usage-string"] = raw(STREAM_USAGE_STRING)
    scripts["speech"] = raw(SPEECH, keep=True)
    with vendor_thread({}) as vendor:
        vendor.scripts = scripts
        base = f"http://127.0.0.1:{vendor.port}"
        llms = [
            llm(i, name, f"{base}/{name}/v1", max_retries=0, metadata={"responses_api": True})
            for i, name in enumerate(scripts, start=1)
        ]
        with run_edge(make_snapshot(base, llms=llms), tmp_path_factory.mktemp("misshapen-openai")) as running:
            yield running


def _client(edge: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def _call(client: openai.OpenAI, kind: str, model: str) -> Any:
    if kind == "chat":
        return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    if kind == "completions":
        return client.completions.create(model=model, prompt="hi")
    if kind == "embeddings":
        return client.embeddings.create(model=model, input="hi")
    return client.responses.create(model=model, input="hi")  # passed through: `responses_api: true`


def _refused(edge: Any, error: openai.APIStatusError) -> None:
    """The SDK's error for the edge's 502, and the request accounted as that 502 with no tokens."""
    assert error.status_code == 502 and error.code == "upstream_bad_response", error.body
    record = edge.sink.record_of(error.response.headers["x-request-id"], AnalyticsRecord)
    assert record.status_code == 502 and record.total_tokens == 0


CASES = [
    (kind, body)
    for kind in ("chat", "completions", "embeddings", "responses")
    for body in BODIES
    if kind != "responses" or body not in ("choices-string", "usage-string")  # objects: what a Responses reply is
]


@pytest.mark.parametrize(("kind", "body"), CASES)
def test_a_misshapen_reply_is_a_502_the_sdk_raises(edge, kind, body):
    with pytest.raises(openai.InternalServerError) as refused:
        _call(_client(edge), kind, f"{body}/mock-gpt")
    _refused(edge, refused.value)


def test_a_good_reply_without_usage_is_relayed_and_estimated(edge):
    reply = _client(edge).chat.completions.with_raw_response.create(
        model="no-usage/mock-gpt", messages=[{"role": "user", "content": "a prompt of some words"}]
    )
    assert reply.parse().choices[0].message.content == "fine"
    assert edge.sink.record_of(reply.headers["x-request-id"], AnalyticsRecord).prompt_tokens > 0


def test_counts_written_as_whole_floats_are_counts(edge):
    """Before: `3.0` failed the decoder, and the reply went out with no tokens accounted."""
    reply = _client(edge).chat.completions.with_raw_response.create(
        model="float-usage/mock-gpt", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.parse().choices[0].message.content == "fine"
    record = edge.sink.record_of(reply.headers["x-request-id"], AnalyticsRecord)
    assert (record.status_code, record.prompt_tokens, record.completion_tokens) == (200, 3, 2)


def test_a_stream_whose_usage_chunk_is_unreadable_is_a_502(edge):
    with pytest.raises(openai.InternalServerError) as refused:
        _client(edge).chat.completions.create(
            model="stream-usage-string/mock-gpt", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    _refused(edge, refused.value)


def _native(edge: Any, slug: str, path: str) -> httpx.Response:
    return httpx.post(
        f"{edge.url}/llm/call/{slug}/{path}",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def test_a_native_reply_with_an_unreadable_usage_is_a_502(edge):
    reply = _native(edge, "usage-string", "v1/chat/completions")
    assert reply.status_code == 502, reply.text[:300]
    assert reply.json()["error"]["code"] == "upstream_bad_response"
    record = edge.sink.record_of(reply.headers["x-request-id"], AnalyticsRecord)
    assert record.status_code == 502 and record.total_tokens == 0


@pytest.mark.parametrize(("slug", "path"), [("speech", "v1/audio/speech"), ("list", "v1/models")])
def test_a_native_reply_that_is_no_json_object_is_relayed_as_it_is(edge, slug, path):
    """A pass-through path the edge does not know may answer audio, or a list (some vendors' model lists)."""
    reply = _native(edge, slug, path)
    assert reply.status_code == 200, reply.text[:300]
    assert reply.content == (b"ID3\x04\xff\xfb" if slug == "speech" else BODIES["list"])
