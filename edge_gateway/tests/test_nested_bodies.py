"""A client's JSON nested hundreds of levels deep: a 400 in the caller's own error shape, never a 500.

orjson parses up to 1,024 levels; the edge walks request JSON recursively (token bounds for tokens-per-minute
limits and budgets, tool schemas translated for Gemini) and re-encodes it with orjson (255 levels at most). Before
the intake's depth check, a chat request whose content nested 600 levels deep under a tpm limit ended in a
RecursionError and a 500 "internal error in the edge gateway"; the same body to a Gemini LLM's tool schema too.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal

import httpx
import openai
import pytest

from shared_sdk.json_depth import MAX_JSON_DEPTH, json_depth_exceeds
from shared_sdk.snapshot import AppConfig, BudgetConfig

from .hostile_vendor import ok, raw, vendor_thread
from .support import CLIENT_KEY, llm, make_snapshot, run_edge

GPT = "mock-gpt"
GEMINI = "gemini-2.0-flash"


@pytest.fixture(scope="module")
def edge(mock_upstream, tmp_path_factory):
    gpt = llm(1, "gpt", f"{mock_upstream}/v1", allowed_models=[GPT])
    gemini = llm(2, "gemini", mock_upstream, vendor="google", default_model=GEMINI, allowed_models=["gemini-.*"])
    # Limits and a budget, so every request's input is walked for its token bound before the call.
    app = AppConfig(id=1, name="one", llm_ids=[1, 2], rate_limit_rpm=100_000, rate_limit_tpm=1_000_000_000)
    budget = BudgetConfig(id=1, scope="app", target_id=1, limit=Decimal("1000000"), period_end=4_000_000_000.0)
    snap = make_snapshot(mock_upstream, llms=[gpt, gemini], apps=[app], budgets=[budget])
    with run_edge(snap, tmp_path_factory.mktemp("nested")) as running:
        yield running


def nested(depth: int) -> str:
    """JSON text of `depth` arrays, one inside the other, around a string."""
    return "[" * depth + '"deep"' + "]" * depth


def chat_body(model: str, content_depth: int) -> bytes:
    """A chat request whose one message's content is nested `content_depth` levels (the body itself adds three:
    the request object, `messages`, the message)."""
    messages = '[{"role": "user", "content": ' + nested(content_depth) + "}]"
    return ('{"model": "' + model + '", "messages": ' + messages + "}").encode()


def schema_body(model: str, depth: int) -> bytes:
    """A chat request a vendor accepts, nested `depth` levels in all: the arrays sit in its JSON schema's `default`,
    where any JSON goes (the request object, `response_format`, `json_schema` and `schema` add four)."""
    schema = '{"type": "object", "default": ' + nested(depth - 4) + "}"
    response_format = '{"type": "json_schema", "json_schema": {"name": "deep", "schema": ' + schema + "}}"
    messages = '[{"role": "user", "content": "hi"}]'
    return (
        '{"model": "' + model + '", "messages": ' + messages + ', "response_format": ' + response_format + "}"
    ).encode()


def post(edge, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{edge.url}{path}", content=body, headers={"content-type": "application/json", **headers})


BEARER = {"authorization": f"Bearer {CLIENT_KEY}"}


@pytest.mark.parametrize("model", [GPT, GEMINI])
def test_a_chat_request_nested_600_deep_is_a_400_in_openais_shape(edge, model):
    reply = post(edge, "/v1/chat/completions", chat_body(model, 600), BEARER)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_json" and error["type"] == "invalid_request_error"
    assert f"deeper than {MAX_JSON_DEPTH} levels" in error["message"]


def test_the_stock_openai_sdk_sees_a_bad_request_for_a_deep_tool_schema(edge):
    """A tool's parameters nested 300 deep, to a Gemini LLM whose translation walks the schema."""
    schema: dict = {"type": "string"}
    for _ in range(300):
        schema = {"type": "array", "items": schema}
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=GEMINI,
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": schema}}],
        )
    assert refused.value.code == "invalid_json"


def test_anthropic_and_gemini_callers_get_their_own_400(edge):
    messages = post(
        edge, "/v1/messages", chat_body(GPT, 600), {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
    )
    assert messages.status_code == 400, messages.text
    assert messages.json()["type"] == "error" and messages.json()["error"]["type"] == "invalid_request_error"

    contents = '{"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "x": ' + nested(600) + "}"
    gemini = post(edge, f"/v1beta/models/{GEMINI}:generateContent", contents.encode(), {"x-goog-api-key": CLIENT_KEY})
    assert gemini.status_code == 400, gemini.text
    assert gemini.json()["error"]["status"] == "INVALID_ARGUMENT"

    responses = post(edge, "/v1/responses", ('{"model": "' + GPT + '", "input": ' + nested(600) + "}").encode(), BEARER)
    assert responses.status_code == 400, responses.text
    assert responses.json()["error"]["code"] == "invalid_json"


def test_a_body_nested_to_the_limit_is_served_under_limits_and_a_budget(edge):
    at_limit = post(edge, "/v1/chat/completions", schema_body(GPT, MAX_JSON_DEPTH), BEARER)
    assert at_limit.status_code == 200, at_limit.text
    past = post(edge, "/v1/chat/completions", schema_body(GPT, MAX_JSON_DEPTH + 1), BEARER)
    assert past.status_code == 400, past.text
    again = post(edge, "/v1/chat/completions", schema_body(GPT, 5), BEARER)
    assert again.status_code == 200, again.text


def test_json_depth_exceeds_agrees_with_a_recursive_count() -> None:
    def depth_of(value: object) -> int:
        if isinstance(value, dict):
            return 1 + max((depth_of(v) for v in value.values()), default=0)
        if isinstance(value, list):
            return 1 + max((depth_of(v) for v in value), default=0)
        return 0

    def build(rng: random.Random, levels: int) -> object:
        if levels == 0 or rng.random() < 0.3:
            return rng.choice(["s", 1, None, 2.5, True, "[{"])
        if rng.random() < 0.5:
            return [build(rng, levels - 1) for _ in range(rng.randint(0, 3))]
        return {f"k{i}": build(rng, levels - 1) for i in range(rng.randint(0, 3))}

    rng = random.Random(17)
    for _ in range(3000):
        value, limit = build(rng, rng.randint(0, 9)), rng.randint(0, 8)
        assert json_depth_exceeds(value, limit) == (depth_of(value) > limit), (value, limit)


DEEP_ARGUMENTS = "[" * 600 + "1" + "]" * 600
"""A vendor's tool-call `arguments` as a structure nested 600 deep, where OpenAI's format has a string."""


def _deep_reply() -> bytes:
    call = {"id": "t", "type": "function", "function": {"name": "f", "arguments": "ARGS"}}
    reply = {
        "id": "c",
        "object": "chat.completion",
        "model": "mock-gpt",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "tool_calls": [call]}, "finish_reason": "tool_calls"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    return ok(json.dumps(reply).replace('"ARGS"', DEEP_ARGUMENTS).encode())


def _deep_stream() -> bytes:
    events = [
        '{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"role":"assistant"}}]}',
        '{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"tool_calls":'
        '[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":' + DEEP_ARGUMENTS + "}}]}}]}",
        '{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
        "[DONE]",
    ]
    payload = b"".join(b"data: " + event.encode() + b"\n\n" for event in events)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n" % len(payload)
    return head + payload


@pytest.fixture(scope="module")
def deep_vendor_edge(tmp_path_factory):
    scripts = {"/deep/chat/completions": raw(_deep_reply(), keep=True), "/stream/chat/completions": raw(_deep_stream())}
    with vendor_thread(scripts) as vendor:
        base = f"http://127.0.0.1:{vendor.port}"
        llms = [llm(1, "deep", f"{base}/deep", max_retries=0), llm(2, "stream", f"{base}/stream", max_retries=0)]
        with run_edge(make_snapshot(base, llms=llms), tmp_path_factory.mktemp("deep-vendor")) as running:
            yield running


def test_a_vendor_reply_too_deep_to_translate_is_a_502_not_a_500(deep_vendor_edge):
    """Translated for a Responses or a Gemini caller, the reply is re-encoded (orjson stops at 255 levels)."""
    responses = post(deep_vendor_edge, "/v1/responses", b'{"model": "deep/mock-gpt", "input": "hi"}', BEARER)
    assert responses.status_code == 502, responses.text
    assert responses.json()["error"]["code"] == "upstream_bad_response"
    gemini_body = b'{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}'
    gemini = post(
        deep_vendor_edge, "/v1beta/models/deep/mock-gpt:generateContent", gemini_body, {"x-goog-api-key": CLIENT_KEY}
    )
    assert gemini.status_code == 502, gemini.text
    assert "nested too deeply" in gemini.json()["error"]["message"]
    streamed = post(
        deep_vendor_edge,
        "/v1beta/models/stream/mock-gpt:streamGenerateContent?alt=sse",
        gemini_body,
        {"x-goog-api-key": CLIENT_KEY},
    )
    assert streamed.status_code == 502, streamed.text
    passed = post(
        deep_vendor_edge,
        "/v1/chat/completions",
        b'{"model": "deep/mock-gpt", "messages": [{"role": "user", "content": "hi"}]}',
        BEARER,
    )
    assert passed.status_code == 200  # an OpenAI caller gets the vendor's own reply, as it came
