"""The Anthropic Messages surface over real HTTP, read the way an Anthropic client reads it."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .conftest import KEY

HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
WEATHER = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}},
}


def _message(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 100,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Hello, Claude!"}],
    }
    return {**body, **overrides}


def _events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """Parse `event:`/`data:` pairs, checking each event's name matches its data's type."""
    events = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        events.append((lines["event"], data))
    return events


def test_message_reply_blocks_and_usage(http: httpx.Client) -> None:
    response = http.post("/v1/messages", json=_message(), headers=HEADERS)

    assert response.status_code == 200
    assert response.headers["request-id"].startswith("req_")
    body = response.json()
    assert body["id"].startswith("msg_")
    assert (body["type"], body["role"], body["model"]) == ("message", "assistant", "claude-sonnet-4-20250514")
    assert body["content"] == [{"type": "text", "text": "Echo: Hello, Claude!"}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("end_turn", None)
    # system "You are terse." = 4 tokens, "Hello, Claude!" = 4; reply = 6.
    assert body["usage"]["input_tokens"] == 8
    assert body["usage"]["output_tokens"] == 6
    assert body["usage"]["cache_read_input_tokens"] == 0
    assert body["usage"]["cache_creation_input_tokens"] == 0


def test_cache_options_move_prompt_tokens_out_of_input_tokens(http: httpx.Client) -> None:
    response = http.post(
        "/v1/messages", json=_message(), headers={**HEADERS, "x-mock-fault": "cached_tokens=5; cache_write_tokens=2"}
    )

    usage = response.json()["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == (1, 5, 2)


def test_max_tokens_and_stop_sequences_set_the_stop_reason(http: httpx.Client) -> None:
    cut = http.post("/v1/messages", json=_message(max_tokens=2), headers=HEADERS).json()
    stopped = http.post("/v1/messages", json=_message(stop_sequences=["Claude"]), headers=HEADERS).json()

    assert (cut["content"][0]["text"], cut["stop_reason"], cut["usage"]["output_tokens"]) == ("Echo:", "max_tokens", 2)
    assert (stopped["content"][0]["text"], stopped["stop_reason"], stopped["stop_sequence"]) == (
        "Echo: Hello, ",
        "stop_sequence",
        "Claude",
    )


def test_structured_output_replies_json_of_the_schema(http: httpx.Client) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}
    output_config = {"format": {"type": "json_schema", "schema": schema}}
    body = http.post("/v1/messages", json=_message(output_config=output_config), headers=HEADERS).json()
    bad = http.post("/v1/messages", json=_message(output_config={"format": {"type": "json_schema"}}), headers=HEADERS)

    assert json.loads(body["content"][0]["text"]) == {"city": "mock", "days": 1}
    assert body["stop_reason"] == "end_turn"
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_stream_follows_anthropics_event_sequence(http: httpx.Client) -> None:
    plain = http.post("/v1/messages", json=_message(), headers=HEADERS).json()
    response = http.post("/v1/messages", json=_message(stream=True), headers=HEADERS)

    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response)
    names = [name for name, _ in events]
    deltas = [data for name, data in events if name == "content_block_delta"]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * len(deltas),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == plain["usage"]["input_tokens"]
    assert all(d["delta"]["type"] == "text_delta" and d["index"] == 0 for d in deltas)
    assert "".join(d["delta"]["text"] for d in deltas) == plain["content"][0]["text"]
    final = events[-2][1]
    assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert final["usage"]["output_tokens"] == plain["usage"]["output_tokens"] == len(deltas)


def test_tool_use_blocks_plain_and_streamed(http: httpx.Client) -> None:
    body = _message(tools=[WEATHER], messages=[{"role": "user", "content": "Call tool get_weather for Oslo"}])
    plain = http.post("/v1/messages", json=body, headers=HEADERS).json()
    events = _events(http.post("/v1/messages", json={**body, "stream": True}, headers=HEADERS))

    assert plain["stop_reason"] == "tool_use"
    [block] = plain["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_") and block["name"] == "get_weather"
    assert block["input"] == {"city": "mock", "days": 1}
    start = next(data for name, data in events if name == "content_block_start")
    assert start["content_block"] == {
        "type": "tool_use",
        "id": start["content_block"]["id"],
        "name": "get_weather",
        "input": {},
    }
    partial = "".join(d["delta"]["partial_json"] for n, d in events if n == "content_block_delta")
    assert all(d["delta"]["type"] == "input_json_delta" for n, d in events if n == "content_block_delta")
    assert json.loads(partial) == block["input"]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"]["output_tokens"] == plain["usage"]["output_tokens"]


def test_tool_result_turn_is_answered_with_text(http: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": "call tool"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"}]},
    ]
    body = http.post("/v1/messages", json=_message(tools=[WEATHER], messages=messages), headers=HEADERS).json()

    assert body["stop_reason"] == "end_turn"
    assert body["content"] == [{"type": "text", "text": "Echo: rain"}]


def test_auth_and_version_errors_use_anthropics_shape(http: httpx.Client) -> None:
    no_key = http.post("/v1/messages", json=_message(), headers={"anthropic-version": "2023-06-01"})
    bad_key = http.post("/v1/messages", json=_message(), headers={**HEADERS, "x-api-key": "sk-client"})
    no_version = http.post("/v1/messages", json=_message(), headers={"x-api-key": KEY})

    assert no_key.status_code == bad_key.status_code == 401
    assert no_key.json()["type"] == "error"
    assert no_key.json()["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}
    assert bad_key.json()["error"]["message"] == "invalid x-api-key"
    assert no_version.status_code == 400
    assert no_version.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }


def test_invalid_bodies_get_anthropic_400s(http: httpx.Client) -> None:
    body = _message()
    del body["max_tokens"]
    missing = http.post("/v1/messages", json=body, headers=HEADERS)
    broken = http.post("/v1/messages", content=b'{"model": ', headers=HEADERS)

    assert missing.status_code == broken.status_code == 400
    assert missing.json()["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert broken.json()["error"]["type"] == "invalid_request_error"


def test_count_tokens_matches_message_usage(http: httpx.Client) -> None:
    counted = http.post("/v1/messages/count_tokens", json=_message(), headers=HEADERS).json()
    used = http.post("/v1/messages", json=_message(), headers=HEADERS).json()["usage"]

    assert counted == {"input_tokens": used["input_tokens"]}


def test_models_are_listed_in_anthropics_format(http: httpx.Client) -> None:
    listed = http.get("/v1/models", params={"limit": 2}, headers=HEADERS).json()
    one = http.get("/v1/models/claude-sonnet-4-20250514", headers=HEADERS).json()
    missing = http.get("/v1/models/claude-0", headers=HEADERS)

    assert len(listed["data"]) == 2 and listed["has_more"] is True
    assert listed["first_id"] == listed["data"][0]["id"] and listed["data"][0]["type"] == "model"
    assert one["display_name"] == "Claude Sonnet 4"
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


def test_injected_errors_use_anthropic_types(http: httpx.Client) -> None:
    overloaded = http.post("/v1/messages", json=_message(), headers={**HEADERS, "x-mock-fault": "status=529"})
    limited = http.post("/v1/messages", json=_message(mock={"status": 429, "retry_after": 2.5}), headers=HEADERS)

    assert overloaded.status_code == 529
    assert overloaded.json()["error"]["type"] == "overloaded_error"
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert (limited.headers["retry-after"], limited.headers["retry-after-ms"]) == ("3", "2500")


def test_error_after_chunks_sends_an_in_band_error_event(http: httpx.Client) -> None:
    response = http.post(
        "/v1/messages", json=_message(stream=True), headers={**HEADERS, "x-mock-fault": "error_after_chunks=3"}
    )

    events = _events(response)
    assert [name for name, _ in events] == ["message_start", "content_block_start", "ping", "error"]
    assert events[-1][1]["error"]["type"] == "overloaded_error"
