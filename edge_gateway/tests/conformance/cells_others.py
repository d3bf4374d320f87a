"""The other clients' cells of the conformance matrix: `anthropic`, `google-genai`, `litellm`, `langchain-openai`,
each stock and unchanged, pointed at the edge the way its users configure it."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import litellm
from google import genai
from google.genai import types
from langchain_openai import ChatOpenAI

from ..support import CLIENT_KEY

WEATHER = {
    "name": "get_weather",
    "description": "weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def claude_client(url: str) -> Any:
    """Typed `Any`: the cells send plain dicts, as most users do, which the SDK's TypedDict overloads reject."""
    return anthropic.Anthropic(base_url=url, api_key=CLIENT_KEY, max_retries=0)


def messages(url: str, model: str) -> None:
    reply = claude_client(url).messages.create(
        model=model, max_tokens=100, system="be brief", messages=[{"role": "user", "content": "conform messages"}]
    )
    assert reply.type == "message" and "conform messages" in reply.content[0].text
    assert reply.stop_reason == "end_turn" and reply.usage.output_tokens > 0

    async def run() -> None:
        client: Any = anthropic.AsyncAnthropic(base_url=url, api_key=CLIENT_KEY, max_retries=0)
        async with client:
            again = await client.messages.create(
                model=model, max_tokens=100, messages=[{"role": "user", "content": "async messages"}]
            )
            assert "async messages" in again.content[0].text

    asyncio.run(run())


def messages_stream(url: str, model: str) -> None:
    with claude_client(url).messages.stream(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "conform stream helper"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "conform stream helper" in text and final.content[0].text == text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def messages_tools(url: str, model: str) -> None:
    reply = claude_client(url).messages.create(
        model=model,
        max_tokens=200,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "weather in Oslo?"}],
    )
    use = next(b for b in reply.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict) and reply.stop_reason == "tool_use"


def count_tokens(url: str, model: str) -> None:
    counted = claude_client(url).messages.count_tokens(
        model=model, messages=[{"role": "user", "content": "how many tokens is this?"}]
    )
    assert counted.input_tokens > 0


_GENAI: dict[str, genai.Client] = {}


def gemini_client(url: str) -> genai.Client:
    """One client per edge, kept alive: a `genai.Client` closes its HTTP client when collected."""
    return _GENAI.setdefault(url, genai.Client(api_key=CLIENT_KEY, http_options={"base_url": url}))


def generate_content(url: str, model: str) -> None:
    client = gemini_client(url)
    reply = client.models.generate_content(model=model, contents="conform gemini")
    assert "conform gemini" in (reply.text or "")
    assert reply.usage_metadata is not None and (reply.usage_metadata.candidates_token_count or 0) > 0
    assert reply.candidates and reply.candidates[0].finish_reason == types.FinishReason.STOP

    async def run() -> None:
        again = await client.aio.models.generate_content(model=model, contents="async gemini")
        assert "async gemini" in (again.text or "")

    asyncio.run(run())


def generate_content_stream(url: str, model: str) -> None:
    chunks = list(gemini_client(url).models.generate_content_stream(model=model, contents="conform gemini stream"))
    assert "conform gemini stream" in "".join(c.text or "" for c in chunks)
    assert chunks[-1].usage_metadata is not None


def litellm_completion(url: str, model: str) -> None:
    reply: Any = litellm.completion(
        model=f"openai/{model}",
        api_base=f"{url}/v1",
        api_key=CLIENT_KEY,
        messages=[{"role": "user", "content": "conform litellm"}],
        num_retries=0,
    )
    assert "conform litellm" in reply.choices[0].message.content
    assert reply.usage.total_tokens > 0


def litellm_acompletion_stream(url: str, model: str) -> None:
    async def run() -> str:
        stream: Any = await litellm.acompletion(
            model=f"openai/{model}",
            api_base=f"{url}/v1",
            api_key=CLIENT_KEY,
            messages=[{"role": "user", "content": "litellm stream"}],
            stream=True,
        )
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])

    assert "litellm stream" in asyncio.run(run())


def langchain_invoke(url: str, model: str) -> None:
    chat = ChatOpenAI(model=model, base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)  # type: ignore[arg-type]
    reply = chat.invoke("conform langchain")
    assert "conform langchain" in str(reply.content)


def langchain_stream(url: str, model: str) -> None:
    chat = ChatOpenAI(model=model, base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)  # type: ignore[arg-type]
    pieces = [str(chunk.content) for chunk in chat.stream("langchain stream")]
    assert len(pieces) > 1 and "langchain stream" in "".join(pieces)
