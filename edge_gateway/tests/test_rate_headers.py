"""Rate-limit headers on the edge's answers, read through the stock SDKs: an app with limits learns its limit, what
remains and when it grows, in its SDK's dialect (OpenAI's `x-ratelimit-*`, Anthropic's `anthropic-ratelimit-*`),
on answers, streams and the edge's own 429s; an app without limits gets none; a user's tighter limit wins.

Before, only the 429 said anything (`retry-after`): a client could not pace itself until it was refused.
The edge's limiter runs on a frozen clock here, so no minute turns between two requests of a test."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import anthropic
import openai
import orjson
import pytest
from google import genai

from edge_gateway.rate_headers import rate_headers
from edge_gateway.ratelimit import RateLimiter
from shared_sdk import BasePlugin, Context, ResponseWriteRequest, ResponseWriteResponse
from shared_sdk.snapshot import CredentialConfig, PluginConfig, hash_credential

from .hostile_vendor import ok, raw, vendor_thread
from .support import CLIENT_KEY, AppConfig, UserConfig, default_credentials, llm, make_snapshot, run_edge

KEYS = {
    "tpm": "sk-rate-headers-tpm",
    "tight": "sk-rate-headers-tight",
    "user": "sk-rate-headers-user",
    "claude": "sk-rate-headers-claude",
    "gemini": "sk-rate-headers-gemini",
}
NOW = (int(time.time()) // 60) * 60 + 15.0
"""The limiter's frozen clock: 15 s into a fixed minute."""
DURATION = re.compile(r"(\d+ms|(\d+m)?\d+s)")
MESSAGES = [{"role": "user", "content": "pace me"}]


class Clock:
    def __call__(self) -> float:
        return NOW


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    apps = [
        AppConfig(id=1, name="free", llm_ids=[1]),
        AppConfig(id=3, name="tpm", llm_ids=[1], rate_limit_rpm=50, rate_limit_tpm=100_000),
        AppConfig(id=4, name="tight", llm_ids=[1], rate_limit_rpm=2),
        AppConfig(id=5, name="users", llm_ids=[1], rate_limit_rpm=100, user_rate_limit_rpm=3),
        AppConfig(id=6, name="claude", llm_ids=[1], rate_limit_rpm=2, rate_limit_tpm=100_000),
        AppConfig(id=8, name="gemini", llm_ids=[1], rate_limit_rpm=10),
    ]
    credentials = [
        *default_credentials(),
        CredentialConfig(key_hash=hash_credential(KEYS["tpm"]), app_id=3, credential_id=20),
        CredentialConfig(key_hash=hash_credential(KEYS["tight"]), app_id=4, credential_id=21),
        CredentialConfig(key_hash=hash_credential(KEYS["user"]), app_id=5, credential_id=22, user_id=7),
        CredentialConfig(key_hash=hash_credential(KEYS["claude"]), app_id=6, credential_id=23),
        CredentialConfig(key_hash=hash_credential(KEYS["gemini"]), app_id=8, credential_id=24),
    ]
    snap = make_snapshot(
        mock_upstream,
        llms=[llm(1, "mock-llm", f"{mock_upstream}/v1", allowed_models=["mock-gpt"])],
        apps=apps,
        credentials=credentials,
        users=[UserConfig(id=7, email="u7@example.com")],
    )
    with run_edge(snap, tmp_path_factory.mktemp("edge")) as running:
        running.edge.runtime.limiter._clock = Clock()
        yield running


def openai_client(edge, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=key, max_retries=0)


def anthropic_client(edge, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=edge.url, api_key=key, max_retries=0)


def test_openai_callers_see_requests_and_tokens_fall(edge):
    chat = openai_client(edge, KEYS["tpm"]).chat.completions.with_raw_response
    first = chat.create(model="mock-gpt", messages=MESSAGES)
    second = chat.create(model="mock-gpt", messages=MESSAGES)
    streamed = chat.create(model="mock-gpt", messages=MESSAGES, stream=True)
    list(streamed.parse())  # read to its end: the stream's tokens are counted once it ends
    heads = [first.headers, second.headers, streamed.headers]

    assert [h["x-ratelimit-limit-requests"] for h in heads] == ["50"] * 3
    assert [h["x-ratelimit-remaining-requests"] for h in heads] == ["49", "48", "47"]
    assert [h["x-ratelimit-limit-tokens"] for h in heads] == ["100000"] * 3
    tokens = [int(h["x-ratelimit-remaining-tokens"]) for h in heads]
    used = first.parse().usage.total_tokens
    assert used > 0
    assert tokens[0] - tokens[1] == used, "the first request's tokens are gone from the second's count"
    assert tokens[1] - tokens[2] == second.parse().usage.total_tokens
    assert 0 < tokens[0] < 100_000, "what this request's input will take is counted already"
    for head in heads:
        assert DURATION.fullmatch(head["x-ratelimit-reset-requests"]), head["x-ratelimit-reset-requests"]
        assert DURATION.fullmatch(head["x-ratelimit-reset-tokens"]), head["x-ratelimit-reset-tokens"]
        assert "anthropic-ratelimit-requests-limit" not in head


def test_the_edges_429_says_nothing_remains(edge):
    chat = openai_client(edge, KEYS["tight"]).chat.completions.with_raw_response
    answers = [chat.create(model="mock-gpt", messages=MESSAGES) for _ in range(2)]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["1", "0"]
    with pytest.raises(openai.RateLimitError) as refused:
        chat.create(model="mock-gpt", messages=MESSAGES)
    head = refused.value.response.headers
    assert head["x-ratelimit-limit-requests"] == "2"
    assert head["x-ratelimit-remaining-requests"] == "0"
    assert int(head["retry-after"]) >= 1
    assert DURATION.fullmatch(head["x-ratelimit-reset-requests"])
    assert "x-ratelimit-limit-tokens" not in head, "the app limits no tokens"


def test_an_app_without_limits_gets_no_rate_limit_headers(edge):
    raw = openai_client(edge, CLIENT_KEY).chat.completions.with_raw_response.create(model="mock-gpt", messages=MESSAGES)
    assert raw.parse().choices[0].message.content
    assert not [name for name in raw.headers if "ratelimit" in name]


def test_a_users_tighter_limit_wins(edge):
    chat = openai_client(edge, KEYS["user"]).chat.completions.with_raw_response
    answers = [chat.create(model="mock-gpt", messages=MESSAGES) for _ in range(3)]
    assert [a.headers["x-ratelimit-limit-requests"] for a in answers] == ["3"] * 3
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as refused:
        chat.create(model="mock-gpt", messages=MESSAGES)
    assert refused.value.response.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_anthropic_callers_see_anthropics_headers(edge):
    messages = anthropic_client(edge, KEYS["claude"]).messages.with_raw_response
    first = messages.create(model="mock-gpt", max_tokens=50, messages=MESSAGES)
    second = messages.create(model="mock-gpt", max_tokens=50, messages=MESSAGES)
    heads = [first.headers, second.headers]
    assert [h["anthropic-ratelimit-requests-limit"] for h in heads] == ["2", "2"]
    assert [h["anthropic-ratelimit-requests-remaining"] for h in heads] == ["1", "0"]
    assert [h["anthropic-ratelimit-tokens-limit"] for h in heads] == ["100000"] * 2
    usage = first.parse().usage
    tokens = [int(h["anthropic-ratelimit-tokens-remaining"]) for h in heads]
    assert tokens[0] - tokens[1] == usage.input_tokens + usage.output_tokens
    for head in heads:
        reset = datetime.strptime(head["anthropic-ratelimit-requests-reset"], "%Y-%m-%dT%H:%M:%S%z")
        assert NOW < reset.timestamp() <= NOW + 120
        assert reset.tzinfo == UTC
        assert "x-ratelimit-limit-requests" not in head
        assert "anthropic-ratelimit-input-tokens-limit" not in head, "the edge limits no input tokens apart"

    with pytest.raises(anthropic.RateLimitError) as refused:
        messages.create(model="mock-gpt", max_tokens=50, messages=MESSAGES)
    head = refused.value.response.headers
    assert head["anthropic-ratelimit-requests-remaining"] == "0"
    assert int(head["retry-after"]) >= 1


def test_gemini_callers_get_the_openai_style_headers(edge):
    """Google's API sends none; the OpenAI-style ones are what a client reading raw headers knows (docs/edge.md)."""
    with genai.Client(api_key=KEYS["gemini"], http_options={"base_url": edge.url}) as gemini:
        reply = gemini.models.generate_content(model="mock-gpt", contents="pace me")
    assert reply.sdk_http_response is not None and reply.sdk_http_response.headers is not None
    head = {name.lower(): value for name, value in reply.sdk_http_response.headers.items()}
    assert head["x-ratelimit-limit-requests"] == "10"
    assert head["x-ratelimit-remaining-requests"] == "9"


VENDOR_HEADERS = (
    b"x-ratelimit-limit-requests: 10000\r\n",
    b"x-ratelimit-remaining-requests: 9999\r\n",
    b"x-ratelimit-reset-requests: 6ms\r\n",
    b"x-ratelimit-limit-tokens: 30000000\r\n",
    b"x-ratelimit-remaining-tokens: 29999990\r\n",
    b"anthropic-ratelimit-requests-remaining: 3999\r\n",
)
VENDOR_REPLY = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
)


class StampsRateHeaders(BasePlugin):
    """A response hook that names rate-limit headers of its own, as a vendor's answer does (on the mock's answers,
    which echo the request)."""

    name = "stamps-rate-headers"

    async def on_before_write_headers(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse | None:
        if b"Echo" not in req.body:
            return None
        stamped = {"x-ratelimit-remaining-requests": "777", "anthropic-ratelimit-requests-remaining": "777"}
        return ResponseWriteResponse(modified=True, headers={**req.headers, **stamped, "x-stamp": "seen"})


@pytest.fixture(scope="module")
def vendor_edge(mock_upstream, tmp_path_factory):
    """An OpenAI-shaped vendor that sends its own account's rate-limit headers (LLM 1), the mock (LLM 2) behind a
    plugin that stamps some too; app 1 without limits, app 3 with."""
    scripts = {"/v1/chat/completions": raw(ok(VENDOR_REPLY, *VENDOR_HEADERS), keep=True)}
    with vendor_thread(scripts) as vendor:
        stamps = PluginConfig(
            slug="stamps",
            name="StampsRateHeaders",
            import_path=f"{__name__}:StampsRateHeaders",
            global_order=0,
        )
        snap = make_snapshot(
            mock_upstream,
            llms=[
                llm(1, "vendor", vendor.url("/v1"), vendor="openai", default_model="gpt-4o-mini", max_retries=0),
                llm(2, "mock-llm", f"{mock_upstream}/v1", allowed_models=["mock-gpt"]),
            ],
            apps=[
                AppConfig(id=1, name="free", llm_ids=[1, 2]),
                AppConfig(id=3, name="limited", llm_ids=[1, 2], rate_limit_rpm=50),
            ],
            credentials=[
                *default_credentials(),
                CredentialConfig(key_hash=hash_credential(KEYS["tpm"]), app_id=3, credential_id=20),
            ],
            plugins=[stamps],
        )
        with run_edge(snap, tmp_path_factory.mktemp("vendor-edge")) as running:
            running.edge.runtime.limiter._clock = Clock()
            yield running


def test_the_vendors_and_plugins_rate_headers_give_way_to_the_edges(vendor_edge):
    """The vendor's headers describe the operator's account, shared by every tenant: never the client's. A
    plugin's of the same names stand when the app has no limits of the edge, and give way when it has."""
    limited = openai_client(vendor_edge, KEYS["tpm"]).chat.completions.with_raw_response
    from_vendor = limited.create(model="gpt-4o-mini", messages=MESSAGES).headers
    assert from_vendor.get_list("x-ratelimit-remaining-requests") == ["49"]
    assert from_vendor.get_list("x-ratelimit-limit-requests") == ["50"]
    assert "x-ratelimit-limit-tokens" not in from_vendor, "the vendor's token limit is not the app's"
    assert "anthropic-ratelimit-requests-remaining" not in from_vendor
    stamped = limited.create(model="mock-gpt", messages=MESSAGES).headers
    assert stamped["x-stamp"] == "seen"
    assert stamped.get_list("x-ratelimit-remaining-requests") == ["48"]
    assert "anthropic-ratelimit-requests-remaining" not in stamped

    free = openai_client(vendor_edge, CLIENT_KEY).chat.completions.with_raw_response
    assert not [name for name in free.create(model="gpt-4o-mini", messages=MESSAGES).headers if "ratelimit" in name]
    assert free.create(model="mock-gpt", messages=MESSAGES).headers["x-ratelimit-remaining-requests"] == "777"


def test_peers_past_the_limit_never_make_a_count_negative():
    """Peer edges' shared counts can push a window past its limit (each admitted on what it knew): what remains is
    0, not negative, and the wait counts the whole excess sliding out."""
    limiter = RateLimiter(clock=Clock())
    start = NOW - 15
    limiter.add_remote(start - 60, {"app:1:rpm": 30})  # the previous minute, 3/4 of it still in the window
    limiter.add_remote(start, {"app:1:rpm": 5})
    limits = [("app:1:rpm", 10, "requests", False), ("app:1:tpm", 1000, "tokens", True)]
    standings = [limiter.standing("app:1:rpm", 10, 0), limiter.standing("app:1:tpm", 1000, 400)]
    head = dict(rate_headers(limiter, limits, standings, "openai"))
    assert head[b"x-ratelimit-remaining-requests"] == b"0"  # 30 * 0.75 + 5 = 27.5 of 10
    # the previous minute weighs 22.5 and must lose 18.5 (to 9 counted): 18.5 * 60 / 30 = 37 s
    assert head[b"x-ratelimit-reset-requests"] == b"37s"
    assert head[b"x-ratelimit-remaining-tokens"] == b"600"
    # this request's 400 count in the current minute: one of them slides out 60 / 400 s after the minute turns
    assert head[b"x-ratelimit-reset-tokens"] == b"46s"  # 45.15 s, rounded up
    fresh = dict(rate_headers(limiter, limits[:1], [limiter.standing("app:2:rpm", 10, 0)], "openai"))
    assert fresh[b"x-ratelimit-remaining-requests"] == b"10"
    assert fresh[b"x-ratelimit-reset-requests"] == b"0s", "nothing counted: nothing to wait for"


class SettableClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_client_that_waits_its_retry_after_is_served(edge):
    """Over a limit within the current minute, `retry-after` used to say "when the minute turns", when the minute
    just counted still weighs in full: the client that waited exactly that long (the SDKs do) was refused again.
    The wait now runs until enough of that minute has slid out, and the retry is served."""
    clock = SettableClock(NOW + 120.0)  # a minute of its own: nothing counted before in this test's windows
    limiter = edge.edge.runtime.limiter
    limiter._clock = clock
    try:
        client = openai_client(edge, KEYS["tight"]).chat.completions.with_raw_response  # 2 requests per minute
        for _ in range(2):
            client.create(model="mock-gpt", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as refused:
            client.create(model="mock-gpt", messages=MESSAGES)
        wait = int(refused.value.response.headers["retry-after"])
        assert wait == 45 + 30  # to the minute's turn, then half a minute for one of its two to slide out
        clock.now += wait - 1
        with pytest.raises(openai.RateLimitError):
            client.create(model="mock-gpt", messages=MESSAGES)
        clock.now += 1
        assert client.create(model="mock-gpt", messages=MESSAGES).http_response.status_code == 200
    finally:
        limiter._clock = Clock()
