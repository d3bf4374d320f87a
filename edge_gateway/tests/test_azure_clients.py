"""Code written against Azure OpenAI, pointed at the edge unchanged: the stock `openai.AzureOpenAI` client (the
deployment API) and `openai.OpenAI(base_url=<edge>/openai/v1)` (Azure's v1 API), against a real edge and the
mock LLM: answers, streams, errors as the SDK's exception classes, and the analytics record naming the model."""

from __future__ import annotations

from decimal import Decimal

import httpx
import msgspec
import openai
import pytest

from shared_sdk import (
    AnalyticsRecord,
    BasePlugin,
    Context,
    EndpointRegistration,
    EndpointRequest,
    EndpointResponse,
    EnrichedRequest,
    PluginResponse,
)
from shared_sdk.snapshot import CredentialConfig, hash_credential

from .support import (
    CLIENT_KEY,
    VENDOR_KEY,
    AppConfig,
    BudgetConfig,
    default_credentials,
    llm,
    make_snapshot,
    one_plugin_snapshot,
    run_edge,
)

LIMITED_KEY = "sk-client-azure-limited"
BUDGET_KEY = "sk-client-azure-broke"
API_VERSION = "2024-10-21"
HELLO = [{"role": "user", "content": "hello"}]


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


def azure(edge, key=CLIENT_KEY, **kwargs) -> openai.AzureOpenAI:
    """The Azure client as enterprise code builds it: the endpoint, a key (sent as `api-key`), an API version."""
    return openai.AzureOpenAI(azure_endpoint=edge.url, api_key=key, api_version=API_VERSION, max_retries=0, **kwargs)


def azure_v1(edge, key=CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/openai/v1", api_key=key, max_retries=0)


def last_seen(mock_upstream: str) -> dict:
    return httpx.get(f"{mock_upstream}/_mock/requests").json()["data"][-1]


def test_azure_client_chat_reaches_the_vendor_with_the_deployment_as_model(edge, mock_upstream):
    raw = azure(edge).chat.completions.with_raw_response.create(model="mock-gpt", messages=HELLO)
    assert raw.http_request.url.path == "/openai/deployments/mock-gpt/chat/completions"
    assert "api-key" in raw.http_request.headers and "authorization" not in raw.http_request.headers
    reply = raw.parse()
    assert reply.choices[0].message.content == "Echo: hello"
    seen = last_seen(mock_upstream)
    assert seen["body"]["model"] == "mock-gpt"
    assert seen["headers"]["authorization"] == f"Bearer {VENDOR_KEY}"
    assert CLIENT_KEY not in str(seen["headers"])  # the client's `api-key` never goes upstream
    record = edge.sink.record_of(raw.headers["x-request-id"], AnalyticsRecord)
    assert (record.app_id, record.status_code, record.model, record.llm_slug) == (1, 200, "mock-gpt", "mock-llm")
    assert record.cost > 0


def test_a_client_bound_to_a_deployment_gets_it_whatever_model_the_body_names(edge, mock_upstream):
    """`azure_deployment=` puts the deployment in the URL; the body's `model` is ignored, as at Azure."""
    bound = azure(edge, azure_deployment="mock-gpt")
    raw = bound.chat.completions.with_raw_response.create(model="whatever-the-code-says", messages=HELLO)
    assert raw.parse().choices[0].message.content == "Echo: hello"
    assert last_seen(mock_upstream)["body"]["model"] == "mock-gpt"
    assert edge.sink.record_of(raw.headers["x-request-id"], AnalyticsRecord).model == "mock-gpt"


def test_azure_client_streams(edge):
    chunks = list(azure(edge).chat.completions.create(model="mock-gpt", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hello"


def test_azure_client_completions_and_embeddings(edge):
    client = azure(edge)
    assert client.completions.create(model="mock-gpt", prompt="say hi").choices[0].text
    vectors = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 10


def test_azure_client_responses_and_models(edge):
    answer = azure(edge).responses.create(model="mock-gpt", input="hello")
    assert answer.output_text == "Echo: hello"
    assert azure(edge).responses.retrieve(answer.id).output_text == "Echo: hello"
    assert [item.type for item in azure(edge).responses.input_items.list(answer.id)] == ["message"]
    assert sorted(m.id for m in azure(edge).models.list()) == ["mock-gpt", "text-embedding-3-small"]


def test_v1_api_chat_stream_completions_embeddings_responses_models(edge):
    client = azure_v1(edge)
    assert client.chat.completions.create(model="mock-gpt", messages=HELLO).choices[0].message.content == (
        "Echo: hello"
    )
    chunks = list(client.chat.completions.create(model="mock-gpt", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hello"
    assert client.completions.create(model="mock-gpt", prompt="say hi").choices[0].text
    assert len(client.embeddings.create(model="text-embedding-3-small", input="a").data) == 1
    answer = client.responses.create(model="mock-gpt", input="hello")
    assert answer.output_text == "Echo: hello"
    assert client.responses.retrieve(answer.id).id == answer.id
    assert sorted(m.id for m in client.models.list()) == ["mock-gpt", "text-embedding-3-small"]
    assert client.models.retrieve("mock-gpt").id == "mock-gpt"


@pytest.mark.parametrize("make", [azure, azure_v1], ids=["deployments", "v1"])
def test_errors_reach_the_client_as_the_sdks_exceptions(edge, make):
    with pytest.raises(openai.AuthenticationError):
        make(edge, "sk-wrong").chat.completions.create(model="mock-gpt", messages=HELLO)
    with pytest.raises(openai.NotFoundError) as missing:
        make(edge).chat.completions.create(model="no-such-deployment", messages=HELLO)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.APIStatusError) as broke:
        make(edge, BUDGET_KEY).chat.completions.create(model="mock-gpt", messages=HELLO)
    assert broke.value.status_code == 402 and broke.value.code == "budget_exceeded"


def test_a_rate_limit_reaches_the_azure_client_as_rate_limit_error(edge):
    limited = azure(edge, LIMITED_KEY)
    limited.chat.completions.create(model="mock-gpt", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as refused:
        limited.chat.completions.create(model="mock-gpt", messages=HELLO)
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert refused.value.code == "rate_limit_exceeded"


def post(edge, path: str, body: dict | None = None, **headers: str) -> httpx.Response:
    headers = {"api-key": CLIENT_KEY, **headers}
    return httpx.post(f"{edge.url}{path}", json=body or {"messages": HELLO}, headers=headers)


def test_the_deployment_api_needs_an_api_version_of_any_value_and_the_v1_api_none(edge):
    """As at Azure: code that forgets `api-version` learns it here, not once it meets the real Azure."""
    path = "/openai/deployments/mock-gpt/chat/completions"
    for query in ("", "?api-version=", "?other=1&api-version"):
        refused = post(edge, f"{path}{query}", **{"api-key": "sk-wrong"})  # the version is checked first, as Azure
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["param"], error["type"]) == (
            "MissingApiVersionParameter",
            "api-version",
            "invalid_request_error",
        )
    assert httpx.get(f"{edge.url}/openai/models", headers={"api-key": CLIENT_KEY}).status_code == 400
    for query in ("?api-version=2024-10-21", "?x=1&api-version=preview", "?api-version=%00" + "9" * 2000):
        answer = post(edge, f"{path}{query}")
        assert answer.status_code == 200, answer.text
    assert post(edge, "/openai/v1/chat/completions", {"model": "mock-gpt", "messages": HELLO}).status_code == 200


def test_every_deployment_operation_takes_a_body_without_model(edge, mock_upstream):
    """Azure's REST reference has no `model` in these bodies: the deployment names it."""
    version = f"?api-version={API_VERSION}"
    answered = post(edge, f"/openai/deployments/mock-gpt/responses{version}", {"input": "hello"})
    assert answered.status_code == 200 and answered.json()["output"][0]["content"][0]["text"] == "Echo: hello"
    vectors = post(edge, f"/openai/deployments/text-embedding-3-small/embeddings{version}", {"input": "a"})
    assert vectors.status_code == 200 and len(vectors.json()["data"]) == 1
    assert last_seen(mock_upstream)["body"]["model"] == "text-embedding-3-small"
    done = post(edge, f"/openai/deployments/mock-gpt/completions{version}", {"prompt": "say hi"})
    assert done.status_code == 200 and done.json()["choices"][0]["text"]


def test_a_bearer_key_works_too_and_a_missing_key_is_401(edge):
    path = f"/openai/deployments/mock-gpt/chat/completions?api-version={API_VERSION}"
    assert post(edge, path, **{"api-key": "", "authorization": f"Bearer {CLIENT_KEY}"}).status_code == 200
    refused = post(edge, path, **{"api-key": ""})
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    "deployment",
    [
        "x" * 8000,  # within the head bounds: an ordinary miss, not a costly one
        "..%2F..%2Fv1%2Fchat",
        "%2e%2e",
        "mock%00gpt",
        "%FF%FE",
        "mock-llm%2Fnot-allowed-model",
    ],
)
def test_hostile_deployment_names_are_openai_shaped_4xx(edge, deployment):
    answer = post(edge, f"/openai/deployments/{deployment}/chat/completions?api-version={API_VERSION}")
    assert answer.status_code in (400, 403, 404), answer.text
    error = answer.json()["error"]
    assert error["type"] in ("invalid_request_error", "permission_error") and error["message"]
    assert len(answer.content) < 20_000


def test_unknown_deployment_is_model_not_found_and_an_empty_one_no_route(edge):
    missing = post(edge, f"/openai/deployments/nope/chat/completions?api-version={API_VERSION}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    empty = post(edge, f"/openai/deployments//chat/completions?api-version={API_VERSION}")
    assert empty.status_code == 404 and empty.json()["error"]["code"] == "route_not_found"


def test_a_pinned_model_with_a_slash_is_a_deployment_name(edge, mock_upstream):
    """`llm-slug/model` (routing's pinned form) holds `/`: the SDK sends it as `%2F` and it still routes."""
    reply = azure(edge).chat.completions.create(model="mock-llm/mock-gpt", messages=HELLO)
    assert reply.choices[0].message.content == "Echo: hello"
    assert last_seen(mock_upstream)["body"]["model"] == "mock-gpt"


class HeaderEcho(BasePlugin):
    """Notes what a request hook sees, and hands every header back with one of its own (a header-adding plugin);
    serves `GET /whoami` (require_auth), naming the caller's app and the headers the endpoint was shown."""

    name = "header-echo"
    seen: list[tuple[dict[str, str], dict]] = []

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse | None:
        HeaderEcho.seen.append((dict(req.headers), msgspec.json.decode(req.body)))
        headers = {**req.headers, "x-added": "1"}
        return PluginResponse(modified=True, request=msgspec.structs.replace(req, headers=headers))

    def get_endpoint_registrations(self) -> list[EndpointRegistration]:
        return [EndpointRegistration(path="/whoami", methods=["GET"], require_auth=True)]

    async def handle_endpoint_request(self, ctx: Context, req: EndpointRequest) -> EndpointResponse:
        app_id = req.app.id if req.app is not None else None
        return EndpointResponse(body=msgspec.json.encode({"app_id": app_id, "headers": sorted(req.headers)}))


def test_hooks_see_the_deployment_as_model_and_never_the_api_key(upstream, tmp_path):
    """The `api-key` is redacted for hooks like the other key headers, and a hook handing the headers back does not
    send the redacted value (or the key) upstream; the body hooks see names the deployment."""
    HeaderEcho.seen.clear()
    snap = one_plugin_snapshot(upstream, HeaderEcho, "header-echo", "closed", False)
    with run_edge(snap, tmp_path) as running:
        bound = azure(running, azure_deployment="mock-gpt")
        assert bound.chat.completions.create(model="other", messages=HELLO).choices[0].message.content
    headers, body = HeaderEcho.seen[-1]
    assert headers["api-key"] == "[redacted]" and body["model"] == "mock-gpt"
    forwarded = last_seen(upstream)["headers"]
    assert forwarded.get("x-added") == "1" and "api-key" not in forwarded


def test_a_plugin_endpoint_takes_the_api_key_and_never_shows_it(upstream, tmp_path):
    snap = one_plugin_snapshot(upstream, HeaderEcho, "header-echo", "closed", False)
    with run_edge(snap, tmp_path) as running:
        answer = httpx.get(f"{running.url}/plugins/header-echo/whoami", headers={"api-key": CLIENT_KEY})
        refused = httpx.get(f"{running.url}/plugins/header-echo/whoami", headers={"api-key": "sk-wrong"})
    assert answer.status_code == 200 and answer.json()["app_id"] == 1
    assert "api-key" not in answer.json()["headers"]
    assert refused.status_code == 401
