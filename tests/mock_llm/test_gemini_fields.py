"""Fields Google's Gemini API refuses are refused by the mock too: 400 `INVALID_ARGUMENT`, the field's path named.

The `google-genai` SDK checks `generationConfig` types itself (pydantic), so values it will not send go over raw
HTTP, as any other client could send them; a role it does send goes through the SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from .conftest import KEY, MockServer

MODEL = "gemini-2.5-flash"
URL = f"/v1beta/models/{MODEL}:generateContent"
HEADERS = {"x-goog-api-key": KEY}
HELLO = [{"role": "user", "parts": [{"text": "Hello"}]}]


@pytest.fixture
def sdk(mock: MockServer) -> Iterator[genai.Client]:
    client = genai.Client(api_key=KEY, http_options={"base_url": mock.url})
    yield client
    client.close()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"generationConfig": {"temperature": "hot"}},
            "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"",
        ),
        (
            {"generationConfig": {"temperature": 3}},
            "* GenerateContentRequest.generation_config.temperature: 3 is out of range; the supported range is from "
            "0.0 (inclusive) to 2.0 (inclusive).",
        ),
        ({"generation_config": {"top_p": 1.5}}, None),
        ({"generationConfig": {"topK": "many"}}, "Invalid value at 'generation_config.top_k' (TYPE_INT32), \"many\""),
        ({"generationConfig": {"candidateCount": 9}}, None),
        ({"generationConfig": {"seed": 1.5}}, "Invalid value at 'generation_config.seed' (TYPE_INT32), 1.5"),
        ({"generationConfig": {"presencePenalty": "x"}}, None),
        ({"generationConfig": {"responseLogprobs": "yes"}}, None),
        (
            {"generationConfig": {"stopSequences": "x"}},
            "Invalid value at 'generation_config.stop_sequences' (TYPE_STRING), \"x\"",
        ),
        ({"generationConfig": {"thinkingConfig": {"includeThoughts": "yes"}}}, None),
        (
            {"generationConfig": {"temprature": 1}},
            "Invalid JSON payload received. Unknown name \"temprature\" at 'generation_config': Cannot find field.",
        ),
        (
            {"generationConfig": "x"},
            "Invalid value at 'generation_config' "
            '(type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig), "x"',
        ),
        (
            {"systemInstruction": "x"},
            "Invalid value at 'system_instruction' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content), "
            '"x"',
        ),
        (
            {"systemInstruction": {"parts": [{"text": 5}]}},
            "Invalid value at 'system_instruction.parts[0].text' (TYPE_STRING), 5",
        ),
        (
            {"contents": [{"role": "user", "parts": []}]},
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.",
        ),
        (
            {"contents": [{"role": "user", "parts": [{}]}]},
            "* GenerateContentRequest.contents[0].parts[0].data: required oneof field 'data' must have one initialized "
            "field",
        ),
        (
            {"contents": [{"role": "user", "parts": [{"txt": "hi"}]}]},
            "Invalid JSON payload received. Unknown name \"txt\" at 'contents[0].parts[0]': Cannot find field.",
        ),
        (
            {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "!!!"}}]}]},
            "Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES), Base64 decoding failed for \"!!!\"",
        ),
        ({"contents": [{"role": "user", "parts": [{"functionCall": {"args": {}}}]}]}, None),
    ],
)
def test_a_field_google_refuses_is_a_400_naming_it(
    mock: MockServer, fields: dict[str, Any], message: str | None
) -> None:
    with mock.http() as http:
        response = http.post(URL, json={"contents": HELLO, **fields}, headers=HEADERS)

    error = response.json()["error"]
    assert response.status_code == 400
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    if message is not None:
        assert error["message"] == message


def test_a_role_google_does_not_know_is_refused_through_the_sdk(sdk: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as refused:
        sdk.models.generate_content(model=MODEL, contents=[types.Content(role="wizard", parts=[types.Part(text="Hi")])])

    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    assert refused.value.message == "Please use a valid role: user, model."


def test_a_mime_type_google_does_not_serve_is_refused_through_the_sdk(sdk: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as refused:
        sdk.models.generate_content(
            model=MODEL, contents="Hi", config=types.GenerateContentConfig(response_mime_type="text/html")
        )

    assert refused.value.code == 400
    assert "generation_config.response_mime_type: allowed mimetypes are" in str(refused.value.message)


def test_every_field_google_accepts_still_answers(sdk: genai.Client, mock: MockServer) -> None:
    reply = sdk.models.generate_content(
        model=MODEL,
        contents=[
            types.Content(
                role="user",
                parts=[types.Part(text="Look"), types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png")],
            ),
            types.Content(
                role="model", parts=[types.Part.from_function_call(name="get_weather", args={"city": "Oslo"})]
            ),
            types.Content(
                role="user", parts=[types.Part.from_function_response(name="get_weather", response={"output": "sunny"})]
            ),
        ],
        config=types.GenerateContentConfig(
            system_instruction="Be brief.",
            temperature=2.0,
            top_p=0.0,
            top_k=40,
            candidate_count=1,
            max_output_tokens=50,
            stop_sequences=["a", "b", "c", "d", "e"],
            seed=-3,
            presence_penalty=-2.0,
            frequency_penalty=2.0,
            response_logprobs=True,
            logprobs=5,
            response_mime_type="application/json",
            response_schema={"type": "OBJECT", "properties": {"x": {"type": "STRING"}}},
            thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024),
        ),
    )
    with mock.http() as http:
        proto_json = http.post(
            URL,
            json={"contents": HELLO, "generation_config": {"temperature": "0.5", "max_output_tokens": "8"}},
            headers=HEADERS,
        )

    assert reply.candidates and reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert proto_json.status_code == 200, proto_json.text


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"generationConfig": {"temprature": 1}}, "generation_config"),
        ({"generationConfig": {"temperature": "hot"}}, "generation_config.temperature"),
    ],
)
def test_a_payload_google_cannot_read_names_the_field_in_details(
    mock: MockServer, fields: dict[str, Any], field: str
) -> None:
    """An unknown name or a value of the wrong type: Google's BadRequest `fieldViolations` entry in `details`."""
    with mock.http() as http:
        error = http.post(URL, json={"contents": HELLO, **fields}, headers=HEADERS).json()["error"]
    assert error["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": field, "description": error["message"]}],
        }
    ]


def test_a_value_out_of_range_has_no_details(mock: MockServer) -> None:
    with mock.http() as http:
        body = {"contents": HELLO, "generationConfig": {"temperature": 3}}
        error = http.post(URL, json=body, headers=HEADERS).json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and "details" not in error
