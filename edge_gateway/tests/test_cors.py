"""Browser clients (`EDGE_CORS_ALLOW_ORIGINS`, `edge_gateway/cors.py`): a preflight is answered before
authentication and costs nothing (no rate-limit slot, no analytics row); every answer to an allowed origin, in
every shape (success, stream, each error, the 401 and the 429), names the origin; an origin not allowed gets no
CORS header; without the setting the edge answers as before. Against a real edge (uvicorn, the edge's protocol),
with real HTTP requests, as a browser sends them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fjordgate.env import ConfigError
from shared_sdk import AnalyticsRecord
from shared_sdk.snapshot import AppConfig, CredentialConfig, hash_credential

from .support import CLIENT_KEY, default_credentials, make_snapshot, run_edge

ORIGIN = "http://app.example.test:3000"
OTHER_ORIGIN = "https://evil.example.test"
LIMITED_KEY = "sk-client-limited"
CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
SDK_HEADERS = (
    "authorization,content-type,x-stainless-os,x-stainless-lang,x-stainless-package-version,x-stainless-retry-count"
)


def _snapshot(upstream: str) -> Any:
    return make_snapshot(
        upstream,
        apps=[
            AppConfig(id=1, name="app-one", llm_ids=[1]),
            AppConfig(id=2, name="app-two", llm_ids=[]),
            AppConfig(id=3, name="limited", llm_ids=[1], rate_limit_rpm=1),
        ],
        credentials=[
            *default_credentials(),
            CredentialConfig(key_hash=hash_credential(LIMITED_KEY), app_id=3, credential_id=10),
        ],
    )


@pytest.fixture
def edge(upstream: str, tmp_path: Any) -> Any:
    with run_edge(_snapshot(upstream), tmp_path, cors_allow_origins=(ORIGIN, "https://other.example.test")) as running:
        yield running


def preflight(url: str, origin: str = ORIGIN, headers: str = SDK_HEADERS, method: str = "POST") -> httpx.Response:
    return httpx.options(
        url,
        headers={"origin": origin, "access-control-request-method": method, "access-control-request-headers": headers},
    )


def assert_readable(reply: httpx.Response, origin: str = ORIGIN) -> None:
    """What a browser needs to hand the answer to the page: the origin, `Vary`, the exposed headers; no cookies."""
    assert reply.headers.get("access-control-allow-origin") == origin, (reply.status_code, dict(reply.headers))
    assert "origin" in reply.headers.get("vary", "").lower()
    exposed = {h.strip() for h in reply.headers.get("access-control-expose-headers", "").split(",")}
    assert {"x-request-id", "retry-after"} <= exposed
    assert {"x-ratelimit-remaining-requests", "anthropic-ratelimit-tokens-remaining"} <= exposed  # a page paces itself
    assert "access-control-allow-credentials" not in reply.headers


def test_a_preflight_is_answered_without_a_key_and_costs_no_rate_limit_nor_analytics(edge):
    for _ in range(3):  # the app may make 1 request a minute: preflights must not take it
        reply = preflight(f"{edge.url}/v1/chat/completions")
        assert reply.status_code == 204
        assert reply.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in reply.headers["access-control-allow-methods"]
        assert reply.headers["access-control-allow-headers"] == SDK_HEADERS.replace(",", ", ")
        assert int(reply.headers["access-control-max-age"]) > 0
        assert "origin" in reply.headers["vary"].lower()
        assert "access-control-allow-credentials" not in reply.headers
    for path in ("/v1/messages", "/v1beta/models/mock-gpt:generateContent", "/v1/models", "/plugins/x/y", "/nope"):
        assert preflight(edge.url + path).status_code == 204, path
    answer = httpx.post(
        f"{edge.url}/v1/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {LIMITED_KEY}", "origin": ORIGIN},
    )
    assert answer.status_code == 200
    assert_readable(answer)
    record = edge.sink.record_of(answer.headers["x-request-id"], AnalyticsRecord)
    assert record.status_code == 200
    assert len(edge.sink.of(AnalyticsRecord)) == 1  # the preflights made none


def test_every_answer_to_an_allowed_origin_is_readable_by_the_page(edge):
    key = {"authorization": f"Bearer {CLIENT_KEY}", "origin": ORIGIN}
    ok = httpx.post(f"{edge.url}/v1/chat/completions", json=CHAT, headers=key)
    assert ok.status_code == 200 and ok.json()["choices"]
    assert_readable(ok)
    with httpx.stream("POST", f"{edge.url}/v1/chat/completions", json={**CHAT, "stream": True}, headers=key) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        assert "[DONE]" in stream.read().decode()
        assert_readable(stream)
    bad_key = httpx.post(
        f"{edge.url}/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-wrong", "origin": ORIGIN}
    )
    assert bad_key.status_code == 401 and bad_key.json()["error"]["code"] == "invalid_api_key"
    assert_readable(bad_key)
    bad_json = httpx.post(f"{edge.url}/v1/chat/completions", content=b"{", headers=key)
    assert bad_json.status_code == 400
    assert_readable(bad_json)
    no_route = httpx.get(f"{edge.url}/v1/nothing-here", headers=key)
    assert no_route.status_code == 404
    assert_readable(no_route)
    anthropic = httpx.post(
        f"{edge.url}/v1/messages", json={"model": "mock-gpt"}, headers={"x-api-key": "sk-wrong", "origin": ORIGIN}
    )
    assert anthropic.status_code == 401 and anthropic.json()["type"] == "error"
    assert_readable(anthropic)
    gemini = httpx.post(
        f"{edge.url}/v1beta/models/mock-gpt:generateContent",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        headers={"x-goog-api-key": CLIENT_KEY, "origin": "https://other.example.test"},
    )
    assert gemini.status_code == 200 and gemini.json()["candidates"]
    assert_readable(gemini, "https://other.example.test")
    limited = {"authorization": f"Bearer {LIMITED_KEY}", "origin": ORIGIN}
    assert httpx.post(f"{edge.url}/v1/chat/completions", json=CHAT, headers=limited).status_code == 200
    over = httpx.post(f"{edge.url}/v1/chat/completions", json=CHAT, headers=limited)
    assert over.status_code == 429 and over.headers["retry-after"]
    assert_readable(over)


def test_an_origin_not_allowed_gets_no_cors_headers(edge):
    refused = preflight(f"{edge.url}/v1/chat/completions", origin=OTHER_ORIGIN)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "cors_origin_not_allowed"
    assert not [h for h in refused.headers if h.startswith("access-control-")]
    answer = httpx.post(
        f"{edge.url}/v1/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {CLIENT_KEY}", "origin": OTHER_ORIGIN},
    )
    assert answer.status_code == 200  # served, but the browser keeps it from the page
    assert not [h for h in answer.headers if h.startswith("access-control-")]
    near = preflight(f"{edge.url}/v1/chat/completions", origin=ORIGIN + "/")  # not the origin a browser sends
    assert near.status_code == 403 and "access-control-allow-origin" not in near.headers


@pytest.mark.parametrize(
    "requested",
    ["authorization, content-type\r\nx-injected: 1", "a b", "x" * 5000, "authorization,,content-type", "é"],
)
def test_requested_headers_that_are_not_a_short_token_list_are_not_echoed(edge, requested):
    try:
        reply = preflight(f"{edge.url}/v1/chat/completions", headers=requested)
    except (httpx.LocalProtocolError, UnicodeEncodeError):
        reply = httpx.options(
            f"{edge.url}/v1/chat/completions",
            headers=[
                (b"origin", ORIGIN.encode()),
                (b"access-control-request-method", b"POST"),
                (b"access-control-request-headers", requested.encode("utf-8").replace(b"\r\n", b" ")),
            ],
        )
    assert reply.status_code == 204
    allowed = [h.strip() for h in reply.headers["access-control-allow-headers"].split(",")]
    assert {"authorization", "x-api-key", "anthropic-version", "x-goog-api-key", "content-type"} <= set(allowed)
    assert any(h.startswith("x-stainless-") for h in allowed)
    assert "x-injected" not in reply.headers and len(reply.headers["access-control-allow-headers"]) < 2048


def test_with_a_star_every_origin_may_call(upstream, tmp_path):
    with run_edge(make_snapshot(upstream), tmp_path, cors_allow_origins=("*",)) as edge:
        reply = preflight(f"{edge.url}/v1/chat/completions", origin=OTHER_ORIGIN)
        assert reply.status_code == 204 and reply.headers["access-control-allow-origin"] == "*"
        answer = httpx.post(
            f"{edge.url}/v1/chat/completions",
            json=CHAT,
            headers={"authorization": f"Bearer {CLIENT_KEY}", "origin": OTHER_ORIGIN},
        )
        assert answer.status_code == 200
        assert_readable(answer, "*")


def test_without_the_setting_the_edge_answers_as_before(upstream, tmp_path):
    with run_edge(make_snapshot(upstream), tmp_path) as edge:
        reply = preflight(f"{edge.url}/v1/chat/completions")
        assert reply.status_code == 405
        answer = httpx.post(
            f"{edge.url}/v1/chat/completions",
            json=CHAT,
            headers={"authorization": f"Bearer {CLIENT_KEY}", "origin": ORIGIN},
        )
        assert answer.status_code == 200
        assert not [h for h in answer.headers if h.startswith("access-control-")]


@pytest.mark.parametrize(
    "value",
    ["https://app.example.test/", "*.example.test", "https://*.example.test", "null", "ftp://x", "https://a.test,*"],
)
def test_a_malformed_origin_stops_the_edge_at_start(tmp_path, value):
    from edge_gateway.settings import load_settings

    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text("{}")
    with pytest.raises(ConfigError) as refused:
        load_settings({"EDGE_SNAPSHOT_FILE": str(snapshot), "EDGE_CORS_ALLOW_ORIGINS": value})
    assert "EDGE_CORS_ALLOW_ORIGINS" in str(refused.value)


def test_origins_are_read_as_browsers_send_them(tmp_path):
    from edge_gateway.settings import load_settings

    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text("{}")
    value = "HTTPS://App.Example.test:443, http://localhost:3000 ,http://[::1]:8080"
    settings = load_settings({"EDGE_SNAPSHOT_FILE": str(snapshot), "EDGE_CORS_ALLOW_ORIGINS": value})
    assert settings.cors_allow_origins == ("https://app.example.test", "http://localhost:3000", "http://[::1]:8080")
    assert load_settings({"EDGE_SNAPSHOT_FILE": str(snapshot)}).cors_allow_origins == ()
