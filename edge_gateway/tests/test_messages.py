"""The stock `anthropic` SDK at the edge root (`POST /v1/messages`, `count_tokens`), against an OpenAI-shaped
upstream (translated both ways) and an Anthropic-shaped one (passed through), with the edge's auth, budgets
and rate limits answering in Anthropic's error shape."""

from __future__ import annotations

import base64
import time
from decimal import Decimal

import anthropic
import httpx
import pydantic
import pytest

from shared_sdk.messages import AnalyticsRecord
from shared_sdk.snapshot import AppConfig, BudgetConfig, CredentialConfig, hash_credential

from .support import CLIENT_KEY, VENDOR_KEY, ModelPriceConfig, default_credentials, llm, make_snapshot, run_edge

LIMITED_KEY = "sk-client-limited-app3"
BUDGET_KEY = "sk-client-budget-app4"
GPT = "mock-gpt"
CLAUDE = "claude-opus-4-5"
WEATHER = {
    "name": "get_weather",
    "description": "weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    gpt = llm(1, "gpt", f"{mock_upstream}/v1", allowed_models=[GPT])
    claude = llm(2, "claude", mock_upstream, vendor="anthropic", default_model=CLAUDE, allowed_models=["claude-.*"])
    broken = {"x-mock-fault": "fail_after_chunks=3"}  # every stream of this LLM breaks after 3 events
    flaky = llm(3, "flaky", f"{mock_upstream}/v1", default_model="flaky-gpt", extra_headers=broken, max_retries=0)
    snap = make_snapshot(
        mock_upstream,
        llms=[gpt, claude, flaky],
        apps=[
            AppConfig(id=1, name="one", llm_ids=[1, 2, 3]),
            AppConfig(id=2, name="two", llm_ids=[]),
            AppConfig(id=3, name="limited", llm_ids=[1], rate_limit_rpm=1),
            AppConfig(id=4, name="broke", llm_ids=[1]),
        ],
        credentials=[
            *default_credentials(),
            CredentialConfig(key_hash=hash_credential(LIMITED_KEY), app_id=3, credential_id=10),
            CredentialConfig(key_hash=hash_credential(BUDGET_KEY), app_id=4, credential_id=11),
        ],
        budgets=[BudgetConfig(id=1, scope="app", target_id=4, limit=Decimal("0.000001"))],
        prices=[
            ModelPriceConfig(
                vendor="mock", model=GPT, prompt_per_million=Decimal("1000"), completion_per_million=Decimal("2000")
            ),
            ModelPriceConfig(vendor="anthropic", model=CLAUDE),
        ],
    )
    with run_edge(snap, tmp_path_factory.mktemp("edge")) as running:
        yield running


def client(edge, key: str = CLIENT_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=edge.url, api_key=key, max_retries=0)


def last_upstream_request(mock_upstream: str) -> dict:
    return httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_create_answers_a_message(edge, mock_upstream, model):
    reply = client(edge).messages.create(
        model=model,
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "hello fjord"}],
    )
    assert reply.type == "message" and reply.role == "assistant"
    assert "hello fjord" in reply.content[0].text
    assert reply.stop_reason == "end_turn"
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    seen = last_upstream_request(mock_upstream)
    assert CLIENT_KEY not in str(seen["headers"])
    if model == GPT:  # translated: Chat Completions went upstream, with the system prompt as a message
        assert seen["path"] == "/v1/chat/completions"
        assert seen["body"]["messages"][0] == {"role": "system", "content": "be brief"}
        assert seen["headers"]["authorization"] == f"Bearer {VENDOR_KEY}"
    else:  # passed through natively
        assert seen["path"] == "/v1/messages" and seen["body"]["system"] == "be brief"
        assert seen["headers"]["x-api-key"] == VENDOR_KEY


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_stream_helper_yields_text_and_final_message(edge, model):
    with client(edge).messages.stream(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "stream the fjord"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "stream the fjord" in text
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_tools_round_trip(edge, mock_upstream, model):
    c = client(edge)
    question = {"role": "user", "content": "weather in Oslo?"}
    reply = c.messages.create(
        model=model, max_tokens=200, tools=[WEATHER], tool_choice={"type": "any"}, messages=[question]
    )
    use = next(b for b in reply.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict)
    assert reply.stop_reason == "tool_use"
    with c.messages.stream(
        model=model, max_tokens=200, tools=[WEATHER], tool_choice={"type": "any"}, messages=[question]
    ) as stream:
        final = stream.get_final_message()
    streamed = next(b for b in final.content if b.type == "tool_use")
    assert streamed.name == "get_weather" and isinstance(streamed.input, dict)
    assert final.stop_reason == "tool_use"
    answer = c.messages.create(
        model=model,
        max_tokens=200,
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": [use.model_dump(include={"type", "id", "name", "input"})]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 18 C"}]},
        ],
    )
    assert answer.content and answer.stop_reason in ("end_turn", "tool_use")
    if model == GPT:
        sent = last_upstream_request(mock_upstream)["body"]["messages"]
        assert sent[1]["tool_calls"][0]["id"] == use.id
        assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "sunny, 18 C"}


def test_images_become_image_url_parts(edge, mock_upstream):
    client(edge).messages.create(
        model=GPT,
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {"type": "text", "text": "what is this?"},
                ],
            }
        ],
    )
    parts = last_upstream_request(mock_upstream)["body"]["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert parts[1] == {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_count_tokens(edge, mock_upstream, model):
    counted = client(edge).messages.count_tokens(
        model=model, system="be brief", messages=[{"role": "user", "content": "how many tokens is this?"}]
    )
    assert counted.input_tokens > 0
    if model == CLAUDE:  # the vendor's own count
        assert last_upstream_request(mock_upstream)["path"] == "/v1/messages/count_tokens"


def test_models_served_by_an_allow_list_pattern_are_retrievable(edge):
    assert client(edge).models.retrieve("claude-haiku-9").id == "claude-haiku-9"
    with pytest.raises(anthropic.NotFoundError):
        client(edge).models.retrieve("gpt-not-served")


def test_x_api_key_and_bearer_both_authenticate(edge):
    body = {"model": GPT, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    bearer = httpx.post(f"{edge.url}/v1/messages", json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert bearer.status_code == 200 and bearer.json()["type"] == "message"
    anonymous = httpx.post(f"{edge.url}/v1/messages", json=body)
    assert anonymous.status_code == 401
    assert anonymous.json()["type"] == "error"
    assert anonymous.json()["error"]["type"] == "authentication_error"


def test_errors_come_in_anthropic_shape(edge):
    with pytest.raises(anthropic.AuthenticationError) as unauthenticated:
        client(edge, "sk-wrong").messages.create(model=GPT, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert unauthenticated.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as unknown:
        client(edge).messages.create(
            model="no-such-model-xyz", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert unknown.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as missing:
        client(edge).messages.create(model=GPT, messages=[{"role": "user", "content": "x"}], max_tokens=0)
    assert "max_tokens" in missing.value.message


def test_budget_and_rate_limit_refusals(edge):
    with pytest.raises(anthropic.BadRequestError) as broke:
        client(edge, BUDGET_KEY).messages.create(model=GPT, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert broke.value.status_code == 400 and broke.value.body["error"]["type"] == "billing_error"
    limited = client(edge, LIMITED_KEY)
    limited.messages.create(model=GPT, max_tokens=10, messages=[{"role": "user", "content": "one"}])
    with pytest.raises(anthropic.RateLimitError) as second:
        limited.messages.create(model=GPT, max_tokens=10, messages=[{"role": "user", "content": "two"}])
    assert second.value.body["error"]["type"] == "rate_limit_error"
    assert second.value.response.headers.get("retry-after")


def test_client_headers_forwarded_under_the_allow_list(edge, mock_upstream):
    beta = {"anthropic-beta": "fine-grained-tool-streaming-2025-05-14"}
    body = {"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    client(edge).messages.create(model=CLAUDE, extra_headers=beta, **body)
    to_claude = last_upstream_request(mock_upstream)["headers"]
    assert to_claude["anthropic-beta"] == beta["anthropic-beta"] and to_claude["anthropic-version"] == "2023-06-01"
    assert to_claude["x-api-key"] == VENDOR_KEY
    client(edge).messages.create(model=GPT, extra_headers=beta, **body)
    to_gpt = last_upstream_request(mock_upstream)["headers"]
    assert "anthropic-beta" not in to_gpt and "anthropic-version" not in to_gpt
    chat = {"model": GPT, "messages": [{"role": "user", "content": "x"}]}
    headers = {
        "authorization": f"Bearer {CLIENT_KEY}",
        "openai-beta": "assistants=v2",
        "openai-organization": "org-client",
        "x-stainless-lang": "python",
    }
    assert httpx.post(f"{edge.url}/v1/chat/completions", json=chat, headers=headers).status_code == 200
    to_openai = last_upstream_request(mock_upstream)["headers"]
    assert to_openai["openai-beta"] == "assistants=v2"
    assert "openai-organization" not in to_openai and "x-stainless-lang" not in to_openai
    assert to_openai["authorization"] == f"Bearer {VENDOR_KEY}"


def test_a_stream_broken_midway_ends_with_an_anthropic_error_event(edge):
    with pytest.raises(anthropic.APIStatusError) as broken:
        with client(edge).messages.stream(
            model="flaky-gpt", max_tokens=100, messages=[{"role": "user", "content": "a long answer please"}]
        ) as stream:
            "".join(stream.text_stream)
    assert broken.value.body["error"]["type"] == "api_error"


def test_messages_are_accounted_like_chat(edge):
    raw = client(edge).messages.with_raw_response.create(
        model=GPT, max_tokens=20, messages=[{"role": "user", "content": "count me"}]
    )
    reply, request_id = raw.parse(), raw.headers["x-request-id"]
    assert reply._request_id == request_id  # the Anthropic SDK reads `request-id`
    records = edge.sink.of(AnalyticsRecord)
    deadline = time.monotonic() + 5
    while not [r for r in records if r.request_id == request_id] and time.monotonic() < deadline:
        time.sleep(0.05)  # the telemetry lane flushes about once a second
        records = edge.sink.of(AnalyticsRecord)
    record = [r for r in records if r.request_id == request_id][-1]
    assert record.app_id == 1 and record.llm_slug == "gpt" and record.status_code == 200
    assert record.prompt_tokens == reply.usage.input_tokens and record.completion_tokens == reply.usage.output_tokens
    assert record.cost > 0


class Forecast(pydantic.BaseModel):
    city: str
    celsius: float


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_parse_with_an_output_format_gets_the_structured_output(edge, mock_upstream, model):
    """`client.messages.parse(output_format=Model)` sends `output_config.format`; to an OpenAI-shaped LLM it is a
    `json_schema` response format, so the reply is JSON of the schema and not prose the parser fails on."""
    reply = client(edge).messages.parse(
        model=model,
        max_tokens=200,
        messages=[{"role": "user", "content": "the forecast for Oslo"}],
        output_format=Forecast,
    )
    assert reply.parsed_output == Forecast(city="mock", celsius=1.5)
    if model == GPT:
        sent = last_upstream_request(mock_upstream)["body"]
        assert sent["response_format"]["json_schema"]["schema"]["required"] == ["city", "celsius"]
