"""An Anthropic client's malformed fields, sent to an LLM of another vendor (the edge translates Messages to Chat
Completions), are the 400 `invalid_request_error` Anthropic itself answers, naming the field's path; before, each
answered 200 with the field dropped or mangled. Valid requests of every block type still go through.

Driven with the stock `anthropic` SDK (it sends its arguments unchecked), against a real edge in front of the mock
vendor, OpenAI-shaped and Gemini-shaped."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import httpx
import pytest

from .support import CLIENT_KEY, llm, make_snapshot, run_edge

GPT = "mock-gpt"
GEMINI = "gemini-2.0-flash"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF").decode()
HELLO = [{"role": "user", "content": "hello"}]
WEATHER = {
    "name": "get_weather",
    "description": "weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    gpt = llm(1, "gpt", f"{mock_upstream}/v1", allowed_models=[GPT])
    gemini = llm(2, "gemini", mock_upstream, vendor="google", default_model=GEMINI, allowed_models=["gemini-.*"])
    with run_edge(make_snapshot(mock_upstream, llms=[gpt, gemini]), tmp_path_factory.mktemp("fields")) as running:
        yield running


def client(edge) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)


def vendor_calls(mock_upstream: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = httpx.get(f"{mock_upstream}/_mock/requests").json()["data"]
    return calls


def user(*blocks: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": list(blocks)}]}


def answered(*blocks: Any) -> dict[str, Any]:
    """A conversation whose assistant turn holds `blocks`, then a user's follow-up."""
    return {"messages": [*HELLO, {"role": "assistant", "content": list(blocks)}, {"role": "user", "content": "and?"}]}


def tool_result(**fields: Any) -> dict[str, Any]:
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
    turns = [*HELLO, {"role": "assistant", "content": [call]}, {"role": "user", "content": [fields]}]
    return {"messages": turns, "tools": [WEATHER]}


def image(**source: Any) -> dict[str, Any]:
    return {"type": "image", "source": source}


MISFITS = [
    ({"system": 5}, "system: Input should be a valid string or a list of text blocks"),
    ({"system": [{"type": "image"}]}, "system.0.type: Input should be 'text'"),
    ({"system": ["a"]}, "system.0: Input should be a valid dictionary"),
    ({"system": [{"type": "text", "text": 5}]}, "system.0.text: Input should be a valid string"),
    ({"stop_sequences": "x"}, "stop_sequences: Input should be a valid list"),
    ({"stop_sequences": ["end", 7]}, "stop_sequences.1: Input should be a valid string"),
    ({"tools": "x"}, "tools: Input should be a valid list"),
    ({"tools": [{"description": "no name", "input_schema": {"type": "object"}}]}, "tools.0.name: Field required"),
    ({"tools": [{"name": "t"}]}, "tools.0.input_schema: Field required"),
    ({"tools": [{"name": "t", "input_schema": {"type": "array"}}]}, "tools.0.input_schema.type: Input should be"),
    ({"tool_choice": "x"}, "tool_choice: Input should be a valid dictionary"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"),
    ({"tool_choice": {"type": "tool"}}, "tool_choice.name: Field required"),
    ({"tool_choice": {"type": "auto", "disable_parallel_tool_use": "yes"}}, "tool_choice.disable_parallel_tool_use:"),
    (user({"type": "text"}), "messages.0.content.0.text: Field required"),
    (user({"type": "text", "text": "a"}, {"type": "text", "text": 5}), "messages.0.content.1.text: Input should be"),
    (user(image(type="base64", media_type="image/png", data="!!!")), "messages.0.content.0.source.data: Input"),
    (user(image(type="base64", media_type="image/png", data="iVBOR")), "messages.0.content.0.source.data: Input"),
    (user(image(type="base64", media_type="image/tiff", data=PNG)), "messages.0.content.0.source.media_type: Input"),
    (user(image(type="base64", data=PNG)), "messages.0.content.0.source.media_type: Field required"),
    (user(image(type="url")), "messages.0.content.0.source.url: Field required"),
    (user({"type": "image"}), "messages.0.content.0.source: Field required"),
    (
        user({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "%PDF"}}),
        "0.source.data:",
    ),
    (user({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": 5}}), "0.source.data:"),
    (
        user({"type": "document", "title": 5, "source": {"type": "text", "media_type": "text/plain", "data": "d"}}),
        ".title:",
    ),
    (user({"type": "text", "text": "a", "cache_control": {"type": "forever"}}), "content.0.cache_control.type:"),
    (user("a"), "messages.0.content.0: Input should be a valid dictionary"),
    (user({"text": "no type"}), "messages.0.content.0.type: Field required"),
    (tool_result(type="tool_result", content="sunny"), "messages.2.content.0.tool_use_id: Field required"),
    (tool_result(type="tool_result", tool_use_id="toolu_1", is_error="no"), "messages.2.content.0.is_error:"),
    (tool_result(type="tool_result", tool_use_id="toolu_1", content=5), "messages.2.content.0.content: Input"),
    (tool_result(type="tool_result", tool_use_id="toolu_1", content=[{"type": "text"}]), "content.0.content.0.text:"),
    (tool_result(type="tool_result", tool_use_id="toolu_1", content=[{"type": "audio"}]), "content.0.content.0.type:"),
    (answered({"type": "tool_use", "id": "t", "name": "f", "input": "{}"}), "messages.1.content.0.input: Input"),
    (answered({"type": "tool_use", "name": "f", "input": {}}), "messages.1.content.0.id: Field required"),
    (answered({"type": "thinking", "thinking": "hm"}), "messages.1.content.0.signature: Field required"),
    (answered({"type": "redacted_thinking"}), "messages.1.content.0.data: Field required"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role: Input should be 'user' or 'assistant'"),
    ({"messages": [{"role": "user"}]}, "messages.0.content: Field required"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content: Input should be a valid string or a list"),
    ({"metadata": "x"}, "metadata: Input should be a valid dictionary"),
    ({"metadata": {"user_id": 5}}, "metadata.user_id: Input should be a valid string"),
    (
        {"thinking": {"type": "enabled", "budget_tokens": "x"}},
        "thinking.budget_tokens: Input should be a valid integer",
    ),
    ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.budget_tokens: Input should be greater than"),
    ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "`max_tokens` must be greater than `thinking.budget"),
    ({"thinking": {"type": "deep"}}, "thinking.type: Input should be 'enabled', 'disabled', 'adaptive' or"),
    ({"top_k": "x"}, "top_k: Input should be a valid integer"),
    ({"top_k": -1}, "top_k: Input should be greater than or equal to 0"),
    ({"temperature": "hot"}, "temperature: Input should be a valid number"),
    ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
    ({"top_p": -0.1}, "top_p: Input should be greater than or equal to 0"),
    ({"service_tier": "fast"}, "service_tier: Input should be 'auto' or 'standard_only'"),
    ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema: Field required"),
    ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
]
UNSIGNED = frozenset({"temperature", "top_p", "top_k"})
"""Fields the SDK's `create` no longer names (older SDKs and the API take them): sent in `extra_body`."""


def create(edge, **fields: Any) -> anthropic.types.Message:
    """`client.messages.create` with `fields` over a small request, those the SDK does not name in `extra_body`."""
    extra = {key: fields.pop(key) for key in UNSIGNED & fields.keys()}
    request = {"model": GPT, "max_tokens": 100, "messages": HELLO, **fields}
    return client(edge).messages.create(**request, extra_body=extra or None)


@pytest.mark.parametrize(("fields", "message"), MISFITS, ids=[m for _, m in MISFITS])
def test_a_malformed_field_is_anthropics_400_naming_its_path(edge, mock_upstream, fields, message):
    before = len(vendor_calls(mock_upstream))
    with pytest.raises(anthropic.BadRequestError) as refused:
        create(edge, **fields)
    error = refused.value.body
    assert refused.value.status_code == 400 and error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert message in error["error"]["message"]
    assert len(vendor_calls(mock_upstream)) == before, "nothing went to the vendor"


def test_a_reply_bound_no_int32_holds_is_refused(edge):
    """Raw httpx: the SDK refuses to send such a `max_tokens` without streaming (it would time out first)."""
    body = {"model": GPT, "max_tokens": 10**12, "messages": HELLO}
    reply = httpx.post(f"{edge.url}/v1/messages", json=body, headers={"x-api-key": CLIENT_KEY})
    assert reply.status_code == 400
    message = "max_tokens: Input should be less than or equal to 2147483647"
    assert reply.json() == {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


@pytest.mark.parametrize("stream", [False, True])
def test_the_same_refusal_whatever_vendor_and_streamed_or_not(edge, stream):
    """A Gemini LLM (Messages -> chat -> Gemini) refuses as the OpenAI-shaped one does; a stream before its start
    too (raw httpx: the answer is a plain 400, not an event stream)."""
    body = {"model": GEMINI, "max_tokens": 100, "stream": stream, **user({"type": "text", "text": 5})}
    reply = httpx.post(f"{edge.url}/v1/messages", json=body, headers={"x-api-key": CLIENT_KEY})
    assert reply.status_code == 400
    assert reply.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "messages.0.content.0.text: Input should be a valid string",
        },
    }


def test_count_tokens_checks_the_body_it_estimates(edge):
    with pytest.raises(anthropic.BadRequestError) as refused:
        client(edge).messages.count_tokens(model=GPT, system=5, messages=HELLO)
    assert refused.value.body["error"]["message"] == "system: Input should be a valid string or a list of text blocks"
    with pytest.raises(anthropic.BadRequestError) as block:
        client(edge).messages.count_tokens(model=GEMINI, **user({"type": "tool_result", "content": "x"}))
    assert block.value.body["error"]["message"] == "messages.0.content.0.tool_use_id: Field required"
    assert client(edge).messages.count_tokens(model=GPT, system="be brief", messages=HELLO).input_tokens > 0


def test_valid_requests_of_every_block_type_still_go_through(edge, mock_upstream):
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "is_error": False,
        "content": [
            {"type": "text", "text": "sunny"},
            image(type="base64", media_type="image/png", data=PNG),
            {"type": "search_result", "source": "https://met.no", "title": "met", "content": []},
        ],
    }
    thinking = [
        {"type": "thinking", "thinking": "look it up", "signature": "sig"},
        {"type": "redacted_thinking", "data": "x"},
    ]
    reply = create(
        edge,
        max_tokens=4000,
        system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "weather in Oslo?"},
            {"role": "assistant", "content": [*thinking, {"type": "text", "text": "let me see"}, call]},
            {
                "role": "user",
                "content": [
                    result,
                    {"type": "text", "text": "and this?", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                    image(type="url", url="https://example.com/a.png"),
                    {
                        "type": "document",
                        "title": "r",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                    },
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
                ],
            },
        ],
        tools=[WEATHER, {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
        temperature=0.5,
        top_p=1,
        top_k=5,
        metadata={"user_id": "u-1"},
        thinking={"type": "enabled", "budget_tokens": 1024},
        service_tier="auto",
    )
    assert reply.content
    sent = vendor_calls(mock_upstream)[-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["messages"][2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
    kinds = [part["type"] for part in sent["messages"][4]["content"]]
    assert kinds == ["text", "image_url", "text", "image_url", "file", "text"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "web_search"]
    assert sent["stop"] == ["END"] and sent["user"] == "u-1" and sent["parallel_tool_calls"] is False
    for kind in ("auto", "any", "none"):
        assert (
            client(edge)
            .messages.create(model=GEMINI, max_tokens=50, messages=HELLO, tools=[WEATHER], tool_choice={"type": kind})
            .content
            is not None
        )
    parsed = client(edge).messages.create(
        model=GPT,
        max_tokens=50,
        messages=HELLO,
        thinking={"type": "disabled"},
        output_config={"format": {"type": "json_schema", "schema": {"type": "object", "properties": {}}}},
    )
    assert parsed.content and vendor_calls(mock_upstream)[-1]["body"]["response_format"]["type"] == "json_schema"
