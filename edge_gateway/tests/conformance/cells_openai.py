"""The `openai` SDK's cells of the conformance matrix: each drives the stock client, unchanged, through the edge
and asserts what its user notices (the echoed text, the finish reason, usage, the model listed)."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from ..support import CLIENT_KEY

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def sync_client(url: str) -> Any:
    """Typed `Any`: the cells send plain dicts, as most users do, which the SDK's TypedDict overloads reject."""
    return openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)


def async_client(url: str) -> Any:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def chat(url: str, model: str) -> None:
    reply = sync_client(url).chat.completions.create(model=model, messages=user("conform chat"))
    assert "conform chat" in (reply.choices[0].message.content or "")
    assert reply.choices[0].finish_reason == "stop" and reply.usage is not None and reply.usage.total_tokens > 0


def chat_tools(url: str, model: str) -> None:
    reply = sync_client(url).chat.completions.create(
        model=model, messages=user("weather in Oslo?"), tools=[WEATHER_TOOL], tool_choice="required"
    )
    calls = reply.choices[0].message.tool_calls or []
    assert calls and calls[0].function.name == "get_weather" and calls[0].id
    assert reply.choices[0].finish_reason == "tool_calls"


def chat_stream(url: str, model: str) -> None:
    stream = sync_client(url).chat.completions.create(
        model=model, messages=user("conform stream"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "conform stream" in text
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def chat_async(url: str, model: str) -> None:
    async def run() -> None:
        async with async_client(url) as client:
            reply = await client.chat.completions.create(model=model, messages=user("conform async"))
            assert "conform async" in (reply.choices[0].message.content or "")
            stream = await client.chat.completions.create(model=model, messages=user("async stream"), stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert "async stream" in text

    asyncio.run(run())


def responses(url: str, model: str) -> None:
    reply = sync_client(url).responses.create(model=model, input="conform responses", instructions="be brief")
    assert "conform responses" in reply.output_text and reply.status == "completed"
    assert reply.usage is not None and reply.usage.output_tokens > 0


def responses_stream(url: str, model: str) -> None:
    with sync_client(url).responses.stream(model=model, input="responses stream") as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_response()
    assert {"response.output_text.delta", "response.completed"} <= kinds
    assert "responses stream" in final.output_text


def responses_async(url: str, model: str) -> None:
    async def run() -> None:
        async with async_client(url) as client:
            reply = await client.responses.create(model=model, input="async responses")
            assert "async responses" in reply.output_text
            events = await client.responses.create(model=model, input="async responses stream", stream=True)
            deltas = [e.delta async for e in events if e.type == "response.output_text.delta"]
            assert "async responses stream" in "".join(deltas)

    asyncio.run(run())


def embeddings(url: str, model: str) -> None:
    result = sync_client(url).embeddings.create(model=model, input=["a fjord", "a glacier"])
    assert len(result.data) == 2 and all(len(d.embedding) > 0 for d in result.data)

    async def run() -> None:
        async with async_client(url) as client:
            again = await client.embeddings.create(model=model, input="a fjord")
            assert len(again.data) == 1 and again.data[0].embedding

    asyncio.run(run())


def embeddings_refused(url: str, model: str) -> None:
    """By design: the vendor has no embeddings. The SDK raises BadRequestError naming the model (no 500)."""
    with pytest.raises(openai.BadRequestError) as caught:
        sync_client(url).embeddings.create(model=model, input="a fjord")
    body: Any = caught.value.body
    assert caught.value.status_code == 400
    assert body["param"] == "model" and body["code"] == "unsupported_operation"

    async def run() -> None:
        async with async_client(url) as client:
            with pytest.raises(openai.BadRequestError):
                await client.embeddings.create(model=model, input="a fjord")

    asyncio.run(run())


def models(url: str, model: str) -> None:
    client = sync_client(url)
    assert model in {m.id for m in client.models.list()}
    assert client.models.retrieve(model).id == model
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model-xyz")

    async def run() -> None:
        async with async_client(url) as aclient:
            listed = [m.id async for m in aclient.models.list()]
            assert model in listed

    asyncio.run(run())
