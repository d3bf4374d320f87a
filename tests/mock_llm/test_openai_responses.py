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


def test_error_after_chunks_ends_the_stream_as_openai_ends_a_failing_one(client: openai.OpenAI) -> None:
    """`event: error` (what the SDK types as `ResponseErrorEvent`: code and message at the top), then
    `response.failed` with the same response, numbered after the events sent; no `response.completed`."""
    stream = client.responses.create(
        model="gpt-4o-mini",
        input="one two three four",
        stream=True,
        extra_headers={"x-mock-fault": "error_after_chunks=3"},
    )
    events = list(stream)  # the SDK yields both as typed events: a Responses stream's error is not raised
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "error",
        "response.failed",
    ]
    assert [e.sequence_number for e in events] == [0, 1, 2, 3, 4]
    error, failed = events[3], events[4]
    assert (error.code, error.param) == ("server_error", None)
    assert error.message == "The server had an error while processing your request. Sorry about that!"
    assert failed.response.id == events[0].response.id and failed.response.status == "failed"
    assert (failed.response.error.code, failed.response.error.message) == ("server_error", error.message)
