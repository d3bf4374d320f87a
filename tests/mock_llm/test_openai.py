"""The OpenAI surface, driven by the stock `openai` SDK over real HTTP."""

from __future__ import annotations

import json
import math

import httpx
import openai
import pytest

from .conftest import KEY, MockServer

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"utc_offset": {"type": "integer"}}},
    },
}
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, world!"}]


def test_chat_reply_echoes_the_last_message_with_predictable_usage(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: Hello, world!"
    assert choice.finish_reason == "stop"
    # "Be brief." = 3 tokens, "Hello, world!" = 4; the reply "Echo: Hello, world!" = 6.
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        7,
        6,
        13,
    )
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0


def test_chat_reply_is_cut_to_max_completion_tokens(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "one two three four five"}], max_completion_tokens=3
    )

    assert completion.choices[0].message.content == "Echo: one"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 3


def test_chat_honours_stop_sequences_and_n(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "alpha beta gamma"}], stop=[" gamma"], n=2
    )

    assert [choice.message.content for choice in completion.choices] == ["Echo: alpha beta", "Echo: alpha beta"]
    assert [choice.index for choice in completion.choices] == [0, 1]
    assert completion.usage is not None and completion.usage.completion_tokens == 2 * 4


def test_chat_stream_matches_the_plain_reply_and_ends_with_usage(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )

    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == plain.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 6  # one delta per token
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and plain.usage is not None
    assert chunks[-1].usage.model_dump() == plain.usage.model_dump()
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_chat_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))

    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks)


def test_tool_call_trigger_returns_openai_tool_calls(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Please call tool get_time now"}],
        tools=[WEATHER, CLOCK],
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_time"
    assert json.loads(call.function.arguments) == {"utc_offset": 1}
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 8  # get_time + { " utc_offset " : 1 }


def test_no_trigger_or_tool_choice_none_means_plain_text(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="gpt-4o", messages=HELLO, tools=[WEATHER])
    refused = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "call tool"}], tools=[WEATHER], tool_choice="none"
    )

    assert plain.choices[0].message.tool_calls is None
    assert refused.choices[0].message.content == "Echo: call tool"


def test_required_tool_choice_calls_without_trigger(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o", messages=HELLO, tools=[WEATHER], tool_choice="required")

    calls = completion.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "mock", "unit": "celsius"}


def test_tool_result_turn_is_answered_with_text(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o",
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "call tool"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
    )

    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content == "Echo: sunny"


def test_streamed_tool_calls_accumulate_to_the_plain_ones(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "call all tools"}]
    plain = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER, CLOCK])
    chunks = list(
        client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER, CLOCK], stream=True)
    )

    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            slot = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                slot["id"] = delta.id
            if delta.function and delta.function.name:
                slot["name"] = delta.function.name
            if delta.function and delta.function.arguments:
                slot["arguments"] += delta.function.arguments
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    expected = plain.choices[0].message.tool_calls
    assert expected is not None
    assert (
        [calls[i]["name"] for i in sorted(calls)]
        == [call.function.name for call in expected]
        == ["get_weather", "get_time"]
    )
    assert [json.loads(calls[i]["arguments"]) for i in sorted(calls)] == [
        json.loads(c.function.arguments) for c in expected
    ]
    assert all(calls[i]["id"].startswith("call_") for i in calls)


def test_json_schema_response_format_yields_matching_json(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "score": {"type": "number"}}}
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=HELLO,
        response_format={"type": "json_schema", "json_schema": {"name": "result", "schema": schema}},
    )

    assert json.loads(completion.choices[0].message.content or "") == {"answer": "mock", "score": 1.5}


def test_legacy_completions_default_to_sixteen_tokens(client: openai.OpenAI) -> None:
    prompt = " ".join(f"w{i}" for i in range(30))
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=prompt)

    assert completion.object == "text_completion"
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].text == "Echo: " + " ".join(f"w{i}" for i in range(14))
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (30, 16)


def test_legacy_completion_stream_concatenates_to_the_plain_text(client: openai.OpenAI) -> None:
    plain = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi.", max_tokens=50)
    chunks = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Say hi.",
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert (
        "".join(chunk.choices[0].text for chunk in chunks if chunk.choices) == plain.choices[0].text == "Echo: Say hi."
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_embeddings_are_deterministic_unit_vectors_of_the_asked_size(client: openai.OpenAI) -> None:
    first = client.embeddings.create(model="text-embedding-3-small", input=["red apple", "green pear"], dimensions=256)
    again = client.embeddings.create(
        model="text-embedding-3-small", input="red apple", dimensions=256, encoding_format="float"
    )
    full = client.embeddings.create(model="text-embedding-3-large", input="red apple")

    vectors = [item.embedding for item in first.data]
    assert [item.index for item in first.data] == [0, 1]
    assert [len(vector) for vector in vectors] == [256, 256]
    assert math.isclose(math.fsum(v * v for v in vectors[0]), 1.0, rel_tol=1e-5)
    assert vectors[0] != vectors[1]
    assert again.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)  # base64 and float agree
    assert len(full.data[0].embedding) == 3072
    assert first.usage.prompt_tokens == first.usage.total_tokens == 4
    assert first.model == "text-embedding-3-small"


def test_embedding_dimensions_beyond_the_model_are_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=4096)

    assert raised.value.status_code == 400
    assert "at most 1536" in raised.value.message


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    listed = [model.id for model in client.models.list()]
    model = client.models.retrieve("gpt-4o")

    assert "gpt-4o" in listed and "text-embedding-3-small" in listed
    assert (model.id, model.object, model.owned_by) == ("gpt-4o", "model", "system")
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("gpt-nonexistent")
    assert raised.value.code == "model_not_found"


def test_wrong_or_missing_key_is_a_401_in_openai_shape(mock: MockServer, http: httpx.Client) -> None:
    with mock.openai(api_key="sk-client-key") as wrong, pytest.raises(openai.AuthenticationError) as raised:
        wrong.chat.completions.create(model="gpt-4o", messages=HELLO)
    missing = http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": HELLO})

    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"
    assert "Incorrect API key provided" in raised.value.message
    assert "sk-client-key" not in raised.value.message  # masked, like the vendor
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "You didn't provide an API key" in missing.json()["error"]["message"]


def test_invalid_requests_get_openai_400s(client: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=[])
    not_json = http.post(
        "/v1/chat/completions",
        content=b"{not json",
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    orphan_options = http.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": HELLO, "stream_options": {"include_usage": True}},
        headers={"authorization": f"Bearer {KEY}"},
    )

    assert missing.value.status_code == 400 and missing.value.param == "messages"
    assert not_json.status_code == 400
    assert "could not parse the JSON body" in not_json.json()["error"]["message"]
    assert orphan_options.status_code == 400
    assert orphan_options.json()["error"]["param"] == "stream_options"


def test_unknown_path_is_a_vendor_style_404(http: httpx.Client) -> None:
    response = http.post("/v1/nothing-here", json={})

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (POST /v1/nothing-here)"
