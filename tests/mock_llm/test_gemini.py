"""The Gemini API surface over real HTTP: read by the stock `google-genai` SDK and byte by byte, errors and
faults included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from .conftest import KEY

MODEL = "gemini-2.5-flash"
HEADERS = {"x-goog-api-key": KEY}
WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER"}}},
}


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "contents": [{"role": "user", "parts": [{"text": "Hello, Gemini!"}]}],
    }
    return {**body, **overrides}


def _url(method: str, model: str = MODEL) -> str:
    return f"/v1beta/models/{model}:{method}"


@pytest.fixture
def sdk(mock):
    client = genai.Client(api_key=KEY, http_options={"base_url": mock.url})
    yield client
    client.close()


def test_sdk_generate_stream_count_and_models(sdk):
    reply = sdk.models.generate_content(model=MODEL, contents="Hello, Gemini!")
    assert reply.text == "Echo: Hello, Gemini!"
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.usage_metadata.prompt_token_count == 4 and reply.usage_metadata.candidates_token_count == 6
    chunks = list(sdk.models.generate_content_stream(model=MODEL, contents="stream me"))
    assert "".join(c.text or "" for c in chunks) == "Echo: stream me" and len(chunks) == 4
    assert chunks[-1].usage_metadata.total_token_count == 2 + 4
    assert sdk.models.count_tokens(model=MODEL, contents="count these four words").total_tokens == 4
    assert f"models/{MODEL}" in [m.name for m in sdk.models.list()]
    assert sdk.models.get(model="text-embedding-004").name == "models/text-embedding-004"


def test_sdk_tools_thinking_and_embeddings(sdk):
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(**WEATHER)])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        thinking_config=types.ThinkingConfig(include_thoughts=True),
    )
    reply = sdk.models.generate_content(model=MODEL, contents="call tool get_weather", config=config)
    assert reply.function_calls[0].name == "get_weather"
    assert reply.function_calls[0].args == {"city": "mock", "days": 1}
    thought = reply.candidates[0].content.parts[0]
    assert thought.thought is True and thought.text.startswith("Thinking about:")
    assert reply.usage_metadata.thoughts_token_count > 0
    vectors = sdk.models.embed_content(
        model="text-embedding-004", contents=["a", "b"], config=types.EmbedContentConfig(output_dimensionality=8)
    )
    assert [len(e.values) for e in vectors.embeddings] == [8, 8]


def test_sse_and_json_array_streams(http):
    sse = http.post(_url("streamGenerateContent"), params={"alt": "sse"}, json=_body(), headers=HEADERS)
    assert sse.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(block[len("data: ") :]) for block in sse.text.split("\r\n\r\n") if block]
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == "Echo: Hello, Gemini!"
    assert events[-1]["candidates"][0]["finishReason"] == "STOP" and "usageMetadata" in events[-1]
    array = http.post(_url("streamGenerateContent"), json=_body(), headers=HEADERS)
    assert array.headers["content-type"].startswith("application/json")
    assert [e["candidates"][0]["content"] for e in array.json()] == [e["candidates"][0]["content"] for e in events]


def test_max_output_tokens_and_stop_sequences(http):
    config = {"maxOutputTokens": 2}
    cut = http.post(_url("generateContent"), json=_body(generationConfig=config), headers=HEADERS).json()
    assert cut["candidates"][0]["finishReason"] == "MAX_TOKENS" and cut["usageMetadata"]["candidatesTokenCount"] == 2
    stopped = http.post(
        _url("generateContent"), json=_body(generationConfig={"stopSequences": ["Gemini"]}), headers=HEADERS
    ).json()
    assert stopped["candidates"][0]["content"]["parts"][0]["text"] == "Echo: Hello, "
    assert stopped["candidates"][0]["finishReason"] == "STOP"


def test_function_response_ends_the_loop(http):
    contents = [
        {"role": "user", "parts": [{"text": "call tool"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}]},
    ]
    reply = http.post(
        _url("generateContent"),
        json=_body(contents=contents, tools=[{"functionDeclarations": [WEATHER]}]),
        headers=HEADERS,
    ).json()
    assert reply["candidates"][0]["content"]["parts"] == [{"text": "Echo: sunny"}]


def test_gemini_3_signs_its_calls_and_refuses_a_replay_without_the_signature(http):
    tools = [{"functionDeclarations": [WEATHER]}]
    question = {"role": "user", "parts": [{"text": "call tool"}]}
    asked = http.post(
        _url("generateContent", "gemini-3-pro-preview"), json=_body(contents=[question], tools=tools), headers=HEADERS
    )
    call = asked.json()["candidates"][0]["content"]["parts"][0]
    result = {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}]}

    def replay(part: dict[str, Any], model: str = "gemini-3-pro-preview") -> Any:
        contents = [question, {"role": "model", "parts": [part]}, result]
        return http.post(_url("generateContent", model), json=_body(contents=contents, tools=tools), headers=HEADERS)

    unsigned = {"functionCall": call["functionCall"]}
    assert call["thoughtSignature"]
    assert replay(call).json()["candidates"][0]["content"]["parts"] == [{"text": "Echo: sunny"}]
    refused = replay(unsigned)
    assert refused.status_code == 400 and "missing a thought_signature" in refused.json()["error"]["message"]
    assert replay(unsigned, MODEL).status_code == 200  # Gemini 2.5 does not check


@pytest.mark.parametrize(
    ("headers", "params", "status", "name"),
    [
        ({}, {}, 403, "PERMISSION_DENIED"),
        ({"x-goog-api-key": "wrong"}, {}, 400, "INVALID_ARGUMENT"),
        ({}, {"key": "wrong"}, 400, "INVALID_ARGUMENT"),
    ],
)
def test_key_errors(http, headers, params, status, name):
    response = http.post(_url("generateContent"), json=_body(), headers=headers, params=params)
    assert response.status_code == status
    assert response.json()["error"]["status"] == name and response.json()["error"]["code"] == status


def test_key_in_query_is_accepted(http):
    assert http.post(_url("generateContent"), json=_body(), params={"key": KEY}).status_code == 200


@pytest.mark.parametrize(("status", "name"), [(429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE")])
def test_injected_statuses_in_googles_shape(sdk, status, name):
    with pytest.raises(errors.APIError) as failed:
        sdk.models.generate_content(
            model=MODEL,
            contents="x",
            config=types.GenerateContentConfig(
                http_options=types.HttpOptions(headers={"x-mock-fault": f"status={status}"})
            ),
        )
    assert failed.value.code == status and failed.value.status == name


def test_bad_requests(http):
    empty = http.post(_url("generateContent"), json={"contents": []}, headers=HEADERS)
    assert empty.status_code == 400 and "contents is not specified" in empty.json()["error"]["message"]
    not_json = http.post(_url("generateContent"), content=b"{", headers=HEADERS)
    assert not_json.status_code == 400 and not_json.json()["error"]["status"] == "INVALID_ARGUMENT"
    unknown = http.post(_url("fly"), json=_body(), headers=HEADERS)
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
    missing = http.get("/v1beta/models/gemini-0", headers=HEADERS)
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_error_after_chunks_sends_googles_error_chunk(http):
    response = http.post(
        _url("streamGenerateContent"),
        params={"alt": "sse"},
        json=_body(),
        headers={**HEADERS, "x-mock-fault": "error_after_chunks=2"},
    )
    blocks = [json.loads(b[len("data: ") :]) for b in response.text.split("\r\n\r\n") if b]
    assert len(blocks) == 3 and blocks[-1]["error"]["status"] == "UNAVAILABLE"
