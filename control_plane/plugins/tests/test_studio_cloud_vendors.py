"""The studio's own LLM calls to the cloud vendors: Azure OpenAI (deployment URL, `api-version`, `api-key`), Gemini
on Vertex AI (an OAuth2 token minted from the LLM's service-account key) and AWS Bedrock (Converse, SigV4-signed).

The vendor is the real mock LLM in its own process, speaking each cloud as the cloud does: it checks Azure's
`api-key`, verifies the service account's signed assertion before it issues a Vertex AI token, and verifies Bedrock's
SigV4 signature with botocore. Calls go through `StudioServicesImpl` (what a plugin's `ctx.services.studio` and the
portal's chat use), so budgets and analytics rows are the real ones, read back from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from control_plane.analytics.models import AnalyticsEvent
from control_plane.catalog.services import model_price_upsert
from control_plane.llms.services import llm_create
from control_plane.plugins.studio_services import StudioServicesImpl
from fjordgate.embedded import free_port
from fjordgate.mock_llm.settings import DEFAULT_AWS_CREDENTIALS
from shared_sdk import ServiceError
from shared_sdk.messages import LLMCallResponse, LLMMessage
from tests.support.processes import start_process

pytestmark = pytest.mark.django_db(transaction=True)  # the studio services read and write on their own threads

AZURE_KEY = "azure-studio-key-0123456789"
PROJECT, REGION = "fjord-proj", "us-central1"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "current_time",
            "description": "the time",
            "parameters": {"type": "object", "properties": {"timezone": {"type": "string", "enum": ["UTC"]}}},
        },
    }
]


def _private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def service_key() -> str:
    """The private key of the mock's Vertex AI service account (the mock holds its public half)."""
    return _private_pem()


@pytest.fixture(scope="module")
def mock_url(service_key: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One mock for the module: Vertex AI tokens it issued stay valid across tests, as a real token would."""
    public = tmp_path_factory.mktemp("vertex") / "public.pem"
    private = serialization.load_pem_private_key(service_key.encode(), password=None)
    public.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    port = free_port()
    handle = start_process(
        [
            sys.executable,
            "-m",
            "fjordgate.mock_llm",
            "--port",
            str(port),
            "--require-key",
            AZURE_KEY,
            "--vertex-public-key",
            str(Path(public)),
        ],
        ready_url=f"http://127.0.0.1:{port}/health",
        name="mock-llm-clouds",
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        handle.discard()


@pytest.fixture(autouse=True)
def _fresh_log(mock_url: str) -> None:
    httpx.post(f"{mock_url}/_mock/reset", timeout=5)


def _service_account(private_pem: str, mock_url: str) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "studio-key-1",
            "private_key": private_pem,
            "client_email": f"studio@{PROJECT}.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "token_uri": f"{mock_url}/token",
        }
    )


def _llm(vendor: str, mock_url: str, service_key: str, *, wrong: bool = False) -> Any:
    """An LLM of `vendor` on the mock; `wrong` gives it credentials the vendor does not accept."""
    data: dict[str, Any] = {"name": vendor, "slug": f"studio-{vendor}", "vendor": vendor, "api_endpoint": mock_url}
    if vendor == "azure":
        data |= {
            "api_key": "not-the-azure-key" if wrong else AZURE_KEY,
            "default_model": "gpt-4o",
            "metadata": {"deployments": {"gpt-4o": "studio-gpt4o"}, "api_version": "2024-10-21"},
        }
    elif vendor == "vertex":
        data |= {
            "api_key": _service_account(_private_pem() if wrong else service_key, mock_url),
            "default_model": "gemini-2.5-flash",
            "metadata": {"region": REGION, "project": PROJECT},
        }
    else:
        key_id, secret = DEFAULT_AWS_CREDENTIALS.split(":")
        data |= {
            "api_key": f"{key_id}:{'not-the-secret' if wrong else secret}",
            "default_model": "anthropic.claude-3-haiku-20240307-v1:0",
            "metadata": {"region": "us-east-1"},
        }
    model_price_upsert(
        data={
            "vendor": vendor,
            "model": data["default_model"],
            "prompt_per_million": Decimal("1000"),
            "completion_per_million": Decimal("2000"),
        }
    )
    return llm_create(data=data)


def _call(llm_id: int, messages: list[LLMMessage], **kwargs: Any) -> LLMCallResponse:
    return asyncio.run(StudioServicesImpl("cloud-caller").call_llm(llm_id, messages, **kwargs))


def _stream(llm_id: int, messages: list[LLMMessage]) -> list[Any]:
    async def collect() -> list[Any]:
        return [chunk async for chunk in StudioServicesImpl("cloud-caller").stream_llm(llm_id, messages)]

    return asyncio.run(collect())


def _seen(mock_url: str) -> list[dict[str, Any]]:
    """What the mock received since the test began (token exchanges included), oldest first."""
    return httpx.get(f"{mock_url}/_mock/requests", params={"limit": 50}, timeout=5).json()["data"]


VENDORS = ["azure", "vertex", "bedrock"]


def _check_wire(vendor: str, seen: dict[str, Any], stream: bool) -> None:
    """Each cloud's URL and credentials, and no key in a header it does not belong in."""
    headers = seen["headers"]
    if vendor == "azure":
        assert seen["path"] == "/openai/deployments/studio-gpt4o/chat/completions"
        assert seen["query"] == "api-version=2024-10-21"
        assert headers["api-key"] == AZURE_KEY and "authorization" not in headers
    elif vendor == "vertex":
        method = "streamGenerateContent" if stream else "generateContent"
        assert (
            seen["path"]
            == f"/v1/projects/{PROJECT}/locations/{REGION}/publishers/google/models/gemini-2.5-flash:{method}"
        )
        assert headers["authorization"].startswith("Bearer ya29.mock-")
        assert "private_key" not in json.dumps(headers)
    else:
        operation = "converse-stream" if stream else "converse"
        assert seen["path"] == f"/model/anthropic.claude-3-haiku-20240307-v1:0/{operation}"
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDMOCKBEDROCK/")
        assert DEFAULT_AWS_CREDENTIALS.split(":")[1] not in json.dumps(headers)


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_studio_call_and_stream_reach_the_cloud_vendor_and_record_its_usage(vendor, mock_url, service_key):
    llm = _llm(vendor, mock_url, service_key)
    answer = _call(llm.pk, [LLMMessage(role="system", content="be brief"), LLMMessage(content="Hello, cloud")])
    assert answer.content == "Echo: Hello, cloud" and answer.finish_reason == "stop"
    assert answer.prompt_tokens > 0 and answer.completion_tokens > 0
    [sent] = [r for r in _seen(mock_url) if r["path"] != "/token"]
    _check_wire(vendor, sent, stream=False)

    chunks = _stream(llm.pk, [LLMMessage(content="Hello, stream")])
    assert "".join(c.content for c in chunks) == "Echo: Hello, stream"
    assert chunks[-1].done and chunks[-1].finish_reason == "stop"
    streamed = [r for r in _seen(mock_url) if r["path"] != "/token"][-1]
    _check_wire(vendor, streamed, stream=True)

    plain, stream = AnalyticsEvent.objects.filter(llm_id=llm.pk).order_by("timestamp")
    for row in (plain, stream):
        assert (row.edge_id, row.vendor, row.status_code, row.error_type) == ("studio", vendor, 200, "")
        assert row.cost == (row.prompt_tokens * 1000 + row.completion_tokens * 2000) / Decimal(1_000_000)
    assert (plain.prompt_tokens, plain.completion_tokens) == (answer.prompt_tokens, answer.completion_tokens)
    # the stream's usage is the vendor's own figure (the mock counts 5 tokens for "Echo: Hello, stream")
    assert stream.completion_tokens == answer.completion_tokens
    assert len([r for r in _seen(mock_url) if r["path"] == "/token"]) <= 1, "one token served both Vertex AI calls"


@pytest.mark.parametrize("vendor", VENDORS)
def test_tool_calls_come_back_in_the_studios_shape_and_a_tool_round_trip_is_accepted(vendor, mock_url, service_key):
    llm = _llm(vendor, mock_url, service_key)
    messages = [LLMMessage(role="system", content="be brief"), LLMMessage(content="call tool current_time")]
    answer = _call(llm.pk, messages, tools=TOOLS)
    assert answer.finish_reason == "tool_calls"
    [call] = answer.tool_calls
    assert call["type"] == "function" and call["function"]["name"] == "current_time"
    assert isinstance(json.loads(call["function"]["arguments"]), dict)
    follow_up = [
        *messages,
        LLMMessage(role="assistant", tool_calls=answer.tool_calls),
        LLMMessage(role="tool", tool_call_id=call["id"], name="current_time", content="12:00 UTC"),
    ]
    final = _call(llm.pk, follow_up, tools=TOOLS)
    assert final.content == "Echo: 12:00 UTC" and not final.tool_calls


@pytest.mark.parametrize("vendor", VENDORS)
def test_credentials_the_vendor_refuses_are_a_clear_service_error_that_never_quotes_them(vendor, mock_url, service_key):
    llm = _llm(vendor, mock_url, service_key, wrong=True)
    with pytest.raises(ServiceError) as plain:
        _call(llm.pk, [LLMMessage(content="Hello")])
    with pytest.raises(ServiceError) as streamed:
        _stream(llm.pk, [LLMMessage(content="Hello")])
    for err in (plain, streamed):
        message = str(err.value)
        assert f"({'studio-' + vendor!r})" in message and "refused its credentials" in message
        assert "check the LLM's key" in message
        assert "not-the" not in message and "PRIVATE KEY" not in message
    rows = AnalyticsEvent.objects.filter(llm_id=llm.pk)
    assert [r.error_type for r in rows] == ["upstream_auth_failed"] * 2
    assert all(r.cost == 0 for r in rows)


def test_a_bedrock_llm_whose_key_was_removed_is_refused_before_any_call(mock_url, service_key):
    from control_plane.llms.services import llm_update

    llm = _llm("bedrock", mock_url, service_key)
    llm_update(llm=llm, data={"api_key": ""})
    with pytest.raises(ServiceError, match="'studio-bedrock' on AWS Bedrock needs a key ACCESS_KEY_ID:SECRET"):
        _call(llm.pk, [LLMMessage(content="Hello")])
    assert _seen(mock_url) == []


def test_vertex_tokens_are_exchanged_once_off_the_loop_and_refreshed_ahead_in_the_background(mock_url, service_key):
    from control_plane.plugins.studio_upstream import Upstream
    from control_plane.plugins.studio_vertex import VertexTokens

    upstream = Upstream(
        id=10_001,
        slug="v",
        vendor="vertex",
        namespace="",
        base=mock_url,
        key=_service_account(service_key, mock_url),
        default_model="gemini-2.5-flash",
        metadata={"region": REGION, "project": PROJECT},
    )
    # The cold start keeps the usual refresh-ahead window: a call that starts only after the first exchange ended
    # (the loop thread can be descheduled that long on a busy machine while it starts the worker threads) must find
    # a fresh token and use it, not refresh it again.
    tokens = VertexTokens()

    async def cold_start() -> tuple[set[str], int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        ticker = asyncio.create_task(tick())
        values = await asyncio.gather(*(tokens.authorization(upstream) for _ in range(5)))
        ticker.cancel()
        return set(values), ticks

    values, ticks = asyncio.run(cold_start())
    assert len(values) == 1 and tokens.fetches == 1, "five waiting calls, one exchange"
    assert ticks > 1, "the loop kept running while the key was exchanged in a thread"

    tokens.refresh_ahead_s = 4000.0  # longer than the mock's tokens live: from now on every use refreshes ahead

    async def warm() -> str:
        return await tokens.authorization(upstream)

    assert asyncio.run(warm()) in values, "a valid token is used at once while a new one is fetched"
    for _ in range(200):
        if tokens.fetches == 2 and asyncio.run(warm()) not in values:
            break
        time.sleep(0.02)
    assert tokens.fetches >= 2 and asyncio.run(warm()) not in values, "the background refresh replaced the token"
    assert [r["status"] for r in _seen(mock_url) if r["path"] == "/token"][:2] == [200, 200]
