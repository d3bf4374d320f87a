"""Routing exactness: a model is routable only when an LLM of the app serves it (default model, a price list
entry for its vendor, or an allow-list pattern); any other name is 404 `model_not_found` in the caller's
format, even with an LLM whose allow-list is empty."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from .support import CLIENT_KEY, ModelPriceConfig, llm, make_snapshot, run_edge


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    open_llm = llm(1, "open", f"{mock_upstream}/v1", default_model="mock-gpt")  # empty allow-list
    prices = [
        ModelPriceConfig(vendor="mock", model="mock-gpt", prompt_per_million=Decimal("1")),
        ModelPriceConfig(vendor="mock", model="mock-priced", prompt_per_million=Decimal("1")),
        ModelPriceConfig(vendor="openai", model="gpt-elsewhere", prompt_per_million=Decimal("1")),
    ]
    with run_edge(make_snapshot(mock_upstream, llms=[open_llm], prices=prices), tmp_path_factory.mktemp("e")) as e:
        yield e


def test_unknown_model_is_404_for_openai_clients(edge):
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    for model in ("no-such-model-xyz", "gpt-elsewhere", "open/no-such-model-xyz"):
        with pytest.raises((openai.NotFoundError, openai.PermissionDeniedError)) as refused:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert refused.value.status_code in (403, 404)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="no-such-model-xyz", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found"
    for served in ("mock-gpt", "mock-priced", "open"):
        reply = client.chat.completions.create(model=served, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Echo: hi"
    listed = {m.id for m in client.models.list()}
    assert listed == {"mock-gpt", "mock-priced"}


def test_unknown_model_is_404_for_anthropic_clients(edge):
    client = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as unknown:
        client.messages.create(model="no-such-model-xyz", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert unknown.value.body["error"]["type"] == "not_found_error"
    direct = httpx.post(
        f"{edge.url}/v1/messages",
        headers={"x-api-key": CLIENT_KEY},
        json={"model": "mock-priced", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]},
    )
    assert direct.status_code == 200


def test_model_retrieval_and_lists_in_each_sdks_shape(edge):
    oa = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    assert oa.models.retrieve("mock-priced").id == "mock-priced"
    with pytest.raises(openai.NotFoundError) as unknown:
        oa.models.retrieve("no-such-model-xyz")
    assert unknown.value.code == "model_not_found"
    an = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    page = an.models.list()
    assert {m.id for m in page.data} == {"mock-gpt", "mock-priced"}
    assert all(m.type == "model" for m in page.data)
    assert an.models.retrieve("mock-gpt").id == "mock-gpt"
    with pytest.raises(anthropic.NotFoundError) as missing:
        an.models.retrieve("no-such-model-xyz")
    assert missing.value.body["error"]["type"] == "not_found_error"
