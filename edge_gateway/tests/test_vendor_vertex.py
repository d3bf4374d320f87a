"""Gemini on Vertex AI behind the edge: the stock `openai` SDK against the mock speaking Vertex AI (project and
region in the URL, OAuth2 bearer tokens the mock issues at `POST /token` after verifying the service account's
RS256-signed assertion). The key pairs and service-account JSONs are made here, at runtime."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edge_gateway.providers import provider_for
from edge_gateway.providers.base import UpstreamSpec
from edge_gateway.providers.vertex_auth import ServiceAccountTokens
from shared_sdk.snapshot import AppConfig

from .support import CLIENT_KEY, encrypt, llm, make_snapshot, run_edge, start_mock

PROJECT, REGION = "fjord-proj", "europe-west4"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def service_account(private_key: str, email: str, token_uri: str) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "test-key-1",
            "private_key": private_key,
            "client_email": email,
            "client_id": "1234567890",
            "token_uri": token_uri,
        }
    )


@pytest.fixture(scope="module")
def keys():
    return _key_pair()


@pytest.fixture(scope="module")
def mock(keys, tmp_path_factory):
    pem = tmp_path_factory.mktemp("vertex") / "public.pem"
    pem.write_text(keys[1])
    with start_mock("--vertex-public-key", str(pem)) as url:
        yield url


@pytest.fixture(scope="module")
def edge(mock, keys, tmp_path_factory):
    private, _ = keys
    stranger, _ = _key_pair()  # a key the mock's service account does not have
    meta = {"region": REGION, "project": PROJECT}

    def vertex(id: int, model: str, email: str, key: str = private) -> object:
        sa = service_account(key, email, f"{mock}/token")
        return llm(
            id,
            f"vertex-{id}",
            mock,
            vendor="vertex",
            default_model=model,
            metadata=meta,
            api_key_encrypted=encrypt(sa),
            max_retries=0,
        )

    llms = [
        vertex(1, "gemini-2.5-flash", "edge@fjord-proj.iam.gserviceaccount.com"),
        vertex(2, "gemini-2.5-pro", "reuse@fjord-proj.iam.gserviceaccount.com"),
        vertex(3, "gemini-2.0-flash", "refused@fjord-proj.iam.gserviceaccount.com", stranger),
    ]
    snap = make_snapshot(mock, llms=llms, apps=[AppConfig(id=1, name="one", llm_ids=[1, 2, 3])])
    with run_edge(snap, tmp_path_factory.mktemp("edge")) as running:
        yield running


def client(edge) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def requests_to(mock: str, path: str | None = None, limit: int = 100) -> list[dict]:
    params: dict = {"limit": limit}
    if path:
        params["path"] = path
    return httpx.get(f"{mock}/_mock/requests", params=params).json()["data"]


def model_path(model: str, method: str) -> str:
    return f"/v1/projects/{PROJECT}/locations/{REGION}/publishers/google/models/{model}:{method}"


def test_chat_goes_to_vertex_with_a_bearer_token(edge, mock):
    reply = client(edge).chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello fjord"}],
        max_tokens=50,
    )
    assert reply.choices[0].message.content == "Echo: hello fjord"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    seen = requests_to(mock, model_path("gemini-2.5-flash", "generateContent"))[-1]
    assert seen["status"] == 200
    assert seen["headers"]["authorization"].startswith("Bearer ya29.mock-")
    assert "x-goog-api-key" not in seen["headers"] and CLIENT_KEY not in str(seen["headers"])
    assert seen["body"]["systemInstruction"] == {"parts": [{"text": "be brief"}]}


def test_streamed_chat_arrives_as_openai_chunks(edge, mock):
    stream = client(edge).chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: stream me please"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    seen = requests_to(mock, model_path("gemini-2.5-flash", "streamGenerateContent"))[-1]
    assert seen["query"] == "alt=sse" and seen["status"] == 200


def test_tool_calls_round_trip(edge, mock):
    c = client(edge)
    reply = c.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "call tool get_weather"}], tools=[WEATHER]
    )
    (call,) = reply.choices[0].message.tool_calls or []
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "mock"}
    follow_up = c.chat.completions.create(
        model="gemini-2.5-flash",
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "call tool get_weather"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert follow_up.choices[0].message.content == "Echo: sunny"


def test_one_token_serves_many_requests(edge, mock):
    """Six requests, four of them at once before any token exists: the edge asks for one token."""
    c = client(edge)

    def ask(i: int) -> str:
        reply = c.chat.completions.create(model="gemini-2.5-pro", messages=[{"role": "user", "content": f"n{i}"}])
        return reply.choices[0].message.content or ""

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(ask, range(4))) == [f"Echo: n{i}" for i in range(4)]
    assert [ask(4), ask(5)] == ["Echo: n4", "Echo: n5"]
    fetches = [r for r in requests_to(mock, "/token") if str(r["body"]["iss"]).startswith("reuse@")]
    assert len(fetches) == 1 and fetches[0]["status"] == 200
    calls = requests_to(mock, model_path("gemini-2.5-pro", "generateContent"))
    assert len(calls) == 6 and len({r["headers"]["authorization"] for r in calls}) == 1


def test_a_refused_service_account_is_a_502_upstream_auth_failed(edge, mock, keys):
    with pytest.raises(openai.APIStatusError) as caught:
        client(edge).chat.completions.create(model="gemini-2.0-flash", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "upstream_auth_failed"
    assert "invalid_grant" in error["message"] and "PRIVATE KEY" not in json.dumps(error)
    refused = [r for r in requests_to(mock, "/token") if str(r["body"]["iss"]).startswith("refused@")]
    assert refused and refused[-1]["status"] == 400
    assert not requests_to(mock, model_path("gemini-2.0-flash", "generateContent"))  # never called without a token


def test_a_token_vertex_refuses_is_dropped_and_the_next_call_gets_a_new_one(edge, mock):
    c = client(edge)
    ask = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "again"}]}
    assert c.chat.completions.create(**ask).choices[0].message.content == "Echo: again"
    fetched = len(requests_to(mock, "/token"))
    provider = provider_for("vertex")
    entry = provider.tokens._entries[1]
    entry.token = "ya29.revoked-by-google"  # as if the token had been revoked before its expiry
    with pytest.raises(openai.APIStatusError) as caught:
        c.chat.completions.create(**ask)
    assert caught.value.status_code == 502 and caught.value.body["code"] == "upstream_auth_failed"
    assert c.chat.completions.create(**ask).choices[0].message.content == "Echo: again"
    assert len(requests_to(mock, "/token")) == fetched + 1


def test_gemini_format_and_native_callers_reach_vertex_with_the_edges_token(edge, mock):
    body = {"contents": [{"role": "user", "parts": [{"text": "gemini shaped"}]}]}
    gemini = httpx.post(
        f"{edge.url}/v1beta/models/gemini-2.5-flash:generateContent", json=body, headers={"x-goog-api-key": CLIENT_KEY}
    )
    assert gemini.status_code == 200, gemini.text
    assert gemini.json()["candidates"][0]["content"]["parts"] == [{"text": "Echo: gemini shaped"}]
    counted = httpx.post(
        f"{edge.url}/v1beta/models/gemini-2.5-flash:countTokens", json=body, headers={"x-goog-api-key": CLIENT_KEY}
    )
    assert counted.status_code == 200 and counted.json()["totalTokens"] == 2
    assert requests_to(mock, model_path("gemini-2.5-flash", "countTokens"))  # Vertex counted, not the edge
    native = httpx.post(
        f"{edge.url}/llm/call/vertex-1{model_path('gemini-2.5-flash', 'generateContent')}",
        json={"contents": [{"role": "user", "parts": [{"text": "native call"}]}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert native.status_code == 200, native.text
    seen = requests_to(mock, model_path("gemini-2.5-flash", "generateContent"))[-1]
    assert seen["body"]["contents"][0]["parts"] == [{"text": "native call"}]
    assert seen["headers"]["authorization"].startswith("Bearer ya29.mock-") and CLIENT_KEY not in str(seen)


def test_vertex_routes_want_an_issued_token(mock):
    url = f"{mock}{model_path('gemini-2.5-flash', 'generateContent')}"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    for headers in ({}, {"authorization": "Bearer ya29.made-up"}):
        answer = httpx.post(url, json=body, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["status"] == "UNAUTHENTICATED"


async def test_a_token_near_its_end_is_refreshed_without_waiting(mock, keys):
    """With every token "near its end", each call still answers at once with the valid token it has, and a
    background refresh replaces it."""
    tokens = ServiceAccountTokens(refresh_ahead_s=10_000)
    key = service_account(keys[0], "ahead@fjord-proj.iam.gserviceaccount.com", f"{mock}/token")
    spec = UpstreamSpec(9, "vertex-9", "vertex", mock, key, {}, 5.0, 5.0, 5.0, {"region": REGION})
    first = await tokens.authorization(spec)
    assert tokens.fetches == 1
    second = await tokens.authorization(spec)  # no await on a refresh: the same token, a refresh started
    assert second == first and tokens.fetches == 2
    entry = tokens._entries[9]
    assert entry.refreshing is not None
    await entry.refreshing
    assert await tokens.authorization(spec) != first


def test_gemini_format_embeddings_on_vertex_are_googles_400_without_a_call(edge, mock):
    """Vertex AI embeds through `:predict`, another shape: refused in the caller's format, nothing sent."""
    refused = httpx.post(
        f"{edge.url}/v1beta/models/gemini-2.5-flash:batchEmbedContents",
        json={"requests": [{"content": {"parts": [{"text": "a fjord"}]}}]},
        headers={"x-goog-api-key": CLIENT_KEY},
    )
    assert refused.status_code == 400 and refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "embeddings" in refused.json()["error"]["message"]
    assert not [r for r in requests_to(mock, limit=1000) if "mbed" in r["path"] or "predict" in r["path"]]
