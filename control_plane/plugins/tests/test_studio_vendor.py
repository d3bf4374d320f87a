"""The studio's LLM wire against the real mock LLM, both vendors: tool definitions out, tool calls back in one
(OpenAI) shape, a tool round trip accepted, and streams read as the vendor sends them with their usage."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import pytest

from control_plane.plugins.studio_vendor import StreamEnd, Upstream, VendorStreamError, vendor_call, vendor_stream
from fjordgate.embedded import free_port
from shared_sdk.messages import LLMMessage

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "current_time",
            "description": "the time",
            "parameters": {"type": "object", "properties": {"timezone": {"type": "string", "enum": ["UTC"]}}},
        },
    }
]


@pytest.fixture(scope="module")
def mock_url():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fjordgate.mock_llm", "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _upstream(url: str, vendor: str) -> Upstream:
    base = f"{url}/v1" if vendor == "openai" else url
    return Upstream(id=1, slug="m", vendor=vendor, namespace="", base=base, key="k", default_model="mock")


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_tool_calls_come_back_in_one_shape_and_a_tool_round_trip_is_accepted(mock_url, vendor):
    upstream = _upstream(mock_url, vendor)
    messages = [LLMMessage(role="system", content="be brief"), LLMMessage(content="call tool current_time")]
    status, answer, _ = asyncio.run(vendor_call(upstream, "mock", messages, tools=TOOLS))
    assert status == 200 and answer is not None
    assert answer.finish_reason == "tool_calls"
    [call] = answer.tool_calls
    assert call["function"]["name"] == "current_time" and json.loads(call["function"]["arguments"]) == {
        "timezone": "UTC"
    }
    follow_up = [
        *messages,
        LLMMessage(role="assistant", tool_calls=answer.tool_calls),
        LLMMessage(role="tool", tool_call_id=call["id"], content="12:00 UTC"),
    ]
    status, answer, _ = asyncio.run(vendor_call(upstream, "mock", follow_up, tools=TOOLS))
    assert status == 200 and answer is not None and answer.content == "Echo: 12:00 UTC" and not answer.tool_calls
    sent = httpx.get(f"{mock_url}/_mock/requests?limit=1", timeout=5).json()["data"][-1]["body"]
    if vendor == "anthropic":
        assert sent["system"] == "be brief" and sent["tools"][0]["input_schema"]["properties"]["timezone"]
        assert [b["type"] for b in sent["messages"][1]["content"]] == ["tool_use"]
        assert sent["messages"][2]["content"][0] == {
            "type": "tool_result",
            "tool_use_id": call["id"],
            "content": "12:00 UTC",
        }
    else:
        assert sent["messages"][2]["tool_calls"][0]["id"] == call["id"]
        assert sent["messages"][3] == {"role": "tool", "content": "12:00 UTC", "tool_call_id": call["id"]}


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_stream_yields_deltas_and_reports_usage(mock_url, vendor):
    async def read() -> tuple[list[str], StreamEnd]:
        end = StreamEnd()
        pieces = [
            p async for p in vendor_stream(_upstream(mock_url, vendor), "mock", [LLMMessage(content="a b c")], end)
        ]
        return pieces, end

    pieces, end = asyncio.run(read())
    assert len(pieces) > 1 and "".join(pieces) == "Echo: a b c"
    assert end.prompt_tokens == 3 and end.completion_tokens == 5 and end.finish_reason in ("stop", "end_turn")


def test_a_refused_stream_raises_with_the_status(mock_url):
    async def read() -> None:
        upstream = Upstream(
            id=1, slug="m", vendor="openai", namespace="", base=f"{mock_url}/nope", key="", default_model="m"
        )
        async for _ in vendor_stream(upstream, "mock", [LLMMessage(content="x")], StreamEnd()):
            pass

    with pytest.raises(VendorStreamError) as refused:
        asyncio.run(read())
    assert refused.value.status == 404


@pytest.mark.parametrize("vendor", ["openai", "anthropic", "google"])
def test_a_stream_assembles_the_tool_calls_each_vendor_sends_in_fragments(mock_url, vendor):
    """Tool calls offered to a stream come back whole, in OpenAI's shape, whatever the vendor's stream format."""

    async def read(messages: list[LLMMessage]) -> tuple[list[str], StreamEnd]:
        end = StreamEnd()
        upstream = _upstream(mock_url, vendor)
        pieces = [p async for p in vendor_stream(upstream, "gemini-2.5-flash", messages, end, tools=TOOLS)]
        return pieces, end

    ask = [LLMMessage(content="call tool current_time")]
    pieces, end = asyncio.run(read(ask))
    assert pieces == [] and end.finish_reason == "tool_calls"
    [call] = end.whole_tool_calls()
    assert call["id"] and call["function"]["name"] == "current_time"
    assert json.loads(call["function"]["arguments"]) == {"timezone": "UTC"}
    answered = [
        *ask,
        LLMMessage(role="assistant", tool_calls=[call]),
        LLMMessage(role="tool", tool_call_id=call["id"], content="12:00 UTC"),
    ]
    pieces, end = asyncio.run(read(answered))
    assert "".join(pieces) == "Echo: 12:00 UTC" and end.tool_calls == []
