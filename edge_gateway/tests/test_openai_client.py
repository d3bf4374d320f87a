"""The stock `openai` package against a real edge: completions, streams, embeddings, models, and errors."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest

from shared_sdk import AnalyticsRecord
from shared_sdk.snapshot import CredentialConfig, hash_credential

from .support import (
    CLIENT_KEY,
    OTHER_KEY,
    VENDOR_KEY,
    AppConfig,
    BudgetConfig,
    default_credentials,
    llm,
    make_snapshot,
    run_edge,
)

LIMITED_KEY = "sk-client-limited-app3"
BUDGET_KEY = "sk-client-budget-app4"


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    snap = make_snapshot(
        mock_upstream,
        llms=[llm(1, "mock-llm", f"{mock_upstream}/v1", allowed_models=["mock-gpt", "text-embedding-3-small"])],
        apps=[
            AppConfig(id=1, name="one", llm_ids=[1]),
            AppConfig(id=2, name="two", llm_ids=[]),
            AppConfig(id=3, name="limited", llm_ids=[1], rate_limit_rpm=1),
            AppConfig(id=4, name="broke", llm_ids=[1]),
        ],
        credentials=[
            *default_credentials(),
            CredentialConfig(key_hash=hash_credential(LIMITED_KEY), app_id=3, credential_id=10),
            CredentialConfig(key_hash=hash_credential(BUDGET_KEY), app_id=4, credential_id=11),
        ],
        budgets=[BudgetConfig(id=1, scope="app", target_id=4, limit=Decimal("0.000001"))],
    )
    with run_edge(snap, tmp_path_factory.mktemp("edge")) as running:
        yield running


def client(edge, key=CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=key, max_retries=0)


def test_chat_completion_and_usage_accounted(edge, mock_upstream):
    reply = client(edge).chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == "Echo: hello"
    assert reply.usage.total_tokens > 0
    seen = httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]
    assert seen["headers"]["authorization"] == f"Bearer {VENDOR_KEY}"
    assert CLIENT_KEY not in str(seen["headers"])
    record = [r for r in edge.sink.wait_for(AnalyticsRecord, 1) if r.request_id == reply._request_id or True][-1]
    assert record.app_id == 1 and record.status_code == 200 and record.cost > 0


def test_stream_yields_chunks_without_an_unrequested_usage_chunk(edge):
    chunks = list(
        client(edge).chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "stream me"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: stream me"
    assert all(c.choices for c in chunks)  # the usage chunk the edge asked for is not passed on


def test_stream_with_usage_when_asked(edge):
    chunks = list(
        client(edge).chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": "count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_legacy_completions_and_embeddings(edge):
    done = client(edge).completions.create(model="mock-gpt", prompt="say hi")
    assert done.choices[0].text
    vectors = client(edge).embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 10


def test_model_list_shows_only_the_apps_models(edge):
    assert sorted(m.id for m in client(edge).models.list()) == ["mock-gpt", "text-embedding-3-small"]
    assert list(client(edge, OTHER_KEY).models.list()) == []


def test_documented_errors(edge):
    with pytest.raises(openai.AuthenticationError):
        client(edge, "sk-wrong").chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        client(edge).chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.PermissionDeniedError):
        client(edge, OTHER_KEY).chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as bad:
        client(edge).chat.completions.create(model="mock-gpt", messages=[])
    assert bad.value.code == "invalid_request_error" or "messages" in str(bad.value)
    with pytest.raises(openai.InternalServerError) as upstream:
        client(edge).chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "x"}], extra_body={"mock": "status=500"}
        )
    assert upstream.value.status_code == 502


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"temperature": "hot"}, "Invalid type for 'temperature': expected a decimal, but got a string instead."),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "Invalid type for 'messages[0].content': expected one of a string or array of objects, but got an "
            "integer instead.",
        ),
    ],
)
def test_a_field_the_vendor_refuses_reaches_the_client_as_its_400(edge, fields, message):
    """The edge leaves field validation to an OpenAI-compatible vendor: the vendor's 400, in the client's shape."""
    with pytest.raises(openai.BadRequestError) as refused:
        client(edge).chat.completions.create(
            **{"model": "mock-gpt", "messages": [{"role": "user", "content": "x"}], **fields}
        )

    assert refused.value.status_code == 400
    assert refused.value.type == "invalid_request_error"
    assert refused.value.message.endswith(message)


def test_rate_limit_gives_429_with_retry_after(edge):
    limited = client(edge, LIMITED_KEY)
    limited.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "one"}])
    with pytest.raises(openai.RateLimitError) as err:
        limited.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "two"}])
    assert int(err.value.response.headers["retry-after"]) >= 1
    assert err.value.response.json()["error"]["code"] == "rate_limit_exceeded"


def test_budget_exhausted_gives_402(edge):
    with pytest.raises(openai.APIStatusError) as err:
        client(edge, BUDGET_KEY).chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 402
    assert err.value.response.json()["error"]["code"] == "budget_exceeded"


def test_malformed_and_oversized_bodies(edge):
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"}
    bad = httpx.post(f"{edge.url}/v1/chat/completions", content=b"{not json", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    huge = httpx.post(f"{edge.url}/v1/chat/completions", content=b"x" * (5 * 1024 * 1024), headers=headers)
    assert huge.status_code == 413 and huge.json()["error"]["type"] == "invalid_request_error"
