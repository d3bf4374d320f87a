"""A Gemini or Responses client's field of the wrong type, on a request the edge translates to Chat Completions,
is the 400 its own vendor answers, naming the field: never a 200 that ignored it, nor Python's words.

Found by sending, through `make up`'s demo, values Google and OpenAI refuse to an OpenAI-compatible LLM: the edge
answered 200 for `generationConfig.temperature: "hot"`, a content of role "wizard", base64 "!!!", Responses
`instructions: 5`, `store: "x"` and more (the translation skipped what it could not read), and 400 "(TypeError:
'int' object is not iterable)" for `systemInstruction: {"parts": 5}` (the catch-all in `fallbacks._misshapen`).
"""

from __future__ import annotations

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

from .support import CLIENT_KEY, llm, make_snapshot, run_edge

GPT = "mock-gpt"
USER = {"role": "user", "parts": [{"text": "hi"}]}


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    snapshot = make_snapshot(mock_upstream, llms=[llm(1, "gpt", f"{mock_upstream}/v1", allowed_models=[GPT])])
    with run_edge(snapshot, tmp_path_factory.mktemp("fields")) as running:
        yield running


def upstream_calls(mock_upstream: str) -> int:
    return len(httpx.get(f"{mock_upstream}/_mock/requests").json()["data"])


def generate(edge, body: dict) -> httpx.Response:
    return httpx.post(
        f"{edge.url}/v1beta/models/{GPT}:generateContent", json=body, headers={"x-goog-api-key": CLIENT_KEY}
    )


MISSHAPEN_GEMINI = [
    ({"systemInstruction": "x"}, "system_instruction"),
    ({"systemInstruction": {"parts": 5}}, "system_instruction.parts"),
    ({"systemInstruction": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}}, "parts[0]"),
    ({"generationConfig": "x"}, "generation_config"),
    ({"generationConfig": {"temperature": "hot"}}, "generation_config.temperature"),
    ({"generation_config": {"top_p": True}}, "generation_config.top_p"),
    ({"generationConfig": {"seed": 1.5}}, "generation_config.seed"),
    ({"generationConfig": {"topK": "many"}}, "generation_config.top_k"),
    ({"generationConfig": {"stopSequences": "x"}}, "generation_config.stop_sequences"),
    ({"generationConfig": {"stopSequences": [5]}}, "generation_config.stop_sequences"),
    ({"generationConfig": {"responseMimeType": 5}}, "generation_config.response_mime_type"),
    ({"generationConfig": {"responseSchema": "x"}}, "generation_config.response_schema"),
    ({"generationConfig": {"thinkingConfig": "x"}}, "generation_config.thinking_config"),
    ({"tools": "x"}, "tools"),
    ({"tools": [5]}, "tools[0]"),
    ({"tools": [{"functionDeclarations": "x"}]}, "tools[0].function_declarations"),
    ({"tools": [{"functionDeclarations": [{"description": "no name"}]}]}, "function_declarations[0].name"),
    ({"tools": [{"functionDeclarations": [{"name": "f", "parameters": "x"}]}]}, "function_declarations[0].parameters"),
    ({"toolConfig": "x"}, "tool_config"),
    ({"toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}, "tool_config.function_calling_config.mode"),
    ({"toolConfig": {"functionCallingConfig": {"allowedFunctionNames": "f"}}}, "allowed_function_names"),
    ({"safetySettings": "x"}, "safety_settings"),
    ({"safetySettings": [{"category": 5, "threshold": "BLOCK_NONE"}]}, "safety_settings[0].category"),
    ({"cachedContent": 5}, "cached_content"),
    ({"contents": [{"role": "wizard", "parts": [{"text": "hi"}]}]}, "contents[0].role"),
    ({"contents": [{"role": ["user"], "parts": [{"text": "hi"}]}]}, "contents[0].role"),
    ({"contents": [{"parts": [{"text": 5}]}]}, "contents[0].parts[0].text"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "!!!"}}]}]}, "inline_data.data"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": 5}}]}]}, "inline_data.data"),
    ({"contents": [{"parts": [{"inlineData": "x"}]}]}, "contents[0].parts[0].inline_data"),
    ({"contents": [{"parts": [{"fileData": {"mimeType": "image/png"}}]}]}, "file_data.file_uri"),
    ({"contents": [{"parts": [{"functionResponse": "x"}]}]}, "contents[0].parts[0].function_response"),
    ({"contents": [{"parts": [{"functionResponse": {"name": 5}}]}]}, "function_response.name"),
    ({"contents": [{"parts": [{"functionResponse": {"name": "f", "response": "x"}}]}]}, "function_response.response"),
    ({"contents": [USER, {"role": "model", "parts": ["hi"]}]}, "contents[1].parts[0]"),
    ({"contents": [USER, {"role": "model", "parts": [{"text": 5}]}]}, "contents[1].parts[0].text"),
    ({"contents": [USER, {"role": "model", "parts": [{"text": "a", "thought": "yes"}]}]}, "parts[0].thought"),
    ({"contents": [USER, {"role": "model", "parts": [{"functionCall": "x"}]}]}, "contents[1].parts[0].function_call"),
    ({"contents": [USER, {"role": "model", "parts": [{"functionCall": {"args": {}}}]}]}, "function_call.name"),
    ({"contents": [USER, {"role": "model", "parts": [{"functionCall": {"name": "f", "args": 5}}]}]}, "call.args"),
]


@pytest.mark.parametrize(("fields", "path"), MISSHAPEN_GEMINI)
def test_a_misshapen_gemini_field_is_googles_400_naming_it(edge, mock_upstream, fields, path):
    before = upstream_calls(mock_upstream)
    reply = generate(edge, {"contents": [USER], **fields})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["code"] == 400
    assert path in error["message"]
    assert "shape its API defines" not in error["message"]  # the catch-all, with Python's words
    assert upstream_calls(mock_upstream) == before  # refused before any vendor call


def test_the_sdk_gets_the_refusal_as_a_client_error(edge):
    """What the `google-genai` SDK can send itself: a content of a role Google does not know."""
    client = genai.Client(api_key=CLIENT_KEY, http_options={"base_url": edge.url})
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(
            model=GPT, contents=[types.Content(role="wizard", parts=[types.Part(text="hi")])]
        )
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    assert "contents[0].role" in refused.value.message


def test_well_formed_gemini_fields_still_translate(edge, mock_upstream):
    """What Google accepts keeps its translation: snake_case names, dropped fields of the right type, a thought
    part sent back, an inline image, a function call and its response."""
    body = {
        "system_instruction": {"role": "user", "parts": [{"text": "be "}, {"text": "brief"}]},
        "contents": [
            {
                "role": "user",
                "parts": [{"text": "look"}, {"inline_data": {"mime_type": "image/png", "data": "iVBO-_w"}}],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "thinking", "thought": True},
                    {"functionCall": {"name": "f", "args": {"x": 1}, "id": "c1"}},
                ],
            },
            {"role": "function", "parts": [{"functionResponse": {"name": "f", "id": "c1", "response": {"r": "ok"}}}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "any", "allowedFunctionNames": ["f"]}},
        "generationConfig": {
            "temperature": 1,
            "top_p": 0.5,
            "topK": 3,
            "stopSequences": ["END"],
            "thinkingConfig": {"thinkingBudget": 0},
            "responseMimeType": "application/json",
        },
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }
    reply = generate(edge, body)
    assert reply.status_code == 200, reply.text
    sent = httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["messages"][1]["content"][1]["image_url"]["url"] == "data:image/png;base64,iVBO-_w"
    assert sent["messages"][2]["tool_calls"][0]["id"] == "c1" and sent["messages"][3]["tool_call_id"] == "c1"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert sent["temperature"] == 1 and sent["top_p"] == 0.5 and sent["stop"] == ["END"]
    assert sent["response_format"] == {"type": "json_object"}


def oai(edge) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


MISSHAPEN_RESPONSES = [
    ({"instructions": 5}, "instructions", "invalid_type"),
    ({"temperature": "hot"}, "temperature", "invalid_type"),
    ({"temperature": 5}, "temperature", "decimal_above_max_value"),
    ({"top_p": -1}, "top_p", "decimal_below_min_value"),
    ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text", None),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]}, "input[0].content[0].text", None),
    ({"input": [{"role": "user", "content": [5]}]}, "input[0].content[0]", "invalid_type"),
    ({"input": [{"role": "user"}]}, "input[0].content", "missing_required_parameter"),
    ({"store": "x"}, "store", "invalid_type"),
    ({"parallel_tool_calls": "yes"}, "parallel_tool_calls", "invalid_type"),
    ({"user": 5}, "user", "invalid_type"),
    ({"metadata": "x"}, "metadata", "invalid_type"),
    ({"metadata": {"k": 5}}, "metadata.k", "invalid_type"),
    ({"truncation": "sometimes"}, "truncation", "invalid_value"),
    ({"include": "x"}, "include", "invalid_type"),
    ({"background": "x"}, "background", "invalid_type"),
    ({"text": "x"}, "text", "invalid_type"),
    ({"text": {"format": "x"}}, "text.format", "invalid_type"),
    ({"text": {"format": {}}}, "text.format.type", "missing_required_parameter"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format.type", "invalid_value"),
    ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name", "missing_required_parameter"),
    ({"text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema", "missing_required_parameter"),
    ({"text": {"verbosity": 5}}, "text.verbosity", "invalid_type"),
    ({"reasoning": "high"}, "reasoning", "invalid_type"),
    ({"reasoning": {"effort": 5}}, "reasoning.effort", "invalid_type"),
    ({"tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    ({"tools": [5]}, "tools[0]", "invalid_type"),
    ({"tools": [{"type": "function"}]}, "tools[0].name", "missing_required_parameter"),
    ({"tools": [{"type": "function", "name": "f", "parameters": "x"}]}, "tools[0].parameters", "invalid_type"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id", None),
    ({"input": ["hi", {"type": "function_call_output", "output": "x"}]}, "input[0]", "invalid_type"),
    ({"input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0].output", "missing_required_parameter"),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "u", "detail": "max"}]}]},
        "detail",
        None,
    ),
]


@pytest.mark.parametrize(("fields", "param", "code"), MISSHAPEN_RESPONSES)
def test_a_misshapen_responses_field_is_openais_400_naming_it(edge, mock_upstream, fields, param, code):
    before = upstream_calls(mock_upstream)
    with pytest.raises(openai.BadRequestError) as refused:
        oai(edge).responses.create(**{"model": GPT, "input": "hi", **fields})
    error = refused.value.body
    assert refused.value.status_code == 400 and error["type"] == "invalid_request_error"
    assert error["param"].endswith(param), error
    if code is not None:
        assert error["code"] == code, error
    assert "shape its API defines" not in error["message"]
    assert upstream_calls(mock_upstream) == before


def test_well_formed_responses_fields_still_translate(edge, mock_upstream):
    reply = oai(edge).responses.create(
        model=GPT,
        instructions="be brief",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "ok"}]},
        ],
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}],
        tool_choice="auto",
        temperature=2,
        top_p=1,
        store=False,
        metadata={"k": "v"},
        truncation="disabled",
        include=[],
        reasoning={"effort": "low", "summary": "auto"},
        text={"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}, "verbosity": "low"},
    )
    assert reply.status == "completed"
    sent = httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    assert sent["response_format"]["json_schema"]["name"] == "n" and sent["reasoning_effort"] == "low"
