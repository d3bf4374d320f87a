"""Where a client's dialect and its LLM's vendor differ, the client must get what its own vendor would answer:
stop sequences for Anthropic clients, tool-call-only answers for OpenAI clients, a vendor's in-band stream error
for every client, images in tool results. Driven with the stock SDKs against the mock LLM, whose answers in each
vendor's own shape are the reference."""

from __future__ import annotations

import anthropic
import openai
import pytest

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
