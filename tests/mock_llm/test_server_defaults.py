"""Server-level defaults from CLI flags, with a request's own options on top."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from .conftest import ROOT, MockServer, start_mock, stop_mock

MESSAGES = [{"role": "user", "content": "one two three four five six"}]


@pytest.fixture(scope="module")
def tuned() -> Iterator[MockServer]:
    server = start_mock("--latency-ms", "150", "--chunks", "2", "--fault", "cached_tokens=3", "--log-size", "0")
    yield server
    stop_mock(server)


def test_flags_apply_to_every_request_without_auth(tuned: MockServer) -> None:
    with tuned.openai() as client:
        started = time.monotonic()
        completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        elapsed = time.monotonic() - started
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))

    assert elapsed >= 0.15
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 3
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 2


def test_request_options_override_flags(tuned: MockServer) -> None:
    with tuned.openai() as client:
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-mock-fault": "chunks=4; latency_ms=0"}
            )
        )

    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 4


def test_log_size_zero_keeps_counters_but_no_log(tuned: MockServer) -> None:
    httpx.post(f"{tuned.url}/_mock/reset").raise_for_status()
    httpx.get(f"{tuned.url}/v1/models").raise_for_status()

    assert httpx.get(f"{tuned.url}/_mock/requests").json()["data"] == []
    assert httpx.get(f"{tuned.url}/_mock/stats").json()["requests_total"] == 1


def test_invalid_flags_stop_the_process_with_a_reason() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fjordgate.mock_llm", "--fault", "bogus=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert "unknown mock fault option 'bogus'" in result.stderr
