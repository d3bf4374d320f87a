"""The mock's OpenAI Responses API, driven by the stock `openai` SDK over real HTTP."""

from __future__ import annotations

import openai
import pytest

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_reply_usage_and_length_cut(client: openai.OpenAI) -> None:
    reply = client.responses.create(model="gpt-4o-mini", instructions="Be brief.", input="hello there")
    assert reply.output_text == "Echo: hello there" and reply.status == "completed"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (5, 4)  # "Be brief." + "hello there"
    cut = client.responses.create(model="gpt-4o-mini", input="a " * 40, max_output_tokens=16)
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"


def test_stream_events_and_tool_calls(client: openai.OpenAI) -> None:
    with client.responses.stream(model="gpt-4o-mini", input="stream me") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert final.output_text == "Echo: stream me"
    called = client.responses.create(model="gpt-4o-mini", input="call tool get_weather", tools=[WEATHER])
    assert called.output[0].type == "function_call" and '"city"' in called.output[0].arguments
    answered = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": called.output[0].call_id, "output": "sunny"}],
    )
    assert answered.output_text == "Echo: sunny"


def test_errors_in_openais_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.create(model="gpt-4o-mini", input="x", previous_response_id="resp_never_issued")
    assert unknown.value.code == "previous_response_not_found"
    with pytest.raises(openai.BadRequestError) as missing:
        client.responses.create(model="gpt-4o-mini")  # type: ignore[call-overload]
    assert missing.value.param == "input"
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="gpt-4o-mini", input="x", extra_body={"mock": "status=500"})
