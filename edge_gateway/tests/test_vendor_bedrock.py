"""AWS Bedrock (Converse API) behind the edge: the stock `openai` and `anthropic` SDKs, unchanged, against the mock
speaking Bedrock's wire format (SigV4 verified with botocore, binary event-stream frames, AWS error shapes)."""

from __future__ import annotations

import httpx
import openai
import pytest
from botocore.auth import SigV4Auth

from shared_sdk.snapshot import AppConfig

from .support import CLIENT_KEY, encrypt, llm, make_snapshot, run_edge

AWS_KEY = "AKIDMOCKBEDROCK:mock-bedrock-secret"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
LLAMA = "meta.llama3-70b-instruct-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

FAULTS = {
    "400": "status=400",
    "429": "status=429; retry_after=0",
    "503": "status=503",
    "midway": "error_after_chunks=3; chunk_delay_ms=50",  # paced: the stream has started when it fails
}


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    region = {"region": "eu-central-1"}
    good = llm(
        1,
        "bedrock",
        mock_upstream,
        vendor="bedrock",
        default_model=MODEL,
        metadata=region,
        api_key_encrypted=encrypt(AWS_KEY),
    )
    wrong = llm(
        2,
        "bedrock-wrong-secret",
        mock_upstream,
        vendor="bedrock",
        default_model="wrong-secret-model",
        metadata=region,
        api_key_encrypted=encrypt("AKIDMOCKBEDROCK:not-the-secret"),
        max_retries=0,
    )
    llama = llm(
        3,
        "bedrock-llama",
        mock_upstream,
        vendor="bedrock",
        default_model=LLAMA,
        metadata=region,
        api_key_encrypted=encrypt(AWS_KEY),
    )
    nova = llm(
        4,
        "bedrock-nova",
        mock_upstream,
        vendor="bedrock",
        default_model=NOVA,
        metadata=region,
        api_key_encrypted=encrypt(AWS_KEY),
    )
    faulty = [
        llm(
            10 + i,
            f"bedrock-{name}",
            mock_upstream,
            vendor="bedrock",
            default_model=f"{name}-model",
            metadata=region,
            api_key_encrypted=encrypt(AWS_KEY),
            extra_headers={"x-mock-fault": fault},
            max_retries=0,
        )
        for i, (name, fault) in enumerate(FAULTS.items())
    ]
    ids = [1, 2, 3, 4, *(f.id for f in faulty)]
    snap = make_snapshot(
        mock_upstream, llms=[good, wrong, llama, nova, *faulty], apps=[AppConfig(id=1, name="one", llm_ids=ids)]
    )
    with run_edge(snap, tmp_path_factory.mktemp("edge")) as running:
        yield running


def client(edge) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def last_request(mock: str) -> dict:
    return httpx.get(f"{mock}/_mock/requests", params={"limit": 1}).json()["data"][-1]


def test_chat_is_translated_to_converse_and_signed(edge, upstream):
    reply = client(edge).chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello fjord"}],
        max_tokens=50,
        temperature=0.2,
    )
    assert reply.choices[0].message.content == "Echo: hello fjord"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens == 4 and reply.usage.completion_tokens == 4
    seen = last_request(upstream)
    assert seen["path"] == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse" or seen["path"].endswith(
        "v1:0/converse"
    )
    assert seen["status"] == 200
    assert seen["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDMOCKBEDROCK/")
    assert "/eu-central-1/bedrock/aws4_request" in seen["headers"]["authorization"]
    assert CLIENT_KEY not in str(seen["headers"])
    body = seen["body"]
    assert body["system"] == [{"text": "be brief"}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "hello fjord"}]}]
    assert body["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.2}


def test_streamed_chat_arrives_as_openai_chunks(edge, upstream):
    stream = client(edge).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream me please"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    seen = last_request(upstream)
    assert seen["path"].endswith("/converse-stream") and seen["status"] == 200


def test_tool_calls_round_trip_plain_and_streamed(edge, upstream):
    c = client(edge)
    reply = c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "call tool get_weather"}], tools=[WEATHER]
    )
    (call,) = reply.choices[0].message.tool_calls or []
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and call.function.arguments == '{"city":"mock"}'
    sent = last_request(upstream)["body"]["toolConfig"]
    assert sent["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"] == ["city"]

    follow_up = c.chat.completions.create(
        model=MODEL,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "call tool get_weather"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert follow_up.choices[0].message.content == "Echo: sunny"
    turns = last_request(upstream)["body"]["messages"]
    assert turns[1]["content"][0]["toolUse"]["toolUseId"] == call.id
    assert turns[2]["content"][0]["toolResult"] == {"toolUseId": call.id, "content": [{"text": "sunny"}]}

    stream = c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "call tool"}], tools=[WEATHER], stream=True
    )
    deltas = [d for chunk in stream if chunk.choices for d in chunk.choices[0].delta.tool_calls or ()]
    assert deltas[0].function.name == "get_weather" and deltas[0].id.startswith("tooluse_")
    assert "".join(d.function.arguments or "" for d in deltas) == '{"city":"mock"}'


def test_a_streamed_answer_of_tool_calls_only_has_null_content_as_at_openai(edge, upstream):
    """The OpenAI SDK's accumulated message: `content` None beside the calls (as OpenAI's, and as the same call
    unstreamed), while a text stream still opens with `content: ""`."""
    c = client(edge)
    asked = {"model": MODEL, "tools": [WEATHER], "messages": [{"role": "user", "content": "call tool"}]}
    assert c.chat.completions.create(**asked).choices[0].message.content is None
    with c.chat.completions.stream(**asked) as events:
        message = events.get_final_completion().choices[0].message
    assert message.content is None and message.tool_calls[0].function.name == "get_weather"
    chunks = list(c.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user", "content": "hi"}]))
    assert (chunks[0].choices[0].delta.role, chunks[0].choices[0].delta.content) == ("assistant", "")


def test_the_anthropic_sdk_talks_to_a_bedrock_model(edge, upstream):
    anthropic = pytest.importorskip("anthropic")
    claude = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    message = claude.messages.create(
        model=MODEL, max_tokens=100, system="be brief", messages=[{"role": "user", "content": "hi from claude"}]
    )
    assert message.content[0].text == "Echo: hi from claude"
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 5
    with claude.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "stream via claude"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: stream via claude"
    assert final.usage.output_tokens == 5


@pytest.mark.parametrize(
    ("model", "stops", "paths"),
    [
        (MODEL, ["###", "STOP"], ["/stop_sequence", "/delta/stop_sequence"]),  # Claude names it when asked to
        (LLAMA, ["STOP"], None),  # a model that does not: the one sequence asked is the one it stopped on
    ],
)
def test_a_stop_sequence_reaches_an_anthropic_client_as_anthropic_reports_it(edge, upstream, model, stops, paths):
    """Converse's `stopReason: stop_sequence` is Anthropic's `stop_reason: "stop_sequence"` with the sequence, in
    full and streamed answers; an OpenAI client's finish_reason stays "stop", as at OpenAI."""
    anthropic = pytest.importorskip("anthropic")
    claude = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    asked = {"model": model, "max_tokens": 100, "stop_sequences": stops}
    user = [{"role": "user", "content": "alpha beta STOP gamma"}]
    message = claude.messages.create(**asked, messages=user)
    assert last_request(upstream)["body"].get("additionalModelResponseFieldPaths") == paths
    assert message.content[0].text == "Echo: alpha beta "
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "STOP")
    with claude.messages.stream(**asked, messages=user) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "STOP")
    assert final.content[0].text == "Echo: alpha beta "
    plain = claude.messages.create(**asked, messages=[{"role": "user", "content": "no sequence here"}])
    assert (plain.stop_reason, plain.stop_sequence) == ("end_turn", None)
    reply = client(edge).chat.completions.create(model=model, messages=user, stop=stops)
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].message.content == "Echo: alpha beta "
    chunks = list(client(edge).chat.completions.create(model=model, messages=user, stop=stops, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: alpha beta "


@pytest.mark.parametrize(
    ("model", "text", "sequence"),
    [
        (NOVA, "Echo: alpha beta ", "STOP"),  # Nova ends its text with the sequence: cut off, and it names it
        (LLAMA, "Echo: alpha beta ", None),  # Llama cuts it and names none: a stop sequence, which one unknown
    ],
)
def test_a_model_that_does_not_name_which_of_several_sequences_stopped_it(edge, upstream, model, text, sequence):
    """Several stop sequences to a non-Claude Bedrock model (Converse says `stopReason: stop_sequence`, not which):
    the Anthropic client still learns it stopped on one (not `end_turn`), and which one when the text shows it,
    full and streamed; an OpenAI client's finish_reason stays "stop", as at OpenAI."""
    anthropic = pytest.importorskip("anthropic")
    claude = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    asked = {"model": model, "max_tokens": 100, "stop_sequences": ["###", "STOP"]}
    user = [{"role": "user", "content": "alpha beta STOP gamma"}]
    message = claude.messages.create(**asked, messages=user)
    assert last_request(upstream)["body"].get("additionalModelResponseFieldPaths") is None
    assert message.content[0].text == text
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", sequence)
    with claude.messages.stream(**asked, messages=user) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == text
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", sequence)
    plain = claude.messages.create(**asked, messages=[{"role": "user", "content": "no sequence here"}])
    assert (plain.stop_reason, plain.stop_sequence) == ("end_turn", None)
    reply = client(edge).chat.completions.create(model=model, messages=user, stop=["###", "STOP"])
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].message.content == text
    chunks = list(client(edge).chat.completions.create(model=model, messages=user, stop=["###", "STOP"], stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text


@pytest.mark.parametrize(
    ("stop", "sequence"),
    [("STOP", "STOP"), (["STOP"], "STOP"), (["S", "STOP"], "S")],  # "S" is met first: Nova stops there
)
def test_nova_never_hands_the_stop_sequence_back_in_the_text(edge, upstream, stop, sequence):
    """Amazon Nova ends its text with the sequence it stopped on; OpenAI's and Anthropic's answers never hold it:
    the edge cuts it off, full and streamed, in token pieces or in one (`chunks=1`), and leaves a text that does
    not end on one whole."""
    user = [{"role": "user", "content": "alpha beta STOP gamma"}]
    oai = client(edge)
    reply = oai.chat.completions.create(model=NOVA, messages=user, stop=stop)
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == ("Echo: alpha beta ", "stop")
    for pieces in ({}, {"x-mock-fault": "chunks=1"}):
        chunks = list(
            oai.chat.completions.create(model=NOVA, messages=user, stop=stop, stream=True, extra_headers=pieces)
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: alpha beta "
    plain = [{"role": "user", "content": "no sequence here"}]
    streamed = oai.chat.completions.create(model=NOVA, messages=plain, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "Echo: no sequence here"
    anthropic = pytest.importorskip("anthropic")
    claude = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    asked = {"model": NOVA, "max_tokens": 100, "stop_sequences": [stop] if isinstance(stop, str) else stop}
    message = claude.messages.create(**asked, messages=user)
    assert (message.content[0].text, message.stop_reason, message.stop_sequence) == (
        "Echo: alpha beta ",
        "stop_sequence",
        sequence,
    )


@pytest.mark.parametrize(
    ("name", "status", "error", "code"),
    [
        ("400", 400, openai.BadRequestError, "ValidationException"),
        ("429", 429, openai.RateLimitError, "ThrottlingException"),
        ("503", 502, openai.InternalServerError, "upstream_error"),
    ],
)
def test_bedrock_errors_arrive_in_openai_shape(edge, upstream, name, status, error, code):
    with pytest.raises(error) as caught:
        client(edge).chat.completions.create(model=f"bedrock-{name}", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == status
    assert caught.value.body["code"] == code
    seen = last_request(upstream)
    assert seen["status"] == int(name)
    assert seen["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 ")


def test_a_wrong_secret_is_refused_by_the_signature_check(edge, upstream):
    with pytest.raises(openai.InternalServerError) as caught:
        client(edge).chat.completions.create(model="bedrock-wrong-secret", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_auth_failed"
    seen = last_request(upstream)
    assert seen["status"] == 403


def test_embeddings_are_refused_with_a_clear_error(edge, upstream):
    with pytest.raises(openai.BadRequestError) as caught:
        client(edge).embeddings.create(model=MODEL, input="hello")
    assert "does not offer embeddings" in str(caught.value)


def test_a_stream_that_fails_midway_ends_with_an_error_event(edge, upstream):
    stream = client(edge).chat.completions.create(
        model="bedrock-midway", messages=[{"role": "user", "content": "a long answer to break"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert "modelStreamErrorException" in str(caught.value)


def test_the_responses_api_is_translated_for_bedrock(edge, upstream):
    c = client(edge)
    answer = c.responses.create(model=MODEL, input="respond please", instructions="be brief")
    assert answer.output_text == "Echo: respond please"
    assert answer.usage is not None and answer.usage.output_tokens == 4
    assert last_request(upstream)["body"]["system"] == [{"text": "be brief"}]
    with c.responses.stream(model=MODEL, input="stream a response") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == "Echo: stream a response" and final.status == "completed"


def test_legacy_completions_on_bedrock(edge, upstream):
    reply = client(edge).completions.create(model=MODEL, prompt="complete me", max_tokens=20)
    assert reply.choices[0].text == "Echo: complete me"
    assert last_request(upstream)["body"]["inferenceConfig"] == {"maxTokens": 20}


def test_native_pass_through_is_signed_and_keeps_the_event_stream(edge, upstream):
    path = f"/llm/call/bedrock/model/{MODEL}/converse-stream"
    body = {"messages": [{"role": "user", "content": [{"text": "native"}]}]}
    with httpx.stream("POST", edge.url + path, json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as r:
        raw = b"".join(r.iter_raw())
    assert r.status_code == 200, raw[:300]
    assert r.headers["content-type"] == "application/vnd.amazon.eventstream"
    assert b"messageStop" in raw and b"metadata" in raw
    seen = last_request(upstream)
    assert seen["status"] == 200 and seen["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 ")


def test_frames_decode_as_botocore_decodes_them_and_damage_is_caught():
    from botocore.eventstream import EventStreamBuffer

    from edge_gateway.errors import UpstreamError
    from edge_gateway.providers.bedrock_stream import EventStreamSplitter, decode_frame
    from fjordgate.mock_llm.bedrock_format import event_frame, exception_frame, frame

    frames = [
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " héllo"}}),
        exception_frame("throttlingException", {"message": "slow down"}),
        frame({}, b""),
    ]
    wire = b"".join(frames)
    splitter = EventStreamSplitter()
    cut = [f for i in range(0, len(wire), 7) for f in splitter.feed(wire[i : i + 7])]  # arbitrary network pieces
    assert cut == frames and splitter.tail() == b""
    reference = EventStreamBuffer()
    reference.add_data(wire)
    for ours, theirs in zip(cut, reference, strict=True):
        assert decode_frame(ours) == (dict(theirs.headers), bytes(theirs.payload))
    damaged = bytearray(frames[0])
    damaged[20] ^= 1
    with pytest.raises(UpstreamError):
        decode_frame(bytes(damaged))
    with pytest.raises(UpstreamError):
        EventStreamSplitter().feed(b"\xff\xff\xff\xff" + b"\0" * 12)


def test_what_converse_cannot_express_is_a_clear_400(edge, upstream):
    c = client(edge)
    link = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(openai.BadRequestError) as caught:
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": link}])
    assert "base64 data URLs" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], n=2)
    assert "'n' must be 1" in caught.value.body["message"]
    image = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    reply = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": image}])
    assert reply.choices[0].message.content == "Echo: what is this"
    sent = last_request(upstream)["body"]["messages"][0]["content"][1]
    assert sent == {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}


def test_a_pdf_goes_as_a_document_block(edge, upstream):
    """An inline PDF (`file` part) is a Converse `document` block with a name Converse accepts."""
    pdf = {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "Q3 report.v2.pdf"},
    }
    content = [pdf, {"type": "text", "text": "summarise"}]
    reply = client(edge).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    assert reply.choices[0].message.content == "Echo: summarise"
    sent = last_request(upstream)["body"]["messages"][0]["content"][0]
    assert sent == {"document": {"format": "pdf", "name": "Q3 report v2 1", "source": {"bytes": "JVBERi0="}}}


def test_a_signing_fault_is_the_edges_500_not_the_clients_400(edge, monkeypatch, caplog):
    """The edge answers a body its translation cannot read (a TypeError there) as the client's 400; a TypeError
    from signing is not about the body, and must not read as the client's fault."""

    def broken_signer(self, request):
        raise TypeError("botocore broke")

    monkeypatch.setattr(SigV4Auth, "add_auth", broken_signer)
    answer = httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.status_code == 500, answer.text
    assert "shape its API defines" not in answer.text
    assert any(
        "signing the request for LLM 'bedrock' failed" in r.getMessage() + str(r.exc_info) for r in caplog.records
    )


def _logged(mock: str) -> list[dict]:
    return httpx.get(f"{mock}/_mock/requests").json()["data"]


@pytest.mark.parametrize("model", [MODEL, NOVA, LLAMA])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_an_openai_temperature_above_converses_1_is_openais_400_naming_it(edge, upstream, model, api):
    """Converse takes `temperature` 0 to 1 for every model (OpenAI's API: 0 to 2): the client's own 400, naming
    its field, before any call to AWS; not Bedrock's ValidationException about `inferenceConfig`."""
    with pytest.raises(openai.BadRequestError) as refused:
        if api == "chat":
            client(edge).chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], temperature=2
            )
        else:
            client(edge).responses.create(model=model, input="hi", temperature=1.5)
    error = refused.value.body
    assert error["param"] == "temperature" and error["code"] == "unsupported_value"
    assert "'temperature' above 1" in error["message"] and "Bedrock" in error["message"]
    assert "inferenceConfig" not in error["message"]
    assert _logged(upstream) == []
    answered = client(edge).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], temperature=1
    )
    assert answered.choices[0].message.content == "Echo: hi"


def test_a_gemini_temperature_above_converses_1_is_googles_400(edge, upstream):
    from google import genai
    from google.genai import errors, types

    gemini = genai.Client(api_key=CLIENT_KEY, http_options={"base_url": edge.url})
    with pytest.raises(errors.ClientError) as refused:
        gemini.models.generate_content(
            model="bedrock-nova", contents="hi", config=types.GenerateContentConfig(temperature=1.5)
        )
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    assert "generation_config.temperature" in refused.value.message and "Bedrock" in refused.value.message
    assert _logged(upstream) == []


def test_more_anthropic_stop_sequences_than_converse_takes_is_anthropics_400(edge, upstream):
    """Anthropic's API sets no bound on `stop_sequences`, Converse takes 2500: more is Anthropic's 400."""
    anthropic = pytest.importorskip("anthropic")
    claude = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    asked = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(**asked, stop_sequences=[f"s{i}" for i in range(2501)])
    error = refused.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("stop_sequences: ") and "Bedrock, accepts at most 2500" in error["message"]
    assert _logged(upstream) == []
    answered = claude.messages.create(**asked, stop_sequences=[f"s{i}" for i in range(2500)])
    assert answered.content[0].text == "Echo: hi"
