"""A value valid in the client's API but beyond the range of the vendor its request is translated for is the
client's 400 in its own API's words, naming its own field, before any vendor call: never the other vendor's
refusal of a field the client never sent, never a value clamped or a tool silently dropped.

Found with the mock LLM validating fields as each vendor does: an OpenAI `temperature` of 1.5 to an Anthropic
LLM came back as Anthropic's `temperature: Input should be less than or equal to 1`; five Anthropic
`stop_sequences` to an OpenAI-compatible LLM as OpenAI's `Invalid 'stop'`; a Gemini client's `googleSearch`
was dropped and the answer made without it. Driven with the stock SDKs (openai, anthropic, google-genai).
"""

from __future__ import annotations

import hashlib

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

from .support import CLIENT_KEY, ModelPriceConfig, llm, make_snapshot, run_edge

GPT = "mock-gpt"
CLAUDE = "claude-opus-4-5"
GEMINI = "gemini-2.5-flash"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    llms = [
        llm(1, "gpt", f"{mock_upstream}/v1", allowed_models=[GPT]),
        llm(2, "claude", mock_upstream, vendor="anthropic", default_model=CLAUDE, allowed_models=[CLAUDE]),
        llm(3, "gemini", mock_upstream, vendor="google", default_model=GEMINI, allowed_models=[GEMINI]),
    ]
    snapshot = make_snapshot(
        mock_upstream,
        llms=llms,
        prices=[
            ModelPriceConfig(vendor="mock", model=GPT),
            ModelPriceConfig(vendor="anthropic", model=CLAUDE),
            ModelPriceConfig(vendor="google", model=GEMINI),
        ],
    )
    with run_edge(snapshot, tmp_path_factory.mktemp("ranges")) as running:
        yield running


def sent_to_vendor(mock_upstream: str) -> list[dict]:
    return httpx.get(f"{mock_upstream}/_mock/requests").json()["data"]


def oai(edge) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def claude_client(edge) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)


def gemini_client(edge) -> genai.Client:
    return genai.Client(api_key=CLIENT_KEY, http_options={"base_url": edge.url})


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_an_openai_temperature_above_anthropics_1_is_openais_400_naming_it(edge, mock_upstream, api):
    before = len(sent_to_vendor(mock_upstream))
    with pytest.raises(openai.BadRequestError) as refused:
        if api == "chat":
            oai(edge).chat.completions.create(model=CLAUDE, messages=HELLO, temperature=1.5)
        else:
            oai(edge).responses.create(model=CLAUDE, input="hello", temperature=1.5)
    error = refused.value.body
    assert error["param"] == "temperature" and error["code"] == "unsupported_value"
    assert "'temperature' above 1" in error["message"] and "Anthropic" in error["message"]
    assert "Input should be" not in error["message"]  # Anthropic's own words, about its own field
    assert len(sent_to_vendor(mock_upstream)) == before
    answered = oai(edge).chat.completions.create(model=CLAUDE, messages=HELLO, temperature=1)
    assert answered.choices[0].message.content == "Echo: hello"


def test_a_gemini_temperature_above_anthropics_1_is_googles_400_naming_it(edge, mock_upstream):
    client = gemini_client(edge)  # held: the SDK's HTTP client closes when its owner is collected
    before = len(sent_to_vendor(mock_upstream))
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(
            model=CLAUDE, contents="hello", config=types.GenerateContentConfig(temperature=1.5)
        )
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    assert "generation_config.temperature" in refused.value.message and "Anthropic" in refused.value.message
    assert len(sent_to_vendor(mock_upstream)) == before


@pytest.mark.parametrize(("model", "vendor", "most"), [(GPT, "OpenAI", 4), (GEMINI, "Google", 5)])
def test_more_anthropic_stop_sequences_than_the_vendor_takes_is_anthropics_400(
    edge, mock_upstream, model, vendor, most
):
    client = claude_client(edge)
    before = len(sent_to_vendor(mock_upstream))
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(
            model=model, max_tokens=50, messages=HELLO, stop_sequences=[f"s{i}" for i in range(most + 1)]
        )
    error = refused.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("stop_sequences: ") and f"{vendor}, accepts at most {most}" in error["message"]
    assert len(sent_to_vendor(mock_upstream)) == before
    answered = client.messages.create(
        model=model, max_tokens=50, messages=HELLO, stop_sequences=[f"s{i}" for i in range(most)]
    )
    assert answered.content[0].text == "Echo: hello"


def test_five_gemini_stop_sequences_to_openai_is_googles_400(edge, mock_upstream):
    client = gemini_client(edge)  # held: the SDK's HTTP client closes when its owner is collected
    before = len(sent_to_vendor(mock_upstream))
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(
            model=GPT, contents="hello", config=types.GenerateContentConfig(stop_sequences=list("abcde"))
        )
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    assert "generation_config.stop_sequences" in refused.value.message and "OpenAI" in refused.value.message
    assert len(sent_to_vendor(mock_upstream)) == before


def test_an_openai_user_longer_than_anthropics_user_id_goes_as_its_hash(edge, mock_upstream):
    """`user` and `user_id` are both opaque ids for the vendor's abuse tracking: a long one is sent hashed (the
    same user, the same id), a short one as is."""
    long_user = "tenant-42/" + "u" * 300
    client = oai(edge)
    answered = client.chat.completions.create(model=CLAUDE, messages=HELLO, user=long_user)
    assert answered.choices[0].message.content == "Echo: hello"
    assert sent_to_vendor(mock_upstream)[-1]["body"]["metadata"] == {
        "user_id": hashlib.sha256(long_user.encode()).hexdigest()
    }
    client.chat.completions.create(model=CLAUDE, messages=HELLO, user="alice")
    assert sent_to_vendor(mock_upstream)[-1]["body"]["metadata"] == {"user_id": "alice"}


@pytest.mark.parametrize(
    ("tool", "field"),
    [
        (types.Tool(google_search=types.GoogleSearch()), "google_search"),
        (types.Tool(code_execution=types.ToolCodeExecution()), "code_execution"),
        (types.Tool(url_context=types.UrlContext()), "url_context"),
    ],
    ids=["googleSearch", "codeExecution", "urlContext"],
)
def test_a_gemini_built_in_tool_for_another_vendor_is_googles_400(edge, mock_upstream, tool, field):
    client = gemini_client(edge)  # held: the SDK's HTTP client closes when its owner is collected
    before = len(sent_to_vendor(mock_upstream))
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(
            model=GPT, contents="news today?", config=types.GenerateContentConfig(tools=[tool])
        )
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    assert f"tools[0].{field}" in refused.value.message and "not supported" in refused.value.message
    assert len(sent_to_vendor(mock_upstream)) == before


def test_gemini_cached_content_for_another_vendor_is_googles_400(edge, mock_upstream):
    client = gemini_client(edge)  # held: the SDK's HTTP client closes when its owner is collected
    before = len(sent_to_vendor(mock_upstream))
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(
            model=CLAUDE, contents="and then?", config=types.GenerateContentConfig(cached_content="cachedContents/abc")
        )
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    assert "cached_content" in refused.value.message
    assert len(sent_to_vendor(mock_upstream)) == before
