"""Fields api.openai.com refuses with a 400 are refused by the mock too, in OpenAI's words, `param` and `code`.

The `openai` SDK sends whatever it is given (its types are not checked at run time), so each bad value goes
through the SDK, as a client would send it, and the test reads the `BadRequestError` the SDK raises.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from .conftest import MockServer

USER = [{"role": "user", "content": "Hello"}]


def _refusal(client: openai.OpenAI, call: str, **fields: Any) -> openai.BadRequestError:
    create = {
        "chat": lambda: client.chat.completions.create(model="gpt-4o", **{"messages": USER, **fields}),
        "completions": lambda: client.completions.create(model="gpt-3.5-turbo-instruct", **{"prompt": "Hi", **fields}),
        "embeddings": lambda: client.embeddings.create(model="text-embedding-3-small", **{"input": "Hi", **fields}),
        "responses": lambda: client.responses.create(model="gpt-4o", **{"input": "Hi", **fields}),
    }[call]
    with pytest.raises(openai.BadRequestError) as refused:
        create()
    return refused.value


@pytest.mark.parametrize(
    ("call", "fields", "param", "code", "message"),
    [
        (
            "chat",
            {"temperature": "hot"},
            "temperature",
            "invalid_type",
            "Invalid type for 'temperature': expected a decimal, but got a string instead.",
        ),
        (
            "chat",
            {"temperature": 2.5},
            "temperature",
            "decimal_above_max_value",
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 instead.",
        ),
        ("chat", {"top_p": 1.5}, "top_p", "decimal_above_max_value", None),
        ("chat", {"presence_penalty": -3}, "presence_penalty", "decimal_below_min_value", None),
        ("chat", {"frequency_penalty": "x"}, "frequency_penalty", "invalid_type", None),
        ("chat", {"seed": 1.5}, "seed", "invalid_type", None),
        ("chat", {"logprobs": "yes"}, "logprobs", "invalid_type", None),
        ("chat", {"top_logprobs": 21}, "top_logprobs", "integer_above_max_value", None),
        ("chat", {"logit_bias": {"50256": 101}}, "logit_bias.50256", "decimal_above_max_value", None),
        ("chat", {"logit_bias": {"word": 1}}, "logit_bias", "invalid_value", None),
        ("chat", {"user": 5}, "user", "invalid_type", None),
        ("chat", {"parallel_tool_calls": "no"}, "parallel_tool_calls", "invalid_type", None),
        ("chat", {"max_completion_tokens": "many"}, "max_completion_tokens", "invalid_type", None),
        (
            "chat",
            {"service_tier": "gold"},
            "service_tier",
            "invalid_value",
            "Invalid value: 'gold'. Supported values are: 'auto', 'default', 'flex', 'scale', and 'priority'.",
        ),
        ("chat", {"metadata": {"k": 5}}, "metadata.k", "invalid_type", None),
        (
            "chat",
            {"metadata": {f"k{i}": "v" for i in range(17)}},
            "metadata",
            "object_above_max_properties",
            None,
        ),
        ("chat", {"store": "yes"}, "store", "invalid_type", None),
        ("chat", {"response_format": {"type": "xml"}}, "response_format.type", "invalid_value", None),
        (
            "chat",
            {"response_format": {"type": "json_schema"}},
            "response_format.json_schema",
            "missing_required_parameter",
            "Missing required parameter: 'response_format.json_schema'.",
        ),
        (
            "chat",
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
            "response_format.json_schema.name",
            "missing_required_parameter",
            None,
        ),
        (
            "chat",
            {"messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
            "invalid_type",
            "Invalid type for 'messages[0].content': expected one of a string or array of objects, but got an "
            "integer instead.",
        ),
        (
            "chat",
            {"messages": [{"role": "user", "content": [{"type": "video", "video": "x"}]}]},
            "messages[0].content[0].type",
            "invalid_value",
            "Invalid value: 'video'. Supported values are: 'text', 'image_url', 'input_audio', and 'file'.",
        ),
        (
            "chat",
            {"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0].content[0].type",
            "invalid_value",
            None,
        ),
        (
            "chat",
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
            "missing_required_parameter",
            None,
        ),
        (
            "chat",
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0].image_url.url",
            "missing_required_parameter",
            None,
        ),
        (
            "chat",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "input_audio", "input_audio": {"data": "AA==", "format": "ogg"}}],
                    }
                ]
            },
            "messages[0].content[0].input_audio.format",
            "invalid_value",
            None,
        ),
        (
            "chat",
            {"messages": [*USER, {"role": "tool", "content": "sunny"}]},
            "messages[1].tool_call_id",
            "missing_required_parameter",
            "Missing required parameter: 'messages[1].tool_call_id'.",
        ),
        (
            "chat",
            {
                "messages": [
                    *USER,
                    {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f"}}]},
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
            "missing_required_parameter",
            None,
        ),
        (
            "chat",
            {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
            "tools[0].function.name",
            "invalid_value",
            "Invalid 'tools[0].function.name': string does not match pattern. Expected a string that matches the "
            "pattern '^[a-zA-Z0-9_-]+$'.",
        ),
        (
            "chat",
            {"tools": [{"type": "function", "function": {"name": "x" * 65}}]},
            "tools[0].function.name",
            "string_above_max_length",
            None,
        ),
        (
            "chat",
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": "none"}}]},
            "tools[0].function.parameters",
            "invalid_type",
            "Invalid type for 'tools[0].function.parameters': expected an object, but got a string instead.",
        ),
        ("completions", {"temperature": "hot"}, "temperature", "invalid_type", None),
        ("completions", {"logprobs": 6}, "logprobs", "integer_above_max_value", None),
        ("completions", {"echo": "yes"}, "echo", "invalid_type", None),
        ("embeddings", {"encoding_format": "int8"}, "encoding_format", "invalid_value", None),
        ("embeddings", {"dimensions": "big"}, "dimensions", "invalid_type", None),
        ("embeddings", {"user": 5}, "user", "invalid_type", None),
        ("responses", {"temperature": 3}, "temperature", "decimal_above_max_value", None),
        ("responses", {"store": "x"}, "store", "invalid_type", None),
        ("responses", {"instructions": 5}, "instructions", "invalid_type", None),
        ("responses", {"text": {"format": "x"}}, "text.format", "invalid_type", None),
        (
            "responses",
            {"text": {"format": {"type": "json_schema", "schema": {}}}},
            "text.format.name",
            "missing_required_parameter",
            None,
        ),
        (
            "responses",
            {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
            "missing_required_parameter",
            None,
        ),
        ("responses", {"input": [{"role": "wizard", "content": "Hi"}]}, "input[0].role", "invalid_value", None),
        (
            "responses",
            {"tools": [{"type": "function", "name": "bad name", "parameters": {}}]},
            "tools[0].name",
            "invalid_value",
            None,
        ),
    ],
)
def test_a_field_openai_refuses_is_a_400_naming_it(
    client: openai.OpenAI, call: str, fields: dict[str, Any], param: str, code: str, message: str | None
) -> None:
    refused = _refusal(client, call, **fields)

    body = refused.body
    assert isinstance(body, dict)
    assert refused.status_code == 400
    assert body["type"] == "invalid_request_error"
    assert (body["param"], body["code"]) == (param, code)
    if message is not None:
        assert body["message"] == message


def test_every_field_openai_accepts_still_answers(client: openai.OpenAI, mock: MockServer) -> None:
    """The valid values of the same fields, the way the SDK sends them, at their bounds."""
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA==", "filename": "a.pdf"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "sunny"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            {"role": "user", "content": "Hello"},
        ],
        temperature=0,
        top_p=1,
        presence_penalty=2,
        frequency_penalty=-2,
        seed=-7,
        logprobs=True,
        top_logprobs=20,
        logit_bias={"50256": -100},
        user="u-1",
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}},
        parallel_tool_calls=False,
        max_completion_tokens=50,
        service_tier="flex",
        metadata={f"k{i}": "v" for i in range(16)},
        store=True,
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    )
    embedding = client.embeddings.create(model="text-embedding-3-small", input="Hi", dimensions=8, user="u-1")

    assert completion.choices[0].finish_reason == "stop"
    assert len(embedding.data[0].embedding) == 8
