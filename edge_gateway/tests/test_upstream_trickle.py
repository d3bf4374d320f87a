"""A real edge in front of a vendor that trickles one huge stream event in 1 KiB writes (`hostile_vendor.trickle`):
the stock SDK client gets the whole event, or, past the LLM's `max_response_bytes`, the bound's clean 502.

Why: the edge cut such a stream by joining what waited to each read and searching all of it again, CPU quadratic in
the event's size on the loop that serves every tenant. The splitters' own tests (`test_stream_splitting.py`) check
the work per read; these check that the event still arrives whole through the real pipeline, on each stream
format the edge cuts: SSE (CRLF here), Bedrock's binary event stream, and a Gemini-format client's tool call
collected from many small argument fragments.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from google import genai

from fjordgate.mock_llm.bedrock_format import event_frame

from .hostile_vendor import Script, trickle, vendor_thread
from .support import CLIENT_KEY, encrypt, llm, make_snapshot, run_edge

SSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
EVENT_STREAM = b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\nconnection: close\r\n\r\n"
HUGE_TEXT = "fjord " * ((2 << 20) // 6)
"""One event's text: 2 MiB, under the default `max_response_bytes` (32 MiB)."""
BEDROCK_MODEL = "anthropic.claude-trickle-v1:0"


def chat_event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]}
    return b"data: " + orjson.dumps(chunk) + b"\r\n\r\n"


def tool_fragment(arguments: str, **first: Any) -> bytes:
    call = {"index": 0, "function": {"arguments": arguments, **({"name": first["name"]} if first else {})}}
    return chat_event({"tool_calls": [{**call, **({"id": "call-1", "type": "function"} if first else {})}]})


HUGE_SSE = (
    chat_event({"role": "assistant", "content": ""})
    + chat_event({"content": HUGE_TEXT})
    + chat_event({}, "stop")
    + b"data: [DONE]\r\n\r\n"
)
CITY = "x" * (1 << 20)
FRAGMENTS = [CITY[i : i + 200] for i in range(0, len(CITY), 200)]
TOOL_SSE = (
    tool_fragment('{"city": "', name="get_weather")
    + b"".join(tool_fragment(fragment) for fragment in FRAGMENTS)
    + tool_fragment('"}')
    + chat_event({}, "tool_calls")
    + b"data: [DONE]\r\n\r\n"
)
HUGE_FRAMES = (
    event_frame("messageStart", {"role": "assistant"})
    + event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": HUGE_TEXT}})
    + event_frame("messageStop", {"stopReason": "end_turn"})
    + event_frame("metadata", {"usage": {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8}})
)
SCRIPTS: dict[str, Script] = {
    "huge": trickle(SSE, HUGE_SSE),
    "bounded": trickle(SSE, HUGE_SSE),
    "tools": trickle(SSE, TOOL_SSE),
    "bedrock": trickle(EVENT_STREAM, HUGE_FRAMES),
}


class _ByFirstSegment(dict[str, Script]):
    """The vendor's scripts by the first path segment (each LLM's base URL is `/{its slug}`)."""

    def __getitem__(self, path: str) -> Script:
        return super().__getitem__(path.split("/")[1])


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with vendor_thread({}) as vendor:
        vendor.scripts = _ByFirstSegment(SCRIPTS)
        base = f"http://127.0.0.1:{vendor.port}"
        llms = [
            llm(1, "huge", f"{base}/huge", default_model="huge-gpt", max_retries=0),
            llm(
                2, "bounded", f"{base}/bounded", default_model="bounded-gpt", max_retries=0, max_response_bytes=1 << 20
            ),
            llm(3, "tools", f"{base}/tools", default_model="tools-gpt", max_retries=0),
            llm(
                4,
                "bedrock",
                f"{base}/bedrock",
                vendor="bedrock",
                default_model=BEDROCK_MODEL,
                metadata={"region": "eu-central-1"},
                api_key_encrypted=encrypt("AKIDTEST:secret"),
                max_retries=0,
            ),
        ]
        with run_edge(make_snapshot(base, llms=llms), tmp_path_factory.mktemp("trickle")) as running:
            yield running


def openai_client(edge: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=120)


def streamed_text(edge: Any, model: str) -> str:
    stream = openai_client(edge).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "say a lot"}], stream=True
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


@pytest.mark.parametrize("model", ["huge-gpt", BEDROCK_MODEL])
def test_an_event_trickled_in_small_pieces_reaches_the_openai_client_whole(edge, model):
    assert streamed_text(edge, model) == HUGE_TEXT


def test_a_trickled_event_over_the_response_bound_ends_the_stream_with_the_bounds_error(edge):
    """The stream is under way (its first event went out): the bound's error is its last event, as the SDK reads it."""
    with pytest.raises(openai.APIError) as caught:
        streamed_text(edge, "bounded-gpt")
    assert caught.value.body == {
        "message": "upstream response exceeds the limit of 1048576 bytes",
        "type": "upstream_error",
        "code": "upstream_response_too_large",
    }
    assert streamed_text(edge, "huge-gpt") == HUGE_TEXT  # and the edge goes on serving


def test_a_tool_call_in_many_small_fragments_reaches_a_gemini_client_whole(edge):
    client = genai.Client(api_key=CLIENT_KEY, http_options={"base_url": edge.url})
    chunks = list(client.models.generate_content_stream(model="tools-gpt", contents="call the tool"))
    calls = [call for chunk in chunks for call in chunk.function_calls or ()]
    assert [(call.name, call.args) for call in calls] == [("get_weather", {"city": CITY})]
