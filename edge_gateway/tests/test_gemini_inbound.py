"""The stock `google-genai` SDK at the edge (`POST /v1beta/models/{model}:generateContent` and
`:streamGenerateContent`, `:countTokens`, `GET /v1beta/models`), driven unchanged
(`genai.Client(api_key=<app key>, http_options={"base_url": <edge>})`) against OpenAI-, Anthropic- and
Gemini-shaped upstreams (the mock), with the edge's auth, budgets, rate limits and response hooks answering in
Google's error shape."""

from __future__ import annotations

import asyncio
import base64
import time
from decimal import Decimal

import httpx
import pytest
from google import genai
from google.genai import errors, types

from shared_sdk.messages import AnalyticsRecord
from shared_sdk.snapshot import AppConfig, BudgetConfig, CredentialConfig, PluginBinding, hash_credential

from .support import CLIENT_KEY, VENDOR_KEY, ModelPriceConfig, PluginConfig, llm, make_snapshot, run_edge

GPT, CLAUDE, GEMINI = "mock-gpt", "claude-opus-4-5", "gemini-2.5-flash"
MODELS = [GPT, CLAUDE, GEMINI]
LIMITED_KEY = "sk-client-limited-app3"
BUDGET_KEY = "sk-client-budget-app4"
HOOKED_KEY = "sk-client-hooked-app5"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="weather in a city",
    parameters=types.Schema(
        type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]
    ),
)
TOOLS = [types.Tool(function_declarations=[WEATHER])]
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    gpt = llm(1, "gpt", f"{mock_upstream}/v1", allowed_models=[GPT])
    claude = llm(2, "claude", mock_upstream, vendor="anthropic", default_model=CLAUDE, allowed_models=["claude-.*"])
    gemini = llm(3, "gemini", mock_upstream, vendor="google", default_model=GEMINI, allowed_models=["gemini-.*"])
    hooked = llm(
        4,
        "hooked",
        f"{mock_upstream}/v1",
        default_model="hooked-gpt",
        plugin_chain=[PluginBinding(plugin_slug="stamp", order=0)],
    )
    snap = make_snapshot(
        mock_upstream,
        llms=[gpt, claude, gemini, hooked],
        apps=[
            AppConfig(id=1, name="one", llm_ids=[1, 2, 3]),
            AppConfig(id=3, name="limited", llm_ids=[1], rate_limit_rpm=1),
            AppConfig(id=4, name="broke", llm_ids=[1]),
            AppConfig(id=5, name="hooked", llm_ids=[4]),
        ],
        credentials=[
            CredentialConfig(key_hash=hash_credential(CLIENT_KEY), app_id=1, credential_id=1),
            CredentialConfig(key_hash=hash_credential(LIMITED_KEY), app_id=3, credential_id=10),
            CredentialConfig(key_hash=hash_credential(BUDGET_KEY), app_id=4, credential_id=11),
            CredentialConfig(key_hash=hash_credential(HOOKED_KEY), app_id=5, credential_id=12),
        ],
        budgets=[BudgetConfig(id=1, scope="app", target_id=4, limit=Decimal("0.000001"))],
        plugins=[
            PluginConfig(
                slug="stamp",
                name="stamp",
                import_path="edge_gateway.tests.recording_plugins:Recorder",
                config={"label": "stamp", "upper_chunks": True},
            )
        ],
        prices=[
            ModelPriceConfig(
                vendor="mock", model=GPT, prompt_per_million=Decimal("1000"), completion_per_million=Decimal("2000")
            ),
            ModelPriceConfig(vendor="anthropic", model=CLAUDE),
            ModelPriceConfig(vendor="google", model=GEMINI),
        ],
    )
    with run_edge(snap, tmp_path_factory.mktemp("edge")) as running:
        yield running


_CLIENTS: dict[tuple[str, str], genai.Client] = {}


def client(edge, key: str = CLIENT_KEY) -> genai.Client:
    """One SDK client per (edge, key), kept alive: a `genai.Client` closes its HTTP client when collected, which
    would break `client(edge).models.generate_content(...)` mid-call."""
    return _CLIENTS.setdefault((edge.url, key), genai.Client(api_key=key, http_options={"base_url": edge.url}))


def last_upstream(mock_upstream: str) -> dict:
    return httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]


@pytest.mark.parametrize("model", MODELS)
def test_generate_content(edge, mock_upstream, model):
    reply = client(edge).models.generate_content(
        model=model,
        contents="hello fjord",
        config=types.GenerateContentConfig(system_instruction="be brief", max_output_tokens=50),
    )
    assert reply.text == "Echo: hello fjord"
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.usage_metadata.prompt_token_count == 4 and reply.usage_metadata.candidates_token_count == 4
    seen = last_upstream(mock_upstream)
    assert CLIENT_KEY not in str(seen)
    expected_path = {
        GPT: "/v1/chat/completions",
        CLAUDE: "/v1/messages",
        GEMINI: f"/v1beta/models/{GEMINI}:generateContent",
    }[model]
    assert seen["path"] == expected_path
    if model == GEMINI:
        assert seen["headers"]["x-goog-api-key"] == VENDOR_KEY
        assert seen["body"]["systemInstruction"]["parts"][0]["text"] == "be brief"


@pytest.mark.parametrize("model", MODELS)
def test_streaming(edge, model):
    chunks = list(client(edge).models.generate_content_stream(model=model, contents="stream the fjord"))
    assert "".join(c.text or "" for c in chunks) == "Echo: stream the fjord"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 5


@pytest.mark.parametrize("model", MODELS)
def test_tool_call_round_trip(edge, model):
    c = client(edge)
    config = types.GenerateContentConfig(
        tools=TOOLS,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")),
    )
    question = types.Content(role="user", parts=[types.Part(text="weather in Oslo?")])
    reply = c.models.generate_content(model=model, contents=[question], config=config)
    call = reply.function_calls[0]
    assert call.name == "get_weather" and call.args == {"city": "mock"}
    answer = c.models.generate_content(
        model=model,
        contents=[
            question,
            reply.candidates[0].content,
            types.Content(
                role="user",
                parts=[types.Part.from_function_response(name="get_weather", response={"result": "sunny"})],
            ),
        ],
        config=types.GenerateContentConfig(tools=TOOLS),
    )
    assert answer.text == "Echo: sunny"


@pytest.mark.parametrize("model", [GPT, GEMINI])
def test_streamed_tool_call(edge, model):
    config = types.GenerateContentConfig(
        tools=TOOLS, automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
    )
    chunks = list(client(edge).models.generate_content_stream(model=model, contents="call tool", config=config))
    calls = [call for chunk in chunks for call in chunk.function_calls or ()]
    assert [call.name for call in calls] == ["get_weather"]


@pytest.mark.parametrize("model", [GPT, CLAUDE, GEMINI])
def test_image_part(edge, mock_upstream, model):
    reply = client(edge).models.generate_content(
        model=model, contents=[types.Part.from_bytes(data=PNG, mime_type="image/png"), "describe"]
    )
    assert reply.text == "Echo: describe"
    body = last_upstream(mock_upstream)["body"]
    encoded = base64.b64encode(PNG).decode()
    if model == GPT:
        assert body["messages"][0]["content"][0]["image_url"]["url"] == f"data:image/png;base64,{encoded}"
    elif model == CLAUDE:
        assert body["messages"][0]["content"][0]["source"]["data"] == encoded
    else:
        assert body["contents"][0]["parts"][0]["inlineData"]["data"] == encoded


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens(edge, model):
    result = client(edge).models.count_tokens(model=model, contents="count these four words")
    assert result.total_tokens > 0
    if model == GEMINI:  # Gemini's own count; the others are the edge's estimate (4 characters per token)
        assert result.total_tokens == 4


def wait_record(edge, app_id: int) -> AnalyticsRecord:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [r for r in edge.sink.of(AnalyticsRecord) if r.app_id == app_id]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no analytics record for app {app_id}")


def test_model_list_and_retrieve_in_geminis_shape(edge):
    c = client(edge)
    names = [m.name for m in c.models.list()]
    assert f"models/{GEMINI}" in names and f"models/{GPT}" in names
    assert c.models.get(model=GEMINI).name == f"models/{GEMINI}"
    with pytest.raises(errors.ClientError) as missing:
        c.models.get(model="no-such-model")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"


def test_key_in_query_and_bearer_are_accepted_and_never_forwarded(edge, mock_upstream):
    body = {"contents": [{"parts": [{"text": "by query"}]}]}
    url = f"{edge.url}/v1beta/models/{GEMINI}:generateContent"
    by_query = httpx.post(f"{url}?key={CLIENT_KEY}", json=body)
    assert by_query.status_code == 200 and "by query" in by_query.text
    assert CLIENT_KEY not in str(last_upstream(mock_upstream))
    by_bearer = httpx.post(url, json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert by_bearer.status_code == 200


def test_errors_in_googles_shape(edge):
    with pytest.raises(errors.ClientError) as unknown:
        client(edge, "sk-wrong").models.generate_content(model=GPT, contents="hi")
    assert unknown.value.code == 401 and unknown.value.status == "UNAUTHENTICATED"
    with pytest.raises(errors.ClientError) as missing_model:
        client(edge).models.generate_content(model="no-such-model-xyz", contents="hi")
    assert missing_model.value.code == 404 and missing_model.value.status == "NOT_FOUND"
    bad = httpx.post(
        f"{edge.url}/v1beta/models/{GPT}:generateContent", json={"contents": []}, headers={"x-goog-api-key": CLIENT_KEY}
    )
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    array = httpx.post(
        f"{edge.url}/v1beta/models/{GPT}:streamGenerateContent",
        json={"contents": [{"parts": [{"text": "x"}]}]},
        headers={"x-goog-api-key": CLIENT_KEY},
    )
    assert array.status_code == 400 and "alt=sse" in array.json()["error"]["message"]


def test_budget_refusal_is_failed_precondition(edge):
    with pytest.raises(errors.ClientError) as refused:
        client(edge, BUDGET_KEY).models.generate_content(model=GPT, contents="spend")
    assert refused.value.code == 400 and refused.value.status == "FAILED_PRECONDITION"
    assert "budget" in refused.value.message


def test_rate_limit_is_resource_exhausted(edge):
    c = client(edge, LIMITED_KEY)
    c.models.generate_content(model=GPT, contents="first")
    with pytest.raises(errors.ClientError) as limited:
        c.models.generate_content(model=GPT, contents="second")
    assert limited.value.code == 429 and limited.value.status == "RESOURCE_EXHAUSTED"


def test_response_hooks_and_analytics_apply(edge):
    c = client(edge, HOOKED_KEY)
    reply = c.models.generate_content(model="hooked-gpt", contents="hooked")
    assert reply.sdk_http_response.headers.get("x-stamp") == "seen"  # the headers hook ran on this format
    record = wait_record(edge, app_id=5)
    assert record.prompt_tokens == 1 and record.completion_tokens == 3 and record.status_code == 200
    chunks = list(c.models.generate_content_stream(model="hooked-gpt", contents="loud"))
    assert "".join(ch.text or "" for ch in chunks) == "ECHO: loud"  # the chunk hook rewrote Gemini's events


@pytest.mark.parametrize("model", MODELS)
def test_async_client_generates_and_streams(edge, model):
    async def run() -> tuple[str, str]:
        aio = client(edge).aio
        reply = await aio.models.generate_content(model=model, contents="async fjord")
        pieces = [
            chunk.text or ""
            async for chunk in await aio.models.generate_content_stream(model=model, contents="async flow")
        ]
        return reply.text or "", "".join(pieces)

    assert asyncio.run(run()) == ("Echo: async fjord", "Echo: async flow")


@pytest.mark.parametrize("model", [GPT, CLAUDE])
@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        {"contents": "hello"},
        {"contents": [{"role": "user", "parts": "hello"}]},
        {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "video/mp4", "data": "AA=="}}]}]},
        {"contents": [{"role": "user", "parts": [{"videoMetadata": {}}]}]},
        {"contents": [{"role": "user", "parts": [42]}]},
        {"contents": ["hello"]},
    ],
)
def test_hostile_bodies_get_googles_400(edge, model, body):
    url = f"{edge.url}/v1beta/models/{model}:generateContent"
    headers = {"x-goog-api-key": CLIENT_KEY}
    sent = (
        httpx.post(url, content=body, headers=headers)
        if isinstance(body, bytes)
        else httpx.post(url, json=body, headers=headers)
    )
    assert sent.status_code == 400, sent.text
    assert sent.json()["error"]["status"] == "INVALID_ARGUMENT"
