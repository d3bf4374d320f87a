"""The OpenAI-compatible presets (Mistral, Groq, Together, DeepSeek, OpenRouter, Ollama, vLLM, OpenAI) are served
by the OpenAI provider: chat, streams, tools and embeddings through the edge with the stock `openai` SDK, the
vendor key sent as a Bearer token and never the client's."""

from __future__ import annotations

import httpx
import openai
import pytest

from shared_sdk.snapshot import AppConfig
from shared_sdk.vendors import VENDORS

from .support import CLIENT_KEY, VENDOR_KEY, llm, make_snapshot, run_edge

PRESETS = sorted(v for v, p in VENDORS.items() if p.wire == "openai" and v != "mock")


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    llms = [
        llm(i + 1, f"via-{vendor}", f"{mock_upstream}/v1", vendor=vendor, default_model=f"{vendor}-model")
        for i, vendor in enumerate(PRESETS)
    ]
    apps = [AppConfig(id=1, name="one", llm_ids=[x.id for x in llms])]
    with run_edge(make_snapshot(mock_upstream, llms=llms, apps=apps), tmp_path_factory.mktemp("edge")) as running:
        yield running


def test_the_table_has_the_promised_presets():
    assert {"mistral", "groq", "together", "deepseek", "ollama", "vllm", "openrouter", "openai"} <= set(PRESETS)


@pytest.mark.parametrize("vendor", PRESETS)
def test_each_preset_vendor_answers_chat_stream_and_embeddings(edge, upstream, vendor):
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    model = f"{vendor}-model"
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"hi {vendor}"}])
    assert reply.choices[0].message.content == f"Echo: hi {vendor}"
    seen = httpx.get(f"{upstream}/_mock/requests", params={"limit": 1}).json()["data"][-1]
    assert seen["headers"]["authorization"] == f"Bearer {VENDOR_KEY}"
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "go"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Echo: go"
    vectors = client.embeddings.create(model=f"via-{vendor}/{model}", input="fjord")
    assert len(vectors.data[0].embedding) == 1536
