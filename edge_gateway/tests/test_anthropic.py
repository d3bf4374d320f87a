"""OpenAI clients talking to an Anthropic LLM through the edge: translation both ways, streams, tool calls,
and the vendor-native pass-through."""

from __future__ import annotations

import json

import httpx
import openai
import pydantic
import pytest

from .support import CLIENT_KEY, VENDOR_KEY, ModelPriceConfig, llm, make_snapshot, run_edge

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    claude = llm(
        1,
        "claude",
        mock_upstream,
        vendor="anthropic",
        default_model="claude-sonnet-4-20250514",
        allowed_models=["claude-.*"],
    )
    prices = [ModelPriceConfig(vendor="anthropic", model="claude-sonnet-4-20250514")]
    with run_edge(make_snapshot(mock_upstream, llms=[claude], prices=prices), tmp_path_factory.mktemp("e")) as e:
        yield e


def client(edge) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def test_chat_is_translated_both_ways(edge, mock_upstream):
    reply = client(edge).chat.completions.create(
        model="claude-sonnet-4-20250514",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello claude"}],
    )
    assert "hello claude" in reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 0 and reply.choices[0].finish_reason == "stop"
    seen = httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]
    assert seen["path"] == "/v1/messages" and seen["headers"]["x-api-key"] == VENDOR_KEY
    assert seen["body"]["system"] == "be brief" and seen["body"]["max_tokens"] > 0


def test_stream_is_translated(edge):
    chunks = list(
        client(edge).chat.completions.create(
            model="claude-sonnet-4-20250514", stream=True, messages=[{"role": "user", "content": "stream please"}]
        )
    )
    assert "stream please" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tool_calls_round_trip(edge):
    reply = client(edge).chat.completions.create(
        model="claude-sonnet-4-20250514",
        tools=TOOLS,
        tool_choice="required",
        messages=[{"role": "user", "content": "weather in Oslo?"}],
    )
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments), dict)
    assert reply.choices[0].finish_reason == "tool_calls"
    streamed = list(
        client(edge).chat.completions.create(
            model="claude-sonnet-4-20250514",
            tools=TOOLS,
            tool_choice="required",
            stream=True,
            messages=[{"role": "user", "content": "weather in Oslo?"}],
        )
    )
    deltas = [tc for c in streamed if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "get_weather"
    assert isinstance(json.loads("".join(d.function.arguments or "" for d in deltas)), dict)


def test_native_pass_through(edge):
    reply = httpx.post(
        f"{edge.url}/llm/call/claude/v1/messages",
        headers={"x-api-key": CLIENT_KEY},
        json={
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "native"}],
        },
    )
    assert reply.status_code == 200 and reply.json()["type"] == "message"
    assert (
        httpx.post(f"{edge.url}/llm/call/nope/v1/messages", headers={"x-api-key": CLIENT_KEY}, json={}).status_code
        == 404
    )


class Forecast(pydantic.BaseModel):
    city: str
    celsius: float


def test_parse_with_a_pydantic_response_format_gets_the_structured_output(edge, mock_upstream):
    """`client.chat.completions.parse(response_format=Model)` asks for JSON of a schema: Anthropic's structured
    output (`output_config.format`), not prose the SDK's parser then fails on (plain and streamed)."""
    reply = client(edge).chat.completions.parse(
        model="claude-sonnet-4-20250514",
        messages=[{"role": "user", "content": "the forecast for Oslo"}],
        response_format=Forecast,
    )
    assert reply.choices[0].message.parsed == Forecast(city="mock", celsius=1.5)
    sent = httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]["body"]
    assert sent["output_config"]["format"]["schema"]["required"] == ["city", "celsius"]
    with client(edge).chat.completions.stream(
        model="claude-sonnet-4-20250514",
        messages=[{"role": "user", "content": "the forecast for Oslo"}],
        response_format=Forecast,
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Forecast(city="mock", celsius=1.5)


def test_parallel_tool_calls_false_gets_one_call(edge, mock_upstream):
    """`parallel_tool_calls=False` is Anthropic's `disable_parallel_tool_use`: at most one tool call, as asked."""
    tools = [*TOOLS, {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    reply = client(edge).chat.completions.create(
        model="claude-sonnet-4-20250514",
        tools=tools,
        parallel_tool_calls=False,
        messages=[{"role": "user", "content": "call all tools"}],
    )
    assert [c.function.name for c in reply.choices[0].message.tool_calls] == ["get_weather"]
    sent = httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]["body"]
    assert sent["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
