"""A translated `/v1/responses` request across its attempts, through a real edge with the stock `openai` SDK.

The edge translates such a request to Chat Completions once before any upstream call (what Chat Completions cannot
express is the client's 400) and gives that translation to the routed LLM's build, rather than translating again.
What must not follow from that: a retry that sends another body, or a fallback (another deployment, another
vendor, another model) that sends the routed LLM's translation instead of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from edge_gateway import pipeline
from edge_gateway.providers import responses, responses_shapes

from .support import CLIENT_KEY, AppConfig, FallbackTarget, PluginBinding, PluginConfig, llm, make_snapshot, run_edge

CLAUDE = "claude-sonnet-4-20250514"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
FAILING = {"x-mock-fault": "status=500"}


@pytest.fixture(scope="module")
def edge(mock_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    v1 = f"{mock_upstream}/v1"
    llms = [
        llm(1, "chat", v1, allowed_models=["mock-gpt"]),
        llm(2, "second", v1, default_model="second-gpt", allowed_models=["second-gpt"]),
        llm(3, "claude", mock_upstream, vendor="anthropic", default_model=CLAUDE, allowed_models=[CLAUDE]),
        # the mock answers the first request under the key with a 500, the next ones as usual
        llm(
            4,
            "retrying",
            v1,
            default_model="retry-gpt",
            allowed_models=["retry-gpt"],
            max_retries=1,
            extra_headers={"x-mock-fault": "status=500; fail_times=1; key=retrying"},
        ),
        llm(
            5,
            "to-claude",
            v1,
            default_model="to-claude-gpt",
            allowed_models=["to-claude-gpt"],
            max_retries=0,
            extra_headers=FAILING,
            fallbacks=[FallbackTarget(llm_slug="claude", model=CLAUDE)],
        ),
        llm(
            6,
            "to-second",
            v1,
            default_model="to-second-gpt",
            allowed_models=["to-second-gpt"],
            max_retries=0,
            extra_headers=FAILING,
            fallbacks=[FallbackTarget(llm_slug="second", model="second-gpt")],
        ),
        llm(
            7,
            "failing-claude",
            mock_upstream,
            vendor="anthropic",
            default_model="failing-claude",
            allowed_models=["failing-claude"],
            max_retries=0,
            extra_headers=FAILING,
            fallbacks=[FallbackTarget(llm_slug="second", model="second-gpt")],
        ),
        # a fallback whose own chain redacts the request (the PII redactor) behind one that does not
        llm(
            8,
            "redacting",
            v1,
            default_model="redacted-gpt",
            allowed_models=["redacted-gpt"],
            plugin_chain=[PluginBinding(plugin_slug="pii-redactor", order=1)],
        ),
        llm(
            9,
            "to-redacting",
            v1,
            default_model="to-redacting-gpt",
            allowed_models=["to-redacting-gpt"],
            max_retries=0,
            extra_headers=FAILING,
            fallbacks=[FallbackTarget(llm_slug="redacting", model="redacted-gpt")],
        ),
    ]
    redactor = PluginConfig(slug="pii-redactor", name="pii", import_path="plugins.pii_redactor.plugin:create_plugin")
    snap = make_snapshot(
        mock_upstream,
        llms=llms,
        apps=[AppConfig(id=1, name="one", llm_ids=list(range(1, 10)))],
        plugins=[redactor],
    )
    with run_edge(snap, tmp_path_factory.mktemp("edge")) as running:
        yield running


def client(edge: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def seen(upstream: str) -> list[dict[str, Any]]:
    """What the mock received since the test's reset, oldest first (the first turn's request included)."""
    data: list[dict[str, Any]] = httpx.get(f"{upstream}/_mock/requests").json()["data"]
    return data


def ask(edge: Any, model: str, stream: bool = False) -> str:
    """The typical translated request: instructions, a function tool, and a stored earlier turn; its text."""
    first = client(edge).responses.create(model="mock-gpt", input="my name is Ada")
    kwargs: dict[str, Any] = dict(
        model=model,
        instructions="Be brief.",
        input="what is my name?",
        tools=[WEATHER],
        previous_response_id=first.id,
    )
    if not stream:
        return client(edge).responses.create(**kwargs).output_text
    with client(edge).responses.stream(**kwargs) as events:
        return events.get_final_response().output_text


CHAT_MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "my name is Ada"},
    {"role": "assistant", "content": "Echo: my name is Ada"},
    {"role": "user", "content": "what is my name?"},
]
CHAT_TOOLS = [{"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}]


@pytest.fixture
def translations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The models the edge translated a Responses request for, in order (wherever the edge translates one)."""
    models: list[str] = []
    translate = responses_shapes.to_chat_request

    def counted(data: dict[str, Any], history: list[dict[str, Any]], model: str, stream: bool) -> dict[str, Any]:
        models.append(model)
        return translate(data, history, model, stream)

    monkeypatch.setattr(responses, "to_chat_request", counted)
    monkeypatch.setattr(pipeline, "to_chat_request", counted, raising=False)  # where the check once translated
    return models


@pytest.mark.parametrize("stream", [False, True], ids=["full", "stream"])
def test_a_translated_request_is_translated_once(edge, upstream, translations, stream):
    assert ask(edge, "second-gpt", stream) == "Echo: what is my name?"
    # the first turn (mock-gpt) once, this one once: its check before the call is the routed LLM's request
    assert translations == ["mock-gpt", "second-gpt"]
    body = seen(upstream)[-1]["body"]
    assert body["model"] == "second-gpt" and body["messages"] == CHAT_MESSAGES and body["tools"] == CHAT_TOOLS


def test_a_request_the_check_refuses_never_reaches_the_vendor(edge, upstream, translations):
    with pytest.raises(openai.BadRequestError) as refused:
        client(edge).responses.create(model="second-gpt", input="hi", tools=[{"type": "web_search"}])
    assert refused.value.status_code == 400 and translations == ["second-gpt"]
    assert seen(upstream) == []


def test_a_retry_after_a_500_sends_the_same_body(edge, upstream):
    assert ask(edge, "retry-gpt") == "Echo: what is my name?"
    calls = [r for r in seen(upstream) if r["model"] == "retry-gpt"]
    assert [r["status"] for r in calls] == [500, 200]
    assert calls[0]["body"] == calls[1]["body"]
    assert calls[1]["body"]["messages"] == CHAT_MESSAGES and calls[1]["body"]["tools"] == CHAT_TOOLS


@pytest.mark.parametrize("stream", [False, True], ids=["full", "stream"])
def test_a_fallback_of_another_model_sends_its_own_translation(edge, upstream, translations, stream):
    assert ask(edge, "to-second-gpt", stream) == "Echo: what is my name?"
    assert translations == ["mock-gpt", "to-second-gpt", "second-gpt"]
    failed, answered = seen(upstream)[-2:]
    assert (failed["model"], failed["status"], answered["model"], answered["status"]) == (
        "to-second-gpt",
        500,
        "second-gpt",
        200,
    )
    assert answered["body"] == {**failed["body"], "model": "second-gpt"}
    assert answered["body"]["messages"] == CHAT_MESSAGES and answered["body"]["tools"] == CHAT_TOOLS


def test_a_fallback_to_another_vendor_gets_its_format_and_model(edge, upstream):
    assert "what is my name?" in ask(edge, "to-claude-gpt")
    answered = seen(upstream)[-1]
    assert answered["path"] == "/v1/messages" and answered["status"] == 200
    body = answered["body"]
    assert body["model"] == CLAUDE and body["system"] == "Be brief."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER["parameters"]}
    ]


def test_a_fallback_after_an_anthropic_build_gets_a_clean_chat_request(edge, upstream):
    """The routed LLM's Anthropic build took the kept translation; the fallback's chat body is a fresh one."""
    assert ask(edge, "failing-claude") == "Echo: what is my name?"
    failed, answered = seen(upstream)[-2:]
    assert failed["path"] == "/v1/messages" and failed["status"] == 500
    assert answered["path"] == "/v1/chat/completions" and answered["status"] == 200
    body = answered["body"]
    assert body["model"] == "second-gpt" and body["messages"] == CHAT_MESSAGES and body["tools"] == CHAT_TOOLS


def test_a_fallback_sends_the_request_its_own_chain_changed(edge, upstream):
    """The routed LLM's check translated the client's text; the fallback's chain redacts it, and its vendor gets
    the redacted text, not the routed LLM's translation."""
    reply = client(edge).responses.create(
        model="to-redacting-gpt", instructions="Be brief.", input="I am ada@example.com"
    )
    assert "ada@example.com" not in reply.output_text
    failed, answered = seen(upstream)[-2:]
    assert failed["model"] == "to-redacting-gpt" and failed["body"]["messages"][-1]["content"] == "I am ada@example.com"
    assert answered["model"] == "redacted-gpt" and answered["status"] == 200
    assert "ada@example.com" not in str(answered["body"]) and answered["body"]["messages"][0]["content"] == "Be brief."
