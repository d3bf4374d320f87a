"""Fault injection as a client experiences it: through the stock `openai` SDK and raw HTTP."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from .conftest import KEY, MockServer

MESSAGES = [{"role": "user", "content": "one two three four five six"}]
AUTH = {"authorization": f"Bearer {KEY}"}


def _fault(spec: str) -> dict[str, str]:
    return {"x-mock-fault": spec}


def test_status_fault_from_header_or_body_surfaces_as_api_status_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as from_header:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=_fault("status=503"))
    with pytest.raises(openai.APIStatusError) as from_body:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_body={"mock": {"status": 502}})

    assert from_header.value.status_code == 503
    assert "overloaded" in from_header.value.message
    assert isinstance(from_header.value.body, dict) and from_header.value.body["type"] == "server_error"
    assert from_body.value.status_code == 502


def test_header_overrides_body_options(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers=_fault("status=500"), extra_body={"mock": "status=400"}
        )

    assert raised.value.status_code == 500


def test_rate_limit_fault_carries_retry_after(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES}, headers={**AUTH, **_fault("status=429")}
    )

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_fail_after_chunks_breaks_the_sdk_stream_mid_way(client: openai.OpenAI) -> None:
    received = []
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=_fault("fail_after_chunks=3")
    )
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)

    assert len(received) == 3  # role chunk + two content deltas, then the connection is gone
    assert "".join(c.choices[0].delta.content or "" for c in received) == "Echo:"


def test_fail_after_chunks_never_sends_done(http: httpx.Client) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    seen: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        with http.stream(
            "POST", "/v1/chat/completions", json=body, headers={**AUTH, **_fault("fail_after_chunks=2")}
        ) as response:
            for line in response.iter_lines():
                if line:
                    seen.append(line)

    assert len(seen) == 2 and "[DONE]" not in "".join(seen)


def test_error_after_chunks_raises_the_vendor_error_in_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=_fault("error_after_chunks=2")
    )
    with pytest.raises(openai.APIError) as raised:
        list(stream)

    assert "error while processing your request" in raised.value.message


def test_fail_times_fails_then_succeeds_per_key(mock: MockServer, client: openai.OpenAI) -> None:
    spec = _fault("fail_times=2; key=retry-a; status=503")
    outcomes = []
    for _ in range(3):
        try:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=spec)
            outcomes.append(200)
        except openai.APIStatusError as error:
            outcomes.append(error.status_code)
    other_key = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers=_fault("fail_times=0; key=b")
    )

    assert outcomes == [503, 503, 200]
    assert other_key.choices[0].finish_reason == "stop"
    stats = httpx.get(f"{mock.url}/_mock/stats").json()
    assert stats["fail_counters"] == {"retry-a": 3, "b": 1}
    assert stats["faults"]["status"] == 2


def test_sdk_retries_ride_through_fail_times(mock: MockServer) -> None:
    with mock.openai(max_retries=2) as retrying:
        completion = retrying.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            extra_headers=_fault("fail_times=2; key=sdk-retry; status=429; retry_after=0.01"),
        )

    assert completion.choices[0].message.content == "Echo: one two three four five six"
    statuses = [entry["status"] for entry in httpx.get(f"{mock.url}/_mock/requests").json()["data"]]
    assert statuses == [429, 429, 200]


def test_fail_times_without_failure_option_defaults_to_503(http: httpx.Client) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "mock": {"fail_times": 1, "key": "plain"}}
    first = http.post("/v1/chat/completions", json=body, headers=AUTH)
    second = http.post("/v1/chat/completions", json=body, headers=AUTH)

    assert (first.status_code, second.status_code) == (503, 200)


def test_drop_connection_closes_without_a_response(client: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=_fault("drop_connection"))
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(
            "/v1/embeddings",
            json={"model": "text-embedding-3-small", "input": "x"},
            headers={**AUTH, **_fault("drop_connection")},
        )


def test_malformed_answers_200_with_invalid_json(http: httpx.Client, client: openai.OpenAI) -> None:
    response = http.post(
        "/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES}, headers={**AUTH, **_fault("malformed")}
    )
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=_fault("malformed")
    )

    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    with pytest.raises(json.JSONDecodeError):
        list(stream)


def test_latency_ttft_and_chunk_delay_are_at_least_what_was_asked(client: openai.OpenAI) -> None:
    started = time.monotonic()
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=_fault("latency_ms=250"))
    latency = time.monotonic() - started

    started = time.monotonic()
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=_fault("ttft_ms=200; chunk_delay_ms=20")
    )
    arrivals = [time.monotonic() - started for _ in stream]

    assert latency >= 0.25
    assert arrivals[0] >= 0.2
    assert arrivals[-1] >= 0.2 + 0.02 * (len(arrivals) - 1)  # ttft, then a delay before every later event


def test_a_slow_request_does_not_hold_up_a_fast_one(mock: MockServer, client: openai.OpenAI) -> None:
    """Latency is an asyncio sleep: a request sent while another is sleeping is answered first."""
    slow = threading.Thread(
        target=lambda: client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers=_fault("latency_ms=1500")
        )
    )
    slow.start()
    while not httpx.get(f"{mock.url}/_mock/requests").json()["data"]:
        time.sleep(0.01)  # the slow request has arrived and is sleeping
    with mock.openai() as other:
        fast = other.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    still_sleeping = slow.is_alive()
    slow.join()

    assert fast.choices[0].message.content == "Echo: one two three four five six"
    assert still_sleeping


def test_chunks_option_merges_deltas(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=_fault("chunks=2"))
    )

    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(contents) == 2
    assert "".join(contents) == "Echo: one two three four five six"


def test_reply_tokens_pads_the_reply(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_body={"mock": {"reply_tokens": 40}}
    )

    assert completion.usage is not None and completion.usage.completion_tokens == 40
    assert completion.choices[0].message.content is not None
    assert completion.choices[0].message.content.startswith("Echo: one two three four five six lorem ipsum")


def test_bad_fault_specs_are_vendor_style_400s(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=_fault("explode=1"))
    with pytest.raises(openai.BadRequestError) as keyless:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=_fault("fail_times=1"))

    assert "unknown mock fault option 'explode'" in unknown.value.message
    assert "needs a 'key'" in keyless.value.message


def test_done_after_error_ends_the_failed_stream_with_its_end_marker(mock: MockServer) -> None:
    """`done_after_error`: the error chunk, then `data: [DONE]` (some OpenAI-compatible servers do so)."""
    reply = httpx.post(
        f"{mock.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": MESSAGES, "stream": True},
        headers={**AUTH, "x-mock-fault": "error_after_chunks=2; done_after_error"},
        timeout=10,
    )
    events = [e for e in reply.text.split("\n\n") if e.strip()]
    assert len(events) == 4 and events[-1] == "data: [DONE]"
    assert "error while processing your request" in events[-2]
