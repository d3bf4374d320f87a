"""What a vendor's translation cannot express is the caller's 400, in its own format, never the edge's 500.

Found by trying as a user would: embeddings on an Anthropic LLM answered 500 (the provider's refusal was raised
where only upstream failures were handled), `n=2` on Anthropic silently answered one choice, and a Messages call
to an OpenAI LLM was not bounded by the LLM's `max_response_bytes`.
"""

from __future__ import annotations

import anthropic
import httpx
import openai
import orjson
import pytest

from edge_gateway.providers.anthropic import AnthropicProvider
from edge_gateway.providers.base import OpenAIRequest, UpstreamSpec
from edge_gateway.providers.openai import OpenAIProvider

from .support import CLIENT_KEY, FallbackTarget, ModelPriceConfig, llm, make_snapshot, run_edge

CLAUDE = "claude-sonnet-4-20250514"


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    claude = llm(1, "claude", mock_upstream, vendor="anthropic", default_model=CLAUDE, allowed_models=["claude-.*"])
    small = llm(2, "small", f"{mock_upstream}/v1", vendor="openai", default_model="gpt-small", max_response_bytes=600)
    # A Claude LLM whose fallback could embed: a refusal before any call is still the client's 400 at once.
    claude_fb = llm(
        3,
        "claude-fb",
        mock_upstream,
        vendor="anthropic",
        default_model="claude-fb-1",
        fallbacks=[FallbackTarget(llm_slug="small")],
    )
    # A failing OpenAI-shaped LLM whose only fallback is Anthropic: an embeddings call skips that fallback.
    down = llm(
        4,
        "down",
        f"{mock_upstream}/v1",
        vendor="openai",
        default_model="down-embed",
        max_retries=0,
        extra_headers={"x-mock-fault": "status=503"},
        fallbacks=[FallbackTarget(llm_slug="claude")],
    )
    prices = [
        ModelPriceConfig(vendor="anthropic", model=CLAUDE),
        ModelPriceConfig(vendor="openai", model="gpt-small"),
    ]
    snapshot = make_snapshot(mock_upstream, llms=[claude, small, claude_fb, down], prices=prices)
    with run_edge(snapshot, tmp_path_factory.mktemp("refusals")) as e:
        yield e


def oai(edge) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.mark.parametrize("model", [CLAUDE, "claude-fb-1"])
def test_embeddings_on_anthropic_are_a_400_naming_the_model(edge, model):
    with pytest.raises(openai.BadRequestError) as caught:
        oai(edge).embeddings.create(model=model, input="hello")
    error = caught.value.body
    assert caught.value.status_code == 400
    assert error["code"] == "unsupported_operation" and error["param"] == "model"
    assert "does not offer embeddings" in error["message"]


def test_n_above_one_on_anthropic_is_refused_not_silently_one_choice(edge, mock_upstream):
    before = len(httpx.get(f"{mock_upstream}/_mock/requests").json()["data"])
    with pytest.raises(openai.BadRequestError) as caught:
        oai(edge).chat.completions.create(model=CLAUDE, n=2, messages=[{"role": "user", "content": "two please"}])
    assert caught.value.body["param"] == "n" and caught.value.body["code"] == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError):
        oai(edge).completions.create(model=CLAUDE, n=3, prompt="three please")
    assert len(httpx.get(f"{mock_upstream}/_mock/requests").json()["data"]) == before  # nothing went upstream
    one = oai(edge).chat.completions.create(model=CLAUDE, n=1, messages=[{"role": "user", "content": "one"}])
    assert len(one.choices) == 1


def test_an_untranslatable_content_part_is_a_400_in_each_format(edge):
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(openai.BadRequestError) as caught:
        oai(edge).chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": [audio]}])
    assert caught.value.body["param"] == "messages"


def test_messages_to_an_openai_llm_keep_its_response_bound(edge):
    client = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    assert client.messages.create(model="gpt-small", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="gpt-small", max_tokens=20, messages=[{"role": "user", "content": "x" * 2000}])
    assert caught.value.status_code == 502
    assert (
        caught.value.body["type"] == "error"
        and "exceeds the limit of 600 bytes" in caught.value.body["error"]["message"]
    )


def _spec(vendor: str) -> UpstreamSpec:
    return UpstreamSpec(1, "x", vendor, "http://vendor/v1", "k", {}, 1.0, 1.0, 1.0, max_response_bytes=1234)


@pytest.mark.parametrize("kind", ["messages", "count_tokens"])
def test_every_messages_build_carries_the_llm_bound(kind):
    raw = b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'
    call = OpenAIRequest.from_data(kind, raw, orjson.loads(raw))
    assert AnthropicProvider().build(_spec("anthropic"), call, "m").max_response_bytes == 1234
    if kind == "messages":
        assert OpenAIProvider().build(_spec("openai"), call, "m").max_response_bytes == 1234


def test_the_refusal_comes_in_the_callers_format(edge):
    """A Gemini-format caller asking an Anthropic LLM for two candidates gets Google's error document."""
    reply = httpx.post(
        f"{edge.url}/v1beta/models/{CLAUDE}:generateContent",
        headers={"x-goog-api-key": CLIENT_KEY},
        json={"contents": [{"role": "user", "parts": [{"text": "two"}]}], "generationConfig": {"candidateCount": 2}},
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["status"] == "INVALID_ARGUMENT" and "'n' must be 1" in reply.json()["error"]["message"]


def test_a_fallback_that_cannot_translate_is_skipped(edge, mock_upstream):
    """The primary failed (503); its Anthropic fallback cannot embed: the client gets the primary's error, and
    the Anthropic vendor is never called."""
    httpx.post(f"{mock_upstream}/_mock/reset", timeout=5)
    with pytest.raises(openai.APIStatusError) as caught:
        oai(edge).embeddings.create(model="down-embed", input="hello")
    assert caught.value.status_code == 502 and caught.value.body["code"] == "upstream_error"
    paths = [r["path"] for r in httpx.get(f"{mock_upstream}/_mock/requests").json()["data"]]
    assert paths == ["/v1/embeddings"]
    # A chat call on the same LLM does reach the fallback, which answers.
    reply = oai(edge).chat.completions.create(model="down-embed", messages=[{"role": "user", "content": "fall back"}])
    assert "fall back" in (reply.choices[0].message.content or "")


MISSHAPEN_CHATS = [
    {"messages": [{"role": "user", "content": 5}]},
    {"messages": [{"role": "user", "content": [5]}]},
    {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]},
    {"messages": [{"role": "assistant", "tool_calls": 5}]},
    {"messages": [{"role": "assistant", "tool_calls": [{"function": 5}]}]},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [5]},
    {"messages": [{"role": "user", "content": "hi"}], "tool_choice": {"type": "function", "function": 5}},
]


@pytest.mark.parametrize("body", MISSHAPEN_CHATS)
def test_a_misshapen_chat_translated_for_anthropic_is_a_400_not_a_500(edge, body):
    """Found by sending wrong types where the chat format allows one: the translation read them with `.get` and
    iterated them, and a number there was a 500 (Anthropic, Gemini and Bedrock LLMs alike)."""
    reply = httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": CLAUDE, **body},
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert "does not have the shape its API defines" in reply.json()["error"]["message"]


def test_misshapen_anthropic_and_gemini_callers_get_their_own_400(edge):
    messages = httpx.post(
        f"{edge.url}/v1/messages",
        headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
        json={
            "model": "gpt-small",
            "max_tokens": 10,
            "system": [{"type": "text", "text": 5}],
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert messages.status_code == 400, messages.text
    assert messages.json()["type"] == "error" and messages.json()["error"]["type"] == "invalid_request_error"
    gemini = httpx.post(
        f"{edge.url}/v1beta/models/gpt-small:generateContent",
        headers={"x-goog-api-key": CLIENT_KEY},
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": 5}]},
    )
    assert gemini.status_code == 400, gemini.text
    assert gemini.json()["error"]["status"] == "INVALID_ARGUMENT"
