"""Azure OpenAI behind the edge: the stock `openai` SDK against the mock shaped as Azure (deployments in the
path, `api-version`, `api-key`, content-filter annotations and errors), plus the `anthropic` SDK on `/v1/messages`."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from shared_sdk.snapshot import AppConfig

from .support import CLIENT_KEY, VENDOR_KEY, llm, make_snapshot, run_edge, start_mock

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def azure_mock():
    with start_mock("--require-key", VENDOR_KEY) as url:
        yield url


@pytest.fixture(scope="module")
def edge(azure_mock, tmp_path_factory):
    meta = {"deployments": {"gpt-4o": "prod-gpt4o"}, "api_version": "2024-10-21"}
    azure = llm(1, "azure", f"{azure_mock}/", vendor="azure", default_model="gpt-4o", metadata=meta)
    other = llm(2, "azure-embed", azure_mock, vendor="azure", default_model="text-embedding-3-small")
    snap = make_snapshot(azure_mock, llms=[azure, other], apps=[AppConfig(id=1, name="one", llm_ids=[1, 2])])
    with run_edge(snap, tmp_path_factory.mktemp("edge")) as running:
        yield running


@pytest.fixture
def mock(azure_mock):
    httpx.post(f"{azure_mock}/_mock/reset")
    return azure_mock


def client(edge) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def last_request(mock: str) -> dict:
    return httpx.get(f"{mock}/_mock/requests", params={"limit": 1}).json()["data"][-1]


def test_chat_goes_to_the_mapped_deployment_with_api_key_and_version(edge, mock):
    reply = client(edge).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi azure"}])
    assert reply.choices[0].message.content == "Echo: hi azure"
    assert reply.model == "prod-gpt4o"  # Azure answers with the deployment
    assert reply.model_extra and reply.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    seen = last_request(mock)
    assert seen["path"] == "/openai/deployments/prod-gpt4o/chat/completions"
    assert seen["query"] == "api-version=2024-10-21" or "api-version=2024-10-21" in str(seen["query"])
    assert seen["headers"]["api-key"] == VENDOR_KEY
    assert "authorization" not in seen["headers"]


def test_streams_pass_azure_chunks_through(edge, mock):
    stream = client(edge).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "stream it"}], stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices == []  # Azure's first chunk: prompt_filter_results only
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream it"


def test_unmapped_model_is_its_own_deployment_and_embeddings_work(edge, mock):
    reply = client(edge).embeddings.create(model="azure-embed/text-embedding-3-small", input="fjord", dimensions=8)
    assert len(reply.data[0].embedding) == 8
    assert last_request(mock)["path"] == "/openai/deployments/text-embedding-3-small/embeddings"


def test_tools_through_azure(edge, mock):
    reply = client(edge).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "call tool"}], tools=[WEATHER]
    )
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather" and reply.choices[0].finish_reason == "tool_calls"


def test_a_filtered_prompt_is_a_400_with_azures_code(edge, mock):
    with pytest.raises(openai.BadRequestError) as caught:
        client(edge).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "please trigger content filter"}]
        )
    assert caught.value.body["code"] == "content_filter"
    assert "content management policy" in caught.value.body["message"]


def test_a_filtered_answer_keeps_its_finish_reason(edge, mock):
    reply = client(edge).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "filter the answer"}]
    )
    assert reply.choices[0].finish_reason == "content_filter"
    assert reply.choices[0].message.content is None


def test_the_anthropic_sdk_talks_to_an_azure_deployment(edge, mock):
    claude = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    message = claude.messages.create(model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "hey"}])
    assert message.content[0].text == "Echo: hey"
    assert last_request(mock)["path"] == "/openai/deployments/prod-gpt4o/chat/completions"
    with claude.messages.stream(model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "go"}]) as s:
        assert "".join(s.text_stream) == "Echo: go"


def test_the_azure_mock_refuses_what_azure_refuses(mock):
    url = f"{mock}/openai/deployments/x/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}]}
    no_version = httpx.post(url, headers={"api-key": VENDOR_KEY}, json=body)
    assert no_version.status_code == 400 and no_version.json()["error"]["code"] == "MissingApiVersionParameter"
    wrong_key = httpx.post(url, params={"api-version": "2024-10-21"}, headers={"api-key": "nope"}, json=body)
    assert wrong_key.status_code == 401 and wrong_key.json()["error"]["code"] == "401"


def test_responses_are_translated_for_azure(edge, mock):
    answer = client(edge).responses.create(model="gpt-4o", input="respond, azure")
    assert answer.output_text == "Echo: respond, azure"
    assert last_request(mock)["path"] == "/openai/deployments/prod-gpt4o/chat/completions"


def test_native_pass_through_gets_the_api_version_and_key(edge, mock):
    path = "/llm/call/azure/openai/deployments/prod-gpt4o/chat/completions"
    body = {"messages": [{"role": "user", "content": "native azure"}]}
    reply = httpx.post(edge.url + path, json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "Echo: native azure"
    seen = last_request(mock)
    assert seen["headers"]["api-key"] == VENDOR_KEY and "api-version=2024-10-21" in str(seen["query"])
