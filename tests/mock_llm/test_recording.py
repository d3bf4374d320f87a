"""The inspection routes a gateway test uses to see what reached the upstream."""

from __future__ import annotations

import httpx
import openai
import pytest

from .conftest import KEY, MockServer

MESSAGES = [{"role": "user", "content": "Hi"}]


def test_requests_log_keeps_path_headers_body_and_model(mock: MockServer, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-trace": "t-1"})
    client.embeddings.create(model="text-embedding-3-small", input="Hi")

    entries = httpx.get(f"{mock.url}/_mock/requests").json()["data"]
    chat, embedding = entries
    assert (chat["method"], chat["path"], chat["model"], chat["status"]) == (
        "POST",
        "/v1/chat/completions",
        "gpt-4o",
        200,
    )
    assert chat["headers"]["authorization"] == f"Bearer {KEY}"
    assert chat["headers"]["x-trace"] == "t-1"
    assert chat["body"]["messages"] == MESSAGES
    assert chat["id"].startswith("req_")
    assert embedding["path"] == "/v1/embeddings"


def test_requests_log_limit_and_path_filter(mock: MockServer, client: openai.OpenAI) -> None:
    for word in ("a", "b", "c"):
        client.chat.completions.create(model=f"model-{word}", messages=MESSAGES)
    client.models.list()

    last_two = httpx.get(f"{mock.url}/_mock/requests", params={"limit": 2}).json()["data"]
    chats = httpx.get(f"{mock.url}/_mock/requests", params={"path": "/v1/chat/completions"}).json()["data"]
    bad = httpx.get(f"{mock.url}/_mock/requests", params={"limit": "many"})

    assert [entry["path"] for entry in last_two] == ["/v1/chat/completions", "/v1/models"]
    assert [entry["model"] for entry in chats] == ["model-a", "model-b", "model-c"]
    assert bad.status_code == 400


def test_rejected_requests_are_recorded_with_the_key_they_carried(mock: MockServer) -> None:
    with mock.openai(api_key="sk-client-secret") as wrong:
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    [entry] = httpx.get(f"{mock.url}/_mock/requests").json()["data"]
    stats = httpx.get(f"{mock.url}/_mock/stats").json()
    assert entry["status"] == 401
    assert stats["last_auth"] == {"/v1/chat/completions": "Bearer sk-client-secret"}


def test_stats_count_requests_streams_and_usage(mock: MockServer, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    httpx.post(
        f"{mock.url}/v1/messages",
        json={"model": "claude-x", "max_tokens": 10, "messages": MESSAGES},
        headers={"x-api-key": "anthropic-key", "anthropic-version": "2023-06-01"},
    )

    stats = httpx.get(f"{mock.url}/_mock/stats").json()
    assert stats["requests_total"] == 3
    assert stats["streams"] == 1
    assert stats["by_path"] == {"/v1/chat/completions": 2, "/v1/messages": 1}
    assert stats["by_status"] == {"200": 2, "401": 1}
    assert stats["last_auth"] == {"/v1/chat/completions": f"Bearer {KEY}", "/v1/messages": "anthropic-key"}
    assert stats["usage"] == {"prompt_tokens": 2, "completion_tokens": 6}  # two chats: "Hi" = 1, "Echo: Hi" = 3


def test_reset_clears_log_counters_and_fail_times(mock: MockServer, client: openai.OpenAI) -> None:
    spec = {"x-mock-fault": "fail_times=1; key=once"}
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=spec)
    httpx.post(f"{mock.url}/_mock/reset").raise_for_status()

    assert httpx.get(f"{mock.url}/_mock/requests").json()["data"] == []
    assert httpx.get(f"{mock.url}/_mock/stats").json()["requests_total"] == 0
    with pytest.raises(openai.APIStatusError):  # the key's count restarted, so it fails again
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=spec)


def test_health_is_public(mock: MockServer) -> None:
    response = httpx.get(f"{mock.url}/health")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})
