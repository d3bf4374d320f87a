"""The stock `google-genai` SDK's `embed_content` at the edge (`POST /v1beta/models/{model}:batchEmbedContents`,
and `:embedContent` for raw HTTP callers), against an OpenAI-shaped LLM (translated to `/v1/embeddings`) and a
Gemini-shaped one (passed through), with accounting, auth and hostile bodies answered in Google's shape."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import pytest
from google import genai
from google.genai import errors, types

from shared_sdk.messages import AnalyticsRecord
from shared_sdk.snapshot import AppConfig, BudgetConfig, CredentialConfig, PluginBinding, hash_credential

from .support import CLIENT_KEY, VENDOR_KEY, ModelPriceConfig, PluginConfig, llm, make_snapshot, run_edge

OAI, GEM, CLAUDE = "text-embedding-3-small", "gemini-embedding-001", "claude-opus-4-5"
OTHER_KEY = "sk-client-other-app2"
ACCOUNTED_KEY = "sk-client-accounted-app3"
BUDGET_KEY = "sk-client-budget-app4"
LIMITED_KEY = "sk-client-limited-app5"
HOOKED_KEY = "sk-client-hooked-app6"


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    openai_llm = llm(1, "oai", f"{mock_upstream}/v1", default_model=OAI, allowed_models=["text-embedding-.*"])
    gemini_llm = llm(2, "gem", mock_upstream, vendor="google", default_model=GEM, allowed_models=["gemini-.*"])
    claude = llm(3, "claude", mock_upstream, vendor="anthropic", default_model=CLAUDE, allowed_models=["claude-.*"])
    hooked = llm(
        4,
        "hooked",
        f"{mock_upstream}/v1",
        default_model="hooked-embed",
        plugin_chain=[PluginBinding(plugin_slug="stamp", order=0)],
    )
    snap = make_snapshot(
        mock_upstream,
        llms=[openai_llm, gemini_llm, claude, hooked],
        apps=[
            AppConfig(id=1, name="one", llm_ids=[1, 2, 3]),
            AppConfig(id=2, name="other", llm_ids=[3]),
            AppConfig(id=3, name="accounted", llm_ids=[1, 2]),
            AppConfig(id=4, name="broke", llm_ids=[1]),
            AppConfig(id=5, name="limited", llm_ids=[1], rate_limit_rpm=1),
            AppConfig(id=6, name="hooked", llm_ids=[4]),
        ],
        credentials=[
            CredentialConfig(key_hash=hash_credential(CLIENT_KEY), app_id=1, credential_id=1),
            CredentialConfig(key_hash=hash_credential(OTHER_KEY), app_id=2, credential_id=2),
            CredentialConfig(key_hash=hash_credential(ACCOUNTED_KEY), app_id=3, credential_id=3),
            CredentialConfig(key_hash=hash_credential(BUDGET_KEY), app_id=4, credential_id=4),
            CredentialConfig(key_hash=hash_credential(LIMITED_KEY), app_id=5, credential_id=5),
            CredentialConfig(key_hash=hash_credential(HOOKED_KEY), app_id=6, credential_id=6),
        ],
        budgets=[BudgetConfig(id=1, scope="app", target_id=4, limit=Decimal("0.000001"))],
        plugins=[
            PluginConfig(
                slug="stamp",
                name="stamp",
                import_path="edge_gateway.tests.recording_plugins:Recorder",
                config={"label": "stamp"},
            )
        ],
        prices=[
            ModelPriceConfig(
                vendor="mock", model=OAI, prompt_per_million=Decimal("1000"), completion_per_million=Decimal("0")
            ),
            ModelPriceConfig(
                vendor="google", model=GEM, prompt_per_million=Decimal("1000"), completion_per_million=Decimal("0")
            ),
        ],
    )
    with run_edge(snap, tmp_path_factory.mktemp("edge")) as running:
        yield running


_CLIENTS: dict[tuple[str, str], genai.Client] = {}


def client(edge, key: str = CLIENT_KEY) -> genai.Client:
    """One SDK client per (edge, key), kept alive (a collected `genai.Client` closes its HTTP client)."""
    return _CLIENTS.setdefault((edge.url, key), genai.Client(api_key=key, http_options={"base_url": edge.url}))


def upstream_calls(mock_upstream: str) -> list[dict]:
    return httpx.get(f"{mock_upstream}/_mock/requests").json()["data"]


def post(edge, model: str, method: str, body: object, key: str = CLIENT_KEY) -> httpx.Response:
    url = f"{edge.url}/v1beta/models/{model}:{method}"
    headers = {"x-goog-api-key": key}
    if isinstance(body, bytes):
        return httpx.post(url, content=body, headers=headers)
    return httpx.post(url, json=body, headers=headers)


@pytest.mark.parametrize("model", [OAI, GEM])
def test_sdk_embeds_one_and_several_contents(edge, mock_upstream, model):
    one = client(edge).models.embed_content(model=model, contents="a fjord")
    assert len(one.embeddings) == 1 and len(one.embeddings[0].values) > 8
    several = client(edge).models.embed_content(
        model=model,
        contents=["a fjord", "a glacier", "a fjord"],
        config=types.EmbedContentConfig(output_dimensionality=8, task_type="RETRIEVAL_DOCUMENT"),
    )
    vectors = [e.values for e in several.embeddings]
    assert [len(v) for v in vectors] == [8, 8, 8]
    assert vectors[0] == vectors[2] != vectors[1]  # in the order asked, one per content
    seen = upstream_calls(mock_upstream)[-1]
    assert CLIENT_KEY not in str(seen)
    if model == OAI:  # translated: OpenAI has no task type
        assert seen["path"] == "/v1/embeddings"
        assert seen["body"]["input"] == ["a fjord", "a glacier", "a fjord"] and seen["body"]["dimensions"] == 8
        assert "taskType" not in str(seen["body"])
    else:  # passed through, task type kept, the LLM's key
        assert seen["path"] == f"/v1beta/models/{GEM}:batchEmbedContents"
        assert seen["headers"]["x-goog-api-key"] == VENDOR_KEY
        assert seen["body"]["requests"][0]["taskType"] == "RETRIEVAL_DOCUMENT"


@pytest.mark.parametrize("model", [OAI, GEM])
def test_async_client_embeds(edge, model):
    async def run() -> list[int]:
        result = await client(edge).aio.models.embed_content(
            model=model, contents=["north", "south"], config=types.EmbedContentConfig(output_dimensionality=4)
        )
        return [len(e.values or []) for e in result.embeddings or []]

    assert asyncio.run(run()) == [4, 4]


@pytest.mark.parametrize("model", [OAI, GEM])
def test_embed_content_method_answers_one_embedding(edge, model):
    answer = post(edge, model, "embedContent", {"content": {"parts": [{"text": "one"}]}, "outputDimensionality": 5})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["embedding"]["values"]) == 5


def wait_records(edge, app_id: int, count: int) -> list[AnalyticsRecord]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [r for r in edge.sink.of(AnalyticsRecord) if r.app_id == app_id]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} analytics records for app {app_id}")


def test_one_analytics_record_per_call_with_tokens_and_cost(edge):
    c = client(edge, ACCOUNTED_KEY)
    c.models.embed_content(model=OAI, contents=["one two three", "four five"])
    c.models.embed_content(model=GEM, contents=["one two three", "four five"])
    first, second = wait_records(edge, app_id=3, count=2)
    time.sleep(0.3)
    assert len([r for r in edge.sink.of(AnalyticsRecord) if r.app_id == 3]) == 2
    for record in (first, second):
        assert record.status_code == 200 and record.prompt_tokens > 0 and record.completion_tokens == 0
        assert record.cost > 0
    assert {first.model, second.model} == {OAI, GEM}


def test_a_key_without_access_is_refused_in_googles_shape(edge):
    with pytest.raises(errors.ClientError) as unknown:
        client(edge, "sk-wrong").models.embed_content(model=OAI, contents="hi")
    assert unknown.value.code == 401 and unknown.value.status == "UNAUTHENTICATED"
    with pytest.raises(errors.ClientError) as denied:
        client(edge, OTHER_KEY).models.embed_content(model=OAI, contents="hi")
    assert denied.value.code == 403 and denied.value.status == "PERMISSION_DENIED"  # its app is not linked to it


def test_an_llm_that_cannot_embed_answers_googles_400(edge):
    answer = post(edge, CLAUDE, "batchEmbedContents", {"requests": [{"content": {"parts": [{"text": "x"}]}}]})
    assert answer.status_code == 400 and answer.json()["error"]["status"] == "INVALID_ARGUMENT"


def _batch(n: int) -> dict:
    return {"requests": [{"model": f"models/{OAI}", "content": {"parts": [{"text": f"t{i}"}]}} for i in range(n)]}


@pytest.mark.parametrize("model", [OAI, GEM])
@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("embedContent", {}),
        ("embedContent", {"content": {"parts": []}}),
        ("embedContent", {"content": {"parts": [{"text": ""}]}}),
        ("embedContent", {"content": "hello"}),
        ("embedContent", {"content": {"parts": [{"text": 42}]}}),
        ("embedContent", {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": "8"}),
        ("embedContent", b"{not json"),
        ("batchEmbedContents", {}),
        ("batchEmbedContents", {"requests": []}),
        ("batchEmbedContents", {"requests": "hello"}),
        ("batchEmbedContents", {"requests": [42]}),
        ("batchEmbedContents", {"requests": [{"content": {"parts": [{"text": "x"}]}}, {}]}),
        ("batchEmbedContents", _batch(101)),
    ],
)
def test_hostile_bodies_get_googles_400_without_an_upstream_call(edge, mock_upstream, model, method, body):
    before = len(upstream_calls(mock_upstream))
    answer = post(edge, model, method, body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT" and error["message"]
    assert len(upstream_calls(mock_upstream)) == before


def test_a_full_batch_of_100_is_served(edge):
    answer = post(edge, OAI, "batchEmbedContents", _batch(100))
    assert answer.status_code == 200 and len(answer.json()["embeddings"]) == 100


def test_budgets_rate_limits_and_plugins_apply(edge):
    with pytest.raises(errors.ClientError) as refused:
        client(edge, BUDGET_KEY).models.embed_content(model=OAI, contents="spend")
    assert refused.value.code == 400 and refused.value.status == "FAILED_PRECONDITION"
    limited = client(edge, LIMITED_KEY)
    limited.models.embed_content(model=OAI, contents="first")
    with pytest.raises(errors.ClientError) as too_many:
        limited.models.embed_content(model=OAI, contents="second")
    assert too_many.value.code == 429 and too_many.value.status == "RESOURCE_EXHAUSTED"
    hooked = post(edge, "hooked-embed", "embedContent", {"content": {"parts": [{"text": "hi"}]}}, HOOKED_KEY)
    assert hooked.status_code == 200 and hooked.headers["x-stamp"] == "seen"  # the LLM's plugin chain ran
    assert len(hooked.json()["embedding"]["values"]) > 0


def test_mixed_dimensions_cannot_be_translated_for_an_openai_llm(edge):
    body = {
        "requests": [
            {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4},
            {"content": {"parts": [{"text": "b"}]}, "outputDimensionality": 8},
        ]
    }
    refused = post(edge, OAI, "batchEmbedContents", body)
    assert refused.status_code == 400 and refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    served = post(edge, GEM, "batchEmbedContents", body)  # Gemini takes a size per request
    assert [len(e["values"]) for e in served.json()["embeddings"]] == [4, 8]
