"""Vendor `google` (Gemini API, AI Studio key) behind the edge: the stock `openai` and `anthropic` SDKs call a
Gemini LLM (the mock speaking Gemini's wire format) unchanged: chat, streams, tools, images, thinking,
embeddings, usage and finish reasons, and Gemini's errors in the caller's shape."""

from __future__ import annotations

import base64
import time

import anthropic
import httpx
import openai
import orjson
import pytest

from edge_gateway.providers.base import OpenAIRequest, Usage
from edge_gateway.providers.gemini import gemini_url
from edge_gateway.providers.gemini_format import chat_to_gemini, gemini_to_chat
from edge_gateway.providers.gemini_stream import GeminiToChatStream
from shared_sdk.messages import AnalyticsRecord
from shared_sdk.snapshot import AppConfig

from .support import CLIENT_KEY, VENDOR_KEY, ModelPriceConfig, llm, make_snapshot, run_edge, start_mock

GEMINI = "gemini-2.5-flash"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
FAULT = "x-mock-fault"
FAULTS = {
    "g400": "status=400",
    "g429": "status=429",
    "g503": "status=503",
    "gcut": "error_after_chunks=2; chunk_delay_ms=50",
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    gemini = llm(1, "gemini", mock_upstream, vendor="google", default_model=GEMINI, allowed_models=["gemini-.*"])
    faulty = [
        llm(
            2 + i,
            slug,
            mock_upstream,
            vendor="google",
            default_model=GEMINI,
            max_retries=0,
            extra_headers={FAULT: spec},
            priority=100,  # reached by slug only: a bare GEMINI must not be balanced onto a faulty deployment
        )
        for i, (slug, spec) in enumerate(FAULTS.items())
    ]
    snap = make_snapshot(
        mock_upstream,
        llms=[gemini, *faulty],
        apps=[AppConfig(id=1, name="one", llm_ids=[1, *(f.id for f in faulty)])],
        prices=[ModelPriceConfig(vendor="google", model=GEMINI)],
    )
    with run_edge(snap, tmp_path_factory.mktemp("edge")) as running:
        yield running


def oai(edge) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def last_upstream(mock_upstream: str) -> dict:
    return httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]


def test_chat_goes_out_as_generate_content_with_the_vendor_key(edge, mock_upstream):
    reply = oai(edge).chat.completions.create(
        model=GEMINI,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello fjord"}],
        max_tokens=50,
        temperature=0.2,
    )
    assert reply.choices[0].message.content == "Echo: hello fjord"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == 4 and reply.usage.completion_tokens == 4  # "be brief" + "hello fjord"
    seen = last_upstream(mock_upstream)
    assert seen["path"] == f"/v1beta/models/{GEMINI}:generateContent"
    assert seen["headers"]["x-goog-api-key"] == VENDOR_KEY
    assert CLIENT_KEY not in str(seen)
    assert seen["body"]["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert seen["body"]["contents"] == [{"role": "user", "parts": [{"text": "hello fjord"}]}]
    assert seen["body"]["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.2}
    record = edge.sink.wait_for(AnalyticsRecord, 1)[-1]
    assert record.prompt_tokens == 4 and record.completion_tokens == 4


def test_max_tokens_maps_to_length(edge):
    reply = oai(edge).chat.completions.create(
        model=GEMINI, messages=[{"role": "user", "content": "one two three four five six"}], max_tokens=3
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3


def test_stream_yields_text_usage_and_done(edge, mock_upstream):
    stream = oai(edge).chat.completions.create(
        model=GEMINI,
        messages=[{"role": "user", "content": "stream the fjord"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream the fjord"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    seen = last_upstream(mock_upstream)
    assert seen["path"] == f"/v1beta/models/{GEMINI}:streamGenerateContent" and seen["query"] == "alt=sse"


def test_tool_call_round_trip(edge, mock_upstream):
    client = oai(edge)
    question = {"role": "user", "content": "weather in Oslo? call tool"}
    reply = client.chat.completions.create(model=GEMINI, messages=[question], tools=[WEATHER])
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and call.function.arguments == '{"city":"mock"}'
    sent = last_upstream(mock_upstream)["body"]
    declaration = sent["tools"][0]["functionDeclarations"][0]
    assert "additionalProperties" not in declaration["parameters"]  # Gemini's schema subset refuses it
    answer = client.chat.completions.create(
        model=GEMINI,
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert answer.choices[0].message.content == "Echo: sunny"
    contents = last_upstream(mock_upstream)["body"]["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "mock"}}}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}],
    }


def test_streamed_tool_call_and_forced_choice(edge):
    stream = oai(edge).chat.completions.create(
        model=GEMINI,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
        tool_choice="required",
        stream=True,
    )
    chunks = list(stream)
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert calls[0].function.name == "get_weather" and calls[0].id
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


GEMINI_3 = "gemini-3-pro-preview"
"""A model that signs its function calls and answers 400 to a replayed call without the signature, as Gemini 3
does (the mock checks it for `gemini-3...` names)."""


def test_gemini_3_tool_loop_carries_the_thought_signature(edge, mock_upstream):
    """An agent loop with the stock SDK, appending the assistant message as the SDK returned it: the call's
    thought signature comes back as `extra_content.google.thought_signature` (Google's OpenAI-compatible field)
    and goes out again as the part's `thoughtSignature`, so Gemini 3 answers instead of a 400 on turn two."""
    client = oai(edge)
    question = {"role": "user", "content": "weather in Oslo? call tool"}
    reply = client.chat.completions.create(model=GEMINI_3, messages=[question], tools=[WEATHER])
    message = reply.choices[0].message
    call = message.tool_calls[0]
    answer = client.chat.completions.create(
        model=GEMINI_3,
        tools=[WEATHER],
        messages=[question, message, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}],
    )
    assert answer.choices[0].message.content == "Echo: sunny"
    sent = last_upstream(mock_upstream)["body"]["contents"][1]["parts"][0]
    assert sent["thoughtSignature"] == (call.model_extra or {})["extra_content"]["google"]["thought_signature"]
    with client.chat.completions.stream(model=GEMINI_3, messages=[question], tools=[WEATHER]) as stream:
        streamed = stream.get_final_completion().choices[0].message
    again = client.chat.completions.create(
        model=GEMINI_3,
        tools=[WEATHER],
        messages=[question, streamed, {"role": "tool", "tool_call_id": streamed.tool_calls[0].id, "content": "rain"}],
    )
    assert again.choices[0].message.content == "Echo: rain"


def test_gemini_3_tool_loops_of_other_sdks_and_rebuilt_messages_keep_the_signature(edge):
    """What every client returns is the call's id (an Anthropic `tool_use` id, a Responses `call_id`, a message
    rebuilt from id, name and arguments): the signature rides in it too, so these loops get past turn two."""
    question = "weather in Oslo? call tool"
    rebuilt = oai(edge).chat.completions.create(
        model=GEMINI_3, messages=[{"role": "user", "content": question}], tools=[WEATHER]
    )
    call = rebuilt.choices[0].message.tool_calls[0]
    bare = {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    history = [
        {"role": "assistant", "tool_calls": [bare]},
        {"role": "tool", "tool_call_id": call.id, "content": "hail"},
    ]
    answer = oai(edge).chat.completions.create(
        model=GEMINI_3, tools=[WEATHER], messages=[{"role": "user", "content": question}, *history]
    )
    assert answer.choices[0].message.content == "Echo: hail"

    claude = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    tools = [{"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}]
    asked = claude.messages.create(
        model=GEMINI_3, max_tokens=100, tools=tools, messages=[{"role": "user", "content": question}]
    )
    use = next(b for b in asked.content if b.type == "tool_use")
    result = [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": asked.content}]
    answered = claude.messages.create(
        model=GEMINI_3, max_tokens=100, tools=tools, messages=[*turns, {"role": "user", "content": result}]
    )
    assert answered.content[0].text == "Echo: sunny"

    responses_tools = [{"type": "function", **WEATHER["function"]}]
    first = oai(edge).responses.create(model=GEMINI_3, input=question, tools=responses_tools)
    item = next(o for o in first.output if o.type == "function_call")
    output = {"type": "function_call_output", "call_id": item.call_id, "output": "fog"}
    then = oai(edge).responses.create(
        model=GEMINI_3, previous_response_id=first.id, input=[output], tools=responses_tools
    )
    assert then.output_text == "Echo: fog"


def test_only_models_that_require_signatures_get_signed_call_ids():
    """A signed id is longer than OpenAI's 40 characters: Gemini 2.5's signed calls keep short ids (a conversation
    may move on to another vendor), carrying the signature in `extra_content` only."""
    part = {"functionCall": {"name": "get_weather", "args": {}}, "thoughtSignature": "c2lnbmF0dXJl" * 20}
    body = {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}]}
    short = gemini_to_chat(body, GEMINI, Usage())["choices"][0]["message"]["tool_calls"][0]
    signed = gemini_to_chat(body, GEMINI_3, Usage())["choices"][0]["message"]["tool_calls"][0]
    assert len(short["id"]) <= 40 and short["extra_content"]["google"]["thought_signature"] == part["thoughtSignature"]
    back = chat_to_gemini(
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [signed]}]}
    )
    assert back["contents"][1]["parts"][0]["thoughtSignature"] == part["thoughtSignature"]
    signed.pop("extra_content")
    back = chat_to_gemini(
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [signed]}]}
    )
    assert back["contents"][1]["parts"][0]["thoughtSignature"] == part["thoughtSignature"]  # from the id alone


def test_image_goes_as_inline_data(edge, mock_upstream):
    oai(edge).chat.completions.create(
        model=GEMINI,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ],
    )
    parts = last_upstream(mock_upstream)["body"]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}


def test_thinking_parts_come_back_as_reasoning_content(edge):
    raw = oai(edge).chat.completions.with_raw_response.create(
        model=GEMINI, messages=[{"role": "user", "content": "ponder"}], reasoning_effort="low"
    )
    body = raw.http_response.json()
    message = body["choices"][0]["message"]
    assert message["content"] == "Echo: ponder"
    assert message["reasoning_content"] == "Thinking about: ponder"
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 4  # Thinking about : ponder
    assert body["usage"]["completion_tokens"] == 3 + 4  # thoughts are billed as output


def test_embeddings_via_batch_embed_contents(edge, mock_upstream):
    result = oai(edge).embeddings.create(model="gemini-embedding-001", input=["a fjord", "a glacier"], dimensions=8)
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert last_upstream(mock_upstream)["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    with pytest.raises(openai.BadRequestError, match="Gemini embeds text"):
        oai(edge).embeddings.create(model="gemini-embedding-001", input=[[1, 2, 3]])


def test_gemini_errors_reach_the_openai_client_in_its_shape(edge):
    client = oai(edge)
    hello = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="g400", messages=hello)
    assert bad.value.body["type"] == "invalid_request_error" and "mock upstream fault" in bad.value.message
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="g429", messages=hello)
    with pytest.raises(openai.APIStatusError) as broken:
        client.chat.completions.create(model="g503", messages=hello)
    assert broken.value.status_code == 502 and "overloaded" in broken.value.message


def test_stream_broken_by_gemini_ends_with_an_error_event(edge):
    stream = oai(edge).chat.completions.create(
        model="gcut", messages=[{"role": "user", "content": "one two three four"}], stream=True
    )
    with pytest.raises(openai.APIError, match="overloaded"):
        list(stream)


def test_anthropic_sdk_against_a_gemini_llm(edge):
    client = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    reply = client.messages.create(model=GEMINI, max_tokens=50, messages=[{"role": "user", "content": "hej"}])
    assert reply.content[0].text == "Echo: hej" and reply.stop_reason == "end_turn"
    assert reply.usage.input_tokens == 1 and reply.usage.output_tokens == 3
    with client.messages.stream(model=GEMINI, max_tokens=50, messages=[{"role": "user", "content": "flow"}]) as s:
        assert "".join(s.text_stream) == "Echo: flow"
        assert s.get_final_message().usage.output_tokens == 3
    tool = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}
    used = client.messages.create(
        model=GEMINI, max_tokens=50, tools=[tool], messages=[{"role": "user", "content": "call tool"}]
    )
    assert used.stop_reason == "tool_use" and used.content[0].input == {"city": "mock"}


def test_translation_helpers_are_reusable_without_auth():
    """Vertex AI reuses the body translation and builds its own URL: both are plain functions."""
    body = chat_to_gemini({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "none", "tools": [WEATHER]})
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert gemini_url("https://x.example/v1beta", "models/g", "streamGenerateContent", True) == (
        "https://x.example/v1beta/models/g:streamGenerateContent?alt=sse"
    )


def test_a_rejected_vendor_key_is_the_gateways_problem_not_the_clients(tmp_path):
    """Google answers a wrong key with 400 API_KEY_INVALID (a missing one with 403): both are a 502 for the client,
    who can do nothing about the gateway's key, and neither key is echoed."""
    with start_mock("--require-key", "the-right-key") as strict:
        gemini = llm(1, "gemini", strict, vendor="google", default_model=GEMINI)
        snap = make_snapshot(strict, llms=[gemini], prices=[ModelPriceConfig(vendor="google", model=GEMINI)])
        with run_edge(snap, tmp_path) as running:
            with pytest.raises(openai.APIStatusError) as failed:
                oai(running).chat.completions.create(model=GEMINI, messages=[{"role": "user", "content": "x"}])
    assert failed.value.status_code == 502 and failed.value.body["code"] == "upstream_auth_failed"
    assert VENDOR_KEY not in str(failed.value.body)


def test_responses_api_against_a_gemini_llm(edge, mock_upstream):
    client = oai(edge)
    reply = client.responses.create(model=GEMINI, input="hello responses", instructions="be brief")
    assert reply.output_text == "Echo: hello responses" and reply.status == "completed"
    assert reply.usage.input_tokens == 4 and reply.usage.output_tokens == 4
    assert last_upstream(mock_upstream)["body"]["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    with client.responses.stream(model=GEMINI, input="stream responses") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Echo: stream responses"


def test_responses_usage_reports_the_thinking_tokens(edge):
    """Gemini bills its thoughts as output: a Responses client sees them as `output_tokens_details.reasoning_tokens`
    (plain and streamed), not 0 beside an `output_tokens` that includes them."""
    client = oai(edge)
    reply = client.responses.create(model=GEMINI, input="think it over", reasoning={"effort": "low"})
    thoughts = 6  # "Thinking about: think it over"
    assert reply.usage.output_tokens_details.reasoning_tokens == thoughts
    assert reply.usage.output_tokens == thoughts + 5  # and "Echo: think it over"
    with client.responses.stream(model=GEMINI, input="think it over", reasoning={"effort": "low"}) as stream:
        final = stream.get_final_response()
    assert final.usage.output_tokens_details.reasoning_tokens == thoughts


def test_native_pass_through_is_metered_and_keeps_the_client_key_out(edge, mock_upstream):
    body = {"contents": [{"role": "user", "parts": [{"text": "native call"}]}]}
    response = httpx.post(
        f"{edge.url}/llm/call/gemini/v1beta/models/{GEMINI}:generateContent",
        json=body,
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert response.status_code == 200
    assert response.json()["candidates"][0]["content"]["parts"][0]["text"] == "Echo: native call"
    seen = last_upstream(mock_upstream)
    assert seen["headers"]["x-goog-api-key"] == VENDOR_KEY and CLIENT_KEY not in str(seen)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        native = [r for r in edge.sink.of(AnalyticsRecord) if r.prompt_tokens == 2 and r.completion_tokens == 4]
        if native:
            break
        time.sleep(0.05)
    assert native, "the native call's usage (usageMetadata) was not accounted"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons_map_to_openais(reason, expected):
    body = {"candidates": [{"content": {"parts": [{"text": "x"}], "role": "model"}, "finishReason": reason}]}
    assert gemini_to_chat(body, GEMINI, Usage())["choices"][0]["finish_reason"] == expected


def test_a_prompt_blocked_outright_is_an_empty_content_filter_answer():
    usage = Usage()
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7}}
    chat = gemini_to_chat(body, GEMINI, usage)
    assert chat["choices"][0]["message"]["content"] == "" and chat["choices"][0]["finish_reason"] == "content_filter"
    assert usage.prompt_tokens == 7
    stream = GeminiToChatStream(OpenAIRequest.from_data("chat", b"", {"stream": True}), GEMINI)
    events = stream.feed(b"data: " + orjson.dumps(body) + b"\r\n\r\n") + stream.finish()
    assert stream.done and b'"finish_reason":"content_filter"' in events[-2] and events[-1] == b"data: [DONE]\n\n"
