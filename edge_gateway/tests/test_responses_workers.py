"""`/v1/responses` state on an edge with two workers (`EDGE_WORKERS=2`, a real supervisor and its processes).

The kernel hands each new connection to either worker (SO_REUSEPORT), so a client's follow-up lands on either: a
`previous_response_id`, a retrieve or a delete sent the moment an answer arrived must find what the other worker
stored. Each call here uses a fresh client (a fresh connection), as scripts that make one call per run do.
"""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.support.edge_metrics import requests_by_worker

from .support import CLIENT_KEY, edge_workers, make_snapshot

pytestmark = [pytest.mark.timeout(120)]

TURNS = 16


@pytest.fixture
def two_workers(upstream, tmp_path):
    with edge_workers(make_snapshot(upstream), tmp_path) as url:
        yield url


def _fresh(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)


def test_a_conversation_continues_on_whichever_worker_takes_the_next_call(two_workers, upstream):
    url = two_workers
    ids = [_fresh(url).responses.create(model="mock-gpt", input="turn 0").id]
    for turn in range(1, TURNS):
        answer = _fresh(url).responses.create(model="mock-gpt", previous_response_id=ids[-1], input=f"turn {turn}")
        assert answer.output_text == f"Echo: turn {turn}"
        ids.append(answer.id)
    sent = httpx.get(f"{upstream}/_mock/requests", timeout=5).json()["data"][-1]["body"]["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [f"turn {t}" for t in range(TURNS)]

    for turn, response_id in enumerate(ids):
        assert _fresh(url).responses.retrieve(response_id).output_text == f"Echo: turn {turn}"
    _fresh(url).responses.delete(ids[0])
    for _ in range(8):  # gone for every worker at once
        with pytest.raises(openai.NotFoundError):
            _fresh(url).responses.retrieve(ids[0])
    with pytest.raises(openai.BadRequestError) as gone:
        _fresh(url).responses.create(model="mock-gpt", previous_response_id=ids[0], input="again")
    assert gone.value.code == "previous_response_not_found"

    # The creates answered 200, by both workers. The series count analytics records after the answers went out,
    # so the last ones may still be on their way (and the refused create above may or may not be counted yet).
    deadline = time.monotonic() + 20
    while sum((served := _answered(url)).values()) < TURNS and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(served) == {"0", "1"} and sum(served.values()) == TURNS, served


def _answered(url: str) -> dict[str, float]:
    return requests_by_worker(httpx.get(f"{url}/metrics", timeout=10).text, status=200)


def test_a_streamed_answer_is_stored_for_every_worker_before_the_stream_ends(two_workers):
    url = two_workers
    for turn in range(6):
        with _fresh(url).responses.stream(model="mock-gpt", input=f"streamed {turn}") as stream:
            final = stream.get_final_response()
        assert _fresh(url).responses.retrieve(final.id).output_text == f"Echo: streamed {turn}"
        follow_up = _fresh(url).responses.create(model="mock-gpt", previous_response_id=final.id, input="and then?")
        assert follow_up.output_text == "Echo: and then?"
