"""Where a client's dialect and its LLM's vendor differ, the client must get what its own vendor would answer:
stop sequences for Anthropic clients, tool-call-only answers for OpenAI clients, a vendor's in-band stream error
for every client, images in tool results. Driven with the stock SDKs against the mock LLM, whose answers in each
vendor's own shape are the reference."""

from __future__ import annotations

import base64
import json

import anthropic
import httpx
import openai
import pytest

from shared_sdk.messages import AnalyticsRecord
from shared_sdk.snapshot import AppConfig

from .support import CLIENT_KEY, ModelPriceConfig, llm, make_snapshot, run_edge

GPT = "mock-gpt"
CLAUDE = "claude-opus-4-5"
GEMINI = "gemini-2.5-flash"
FAULT = "x-mock-fault"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    llms = [
        llm(1, "gpt", f"{mock_upstream}/v1", allowed_models=[GPT]),
        llm(2, "claude", mock_upstream, vendor="anthropic", default_model=CLAUDE, allowed_models=[CLAUDE]),
        llm(3, "gemini", mock_upstream, vendor="google", default_model=GEMINI, allowed_models=[GEMINI]),
        # vLLM names the stop sequence that ended a reply (`stop_reason`); the mock does so on `name_stop`
        llm(
            4, "vllm", f"{mock_upstream}/v1", vendor="vllm", default_model="served", extra_headers={FAULT: "name_stop"}
        ),
        # each vendor's own in-band error event after five events of a stream, reached by slug only
        *(
            llm(
                10 + i,
                f"{vendor}-err",
                base,
                vendor=vendor,
                default_model=model,
                max_retries=0,
                priority=100,
                extra_headers={FAULT: "error_after_chunks=5; chunk_delay_ms=20"},
            )
            for i, (vendor, base, model) in enumerate(
                [
                    ("mock", f"{mock_upstream}/v1", GPT),
                    ("anthropic", mock_upstream, CLAUDE),
                    ("google", mock_upstream, GEMINI),
                ]
            )
        ),
        # an OpenAI-compatible server that sends `data: [DONE]` after its in-band error chunk
        llm(
            20,
            "mock-err-done",
            f"{mock_upstream}/v1",
            default_model=GPT,
            max_retries=0,
            priority=100,
            extra_headers={FAULT: "error_after_chunks=5; chunk_delay_ms=20; done_after_error"},
        ),
    ]
    snap = make_snapshot(
        mock_upstream,
        llms=llms,
        apps=[AppConfig(id=1, name="one", llm_ids=[x.id for x in llms])],
        prices=[
            ModelPriceConfig(vendor="mock", model=GPT),
            ModelPriceConfig(vendor="anthropic", model=CLAUDE),
            ModelPriceConfig(vendor="google", model=GEMINI),
        ],
    )
    with run_edge(snap, tmp_path_factory.mktemp("edge")) as running:
        yield running


def oai(edge) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def claude_client(edge) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)


@pytest.mark.parametrize("stream", [False, True], ids=["full", "stream"])
def test_stop_sequences_are_reported_as_anthropic_does(edge, stream):
    """Anthropic names the sequence that stopped the text; a translated LLM's reply says so only when its vendor
    named it (vLLM's `stop_reason`), else it is a natural end (OpenAI's and Gemini's "stop" do not say which),
    and a full reply and a stream's `message_delta` agree."""
    asked = {
        "max_tokens": 100,
        "stop_sequences": ["fjord", "never-seen"],
        "messages": [{"role": "user", "content": "sail up the fjord and back"}],
    }

    def ask(model: str) -> anthropic.types.Message:
        if not stream:
            return claude_client(edge).messages.create(model=model, **asked)
        with claude_client(edge).messages.stream(model=model, **asked) as events:
            return events.get_final_message()

    reference = ask(CLAUDE)
    assert (reference.stop_reason, reference.stop_sequence) == ("stop_sequence", "fjord")
    named = ask("vllm")
    assert (named.stop_reason, named.stop_sequence) == ("stop_sequence", "fjord")
    assert named.content[0].text == reference.content[0].text == "Echo: sail up the "
    for model in (GPT, GEMINI):
        unnamed = ask(model)
        assert unnamed.content[0].text == reference.content[0].text
        assert (unnamed.stop_reason, unnamed.stop_sequence) == ("end_turn", None)


@pytest.mark.parametrize("model", [GPT, CLAUDE, GEMINI])
def test_an_answer_of_tool_calls_only_has_null_content_streamed_or_not(edge, model):
    """OpenAI's own answer (GPT, the mock in OpenAI's shape) is the reference: `content` None beside the calls,
    in a full answer and in what the SDK accumulates from a stream; a text stream still opens with `""`."""
    c = oai(edge)
    asked = {"model": model, "tools": [WEATHER], "tool_choice": "required"}
    asked["messages"] = [{"role": "user", "content": "weather in Oslo?"}]
    full = c.chat.completions.create(**asked).choices[0].message
    assert full.content is None and full.tool_calls[0].function.name == "get_weather"
    with c.chat.completions.stream(**asked) as events:
        streamed = events.get_final_completion().choices[0]
    assert streamed.message.tool_calls[0].function.name == "get_weather"
    assert streamed.message.content is None and streamed.finish_reason == "tool_calls"
    chunks = list(
        c.chat.completions.create(model=model, stream=True, messages=[{"role": "user", "content": "plain text"}])
    )
    first = chunks[0].choices[0].delta
    assert (first.role, first.content) == ("assistant", "")
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "Echo: plain text"


VENDOR_ERRORS = {  # what each vendor's in-band error says (the mock's messages), and its HTTP status
    "mock": ("server_error", "The server had an error while processing your request. Sorry about that!", 500),
    "anthropic": ("overloaded_error", "Overloaded", 529),
    "google": ("UNAVAILABLE", "The model is overloaded. Please try again later.", 503),
}
ANTHROPIC_TYPE = {500: "api_error", 529: "overloaded_error", 503: "api_error"}
GOOGLE_STATUS = {500: "INTERNAL", 529: "INTERNAL", 503: "UNAVAILABLE"}
WORDS = "one two three four five six seven eight nine ten"


def stream_raw(edge, dialect: str, model: str) -> httpx.Response:
    """A streamed request in the client's own dialect, read to its end."""
    user = [{"role": "user", "content": WORDS}]
    if dialect == "openai":
        url, headers = "/v1/chat/completions", {"authorization": f"Bearer {CLIENT_KEY}"}
        body: dict = {"model": model, "stream": True, "messages": user}
    elif dialect == "anthropic":
        url, headers = "/v1/messages", {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
        body = {"model": model, "stream": True, "max_tokens": 100, "messages": user}
    else:
        url, headers = f"/v1beta/models/{model}:streamGenerateContent?alt=sse", {"x-goog-api-key": CLIENT_KEY}
        body = {"contents": [{"role": "user", "parts": [{"text": WORDS}]}]}
    return httpx.post(f"{edge.url}{url}", json=body, headers=headers, timeout=20)


def error_events(dialect: str, text: str) -> list[dict]:
    """The error events of a stream, as the client's dialect shapes them."""
    events = [e for e in text.replace("\r\n", "\n").split("\n\n") if e.strip()]
    found = []
    for event in events:
        lines = event.split("\n")
        data = "".join(line[5:].strip() for line in lines if line.startswith("data:"))
        if not data or data == "[DONE]":
            continue
        payload = json.loads(data)
        if dialect == "anthropic":
            if "event: error" in lines or payload.get("type") == "error":
                found.append(payload)
        elif "error" in payload:
            found.append(payload)
    return found


@pytest.mark.parametrize("vendor", ["mock", "anthropic", "google"])
@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini"])
def test_a_vendors_in_band_stream_error_reaches_the_client_once_in_its_dialect(edge, dialect, vendor):
    """Exactly one error event, the client's dialect's, with the vendor's type (or what the client's vendor calls
    that status) and message; the request is accounted as a failed stream."""
    kind, message, status = VENDOR_ERRORS[vendor]
    reply = stream_raw(edge, dialect, f"{vendor}-err")
    assert reply.status_code == 200  # the stream had started
    errors = error_events(dialect, reply.text)
    assert len(errors) == 1, reply.text
    (error,) = errors
    if dialect == "openai":
        assert error["error"]["message"] == message and error["error"]["type"] == kind
    elif dialect == "anthropic":
        assert error["type"] == "error"
        assert error["error"] == {"type": ANTHROPIC_TYPE[status], "message": message}
    else:
        assert error["error"] == {"code": status, "message": message, "status": GOOGLE_STATUS[status]}
    assert "[DONE]" not in reply.text and "message_stop" not in reply.text
    record = edge.sink.record_of(reply.headers["x-request-id"], AnalyticsRecord)
    assert record.streamed and record.status_code == 502 and record.error_type == "upstream_stream_error"


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini"])
def test_an_error_chunk_followed_by_done_counts_as_failed_too(edge, dialect):
    """A vendor that ends its failed stream with [DONE] all the same: the client still gets one error event (an
    OpenAI client the vendor's, then its [DONE]), and the request is accounted as failed, not as a 200."""
    reply = stream_raw(edge, dialect, "mock-err-done")
    assert reply.status_code == 200
    errors = error_events(dialect, reply.text)
    assert len(errors) == 1, reply.text
    assert VENDOR_ERRORS["mock"][1] in json.dumps(errors[0])
    assert ("[DONE]" in reply.text) is (dialect == "openai")  # relayed as the vendor sent it
    record = edge.sink.record_of(reply.headers["x-request-id"], AnalyticsRecord)
    assert record.streamed and record.status_code == 502 and record.error_type == "upstream_stream_error"


def test_the_sdks_raise_the_vendors_in_band_error(edge):
    """What the SDKs make of it: the vendor's message and type (or the client's vendor's type for its status)."""
    for model, expected in [
        ("anthropic-err", {"type": "overloaded_error", "message": "Overloaded"}),
        ("mock-err", {"type": "api_error", "message": VENDOR_ERRORS["mock"][1]}),
    ]:
        with pytest.raises(anthropic.APIStatusError) as raised:
            with claude_client(edge).messages.stream(
                model=model, max_tokens=100, messages=[{"role": "user", "content": WORDS}]
            ) as events:
                "".join(events.text_stream)
        assert raised.value.body["error"] == expected
    with pytest.raises(openai.APIError) as overloaded:
        list(
            oai(edge).chat.completions.create(
                model="google-err", stream=True, messages=[{"role": "user", "content": WORDS}]
            )
        )
    assert overloaded.value.message == VENDOR_ERRORS["google"][1] and overloaded.value.type == "UNAVAILABLE"


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
SCREENSHOT = {"name": "screenshot", "description": "the screen", "input_schema": {"type": "object", "properties": {}}}


@pytest.mark.parametrize("model", [GPT, GEMINI])
def test_images_in_a_tool_result_reach_the_model(edge, mock_upstream, model):
    """An Anthropic client's `tool_result` holding an image: OpenAI's tool message takes text only, so the image
    follows in a user message, named by its call; Gemini gets it beside the functionResponse, in the same turn."""
    messages = [
        {"role": "user", "content": "take a screenshot"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_shot1", "name": "screenshot", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_shot1",
                    "content": [
                        {"type": "text", "text": "the screen"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    ],
                },
                {"type": "text", "text": "what is on it?"},
            ],
        },
    ]
    reply = claude_client(edge).messages.create(model=model, max_tokens=50, tools=[SCREENSHOT], messages=messages)
    assert reply.content and reply.stop_reason == "end_turn"
    sent = httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]["body"]
    label = "The result of tool call toolu_shot1 includes these images:"
    if model == GPT:
        assert sent["messages"][-2] == {"role": "tool", "tool_call_id": "toolu_shot1", "content": "the screen"}
        assert sent["messages"][-1] == {
            "role": "user",
            "content": [
                {"type": "text", "text": label},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "text", "text": "what is on it?"},
            ],
        }
    else:
        turn = sent["contents"][-1]
        assert turn["role"] == "user" and turn["parts"][0]["functionResponse"]["name"] == "screenshot"
        assert turn["parts"][1:] == [
            {"text": label},
            {"inlineData": {"mimeType": "image/png", "data": PNG}},
            {"text": "what is on it?"},
        ]
