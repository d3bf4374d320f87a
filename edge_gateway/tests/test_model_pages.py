"""`GET /v1/models` pages as each vendor's does, read by the stock SDKs: Anthropic's `limit` / `after_id` /
`before_id` and Gemini's `pageSize` / `pageToken`, so a pager or a hand-written cursor loop ends."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from google import genai

from .support import CLIENT_KEY, RunningEdge, llm, make_snapshot, run_edge

NAMES = [f"model-{i}" for i in range(5)]


@pytest.fixture(scope="module")
def edge(mock_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEdge]:
    llms = [llm(i + 1, f"llm-{i}", f"{mock_upstream}/v1", default_model=name) for i, name in enumerate(NAMES)]
    snapshot = make_snapshot(mock_upstream, llms=llms, prices=[])  # no priced models: the list is the defaults
    with run_edge(snapshot, tmp_path_factory.mktemp("pages")) as running:
        yield running


def test_anthropic_pages_follow_limit_and_cursors(edge: RunningEdge) -> None:
    client = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    first = client.models.list(limit=2)
    assert [m.id for m in first.data] == NAMES[:2] and first.has_more and first.last_id == NAMES[1]
    after = client.models.list(limit=2, after_id=NAMES[3])
    assert [m.id for m in after.data] == NAMES[4:] and not after.has_more
    before = client.models.list(limit=2, before_id=NAMES[3])
    assert [m.id for m in before.data] == NAMES[1:3] and before.has_more
    assert [m.id for m in client.models.list(limit=2)] == NAMES  # the SDK's pager walks every page once
    with pytest.raises(anthropic.BadRequestError):
        client.models.list(limit=0)


def test_gemini_pages_follow_page_size_and_token(edge: RunningEdge) -> None:
    client = genai.Client(api_key=CLIENT_KEY, http_options={"base_url": edge.url})
    pager = client.models.list(config={"page_size": 2})
    assert [m.name for m in pager.page] == [f"models/{n}" for n in NAMES[:2]]
    assert [m.name for m in pager] == [f"models/{n}" for n in NAMES]


@pytest.mark.parametrize(
    "query", ["pageSize=-1", "pageSize=x", "pageSize=" + "9" * 5000, "pageToken=%C2%B2", "pageToken=" + "9" * 5000]
)
def test_gemini_page_parameters_out_of_range_are_a_400_in_googles_shape(edge: RunningEdge, query: str) -> None:
    """A negative size sliced from the end (every model but the last, and a negative next token); a token that
    is a Unicode digit or thousands of digits made int() raise: a 500."""
    answer = httpx.get(f"{edge.url}/v1beta/models?{query}", headers={"x-goog-api-key": CLIENT_KEY})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_openai_list_is_one_page(edge: RunningEdge) -> None:
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    assert [m.id for m in client.models.list()] == NAMES
