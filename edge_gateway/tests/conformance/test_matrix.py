"""Issue 14's conformance matrix: every stock client, unchanged, through one in-process edge to the mock shaped as
an OpenAI, an Anthropic and a Gemini upstream. One row per client operation, one column per upstream; a cell
either works as the client's users expect, or (by design) answers the clear 400 its SDK raises.

One edge and the session's mock serve the whole module (module-scoped fixture), so the 57 cells run in about half a minute. Each cell also checks, from the mock's request log, that
what reached the vendor was that vendor's own wire format and never carried the client's key.
The matrix as a table is in docs/edge.md ("Conformance").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from ..support import CLIENT_KEY, ModelPriceConfig, RunningEdge, llm, make_snapshot, run_edge
from . import cells_openai as oa
from . import cells_others as other

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-opus-4-5", "gemini": "gemini-2.5-flash"}
"""The model each upstream column is asked for (a bare name: routing finds its LLM)."""


@dataclass(frozen=True)
class Cell:
    name: str
    run: Callable[[str, str], None]
    refused: dict[str, Callable[[str, str], None]] | None = None
    """Upstreams where the operation is not offered by design, with the check of the clear 400."""


CELLS = [
    Cell("openai.chat", oa.chat),
    Cell("openai.chat.tools", oa.chat_tools),
    Cell("openai.chat.stream", oa.chat_stream),
    Cell("openai.chat.async+stream", oa.chat_async),
    Cell("openai.responses", oa.responses),
    Cell("openai.responses.stream", oa.responses_stream),
    Cell("openai.responses.async+stream", oa.responses_async),
    Cell("openai.embeddings.sync+async", oa.embeddings, {"anthropic": oa.embeddings_refused}),
    Cell("openai.models.sync+async", oa.models),
    Cell("anthropic.messages.sync+async", other.messages),
    Cell("anthropic.messages.stream_helper", other.messages_stream),
    Cell("anthropic.messages.tools", other.messages_tools),
    Cell("anthropic.count_tokens", other.count_tokens),
    Cell("genai.generate_content.sync+async", other.generate_content),
    Cell("genai.generate_content_stream", other.generate_content_stream),
    Cell("litellm.completion", other.litellm_completion),
    Cell("litellm.acompletion.stream", other.litellm_acompletion_stream),
    Cell("langchain_openai.invoke", other.langchain_invoke),
    Cell("langchain_openai.stream", other.langchain_stream),
]


@pytest.fixture(scope="module")
def edge(mock_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEdge]:
    """One edge with three LLMs on the one mock process, each speaking one vendor's wire format."""
    llms = [
        llm(1, "gpt", f"{mock_upstream}/v1", vendor="openai", default_model=MODELS["openai"]),
        llm(2, "claude", mock_upstream, vendor="anthropic", default_model=MODELS["anthropic"]),
        llm(3, "gemini", mock_upstream, vendor="google", default_model=MODELS["gemini"]),
    ]
    prices = [ModelPriceConfig(vendor=vendor, model=model) for vendor, model in MODELS.items()]
    prices[-1] = ModelPriceConfig(vendor="google", model=MODELS["gemini"])
    with run_edge(make_snapshot(mock_upstream, llms=llms, prices=prices), tmp_path_factory.mktemp("conform")) as e:
        yield e


@pytest.mark.parametrize("upstream", list(MODELS))
@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_client_through_the_edge(edge: RunningEdge, mock_upstream: str, cell: Cell, upstream: str) -> None:
    mock = mock_upstream
    httpx.post(f"{mock}/_mock/reset", timeout=5)
    refused = (cell.refused or {}).get(upstream)
    (refused or cell.run)(edge.url, MODELS[upstream])
    seen = httpx.get(f"{mock}/_mock/requests", params={"limit": 1000}).json()["data"]
    if refused is not None:
        assert seen == [], "a request refused by design must not reach the vendor"
    elif cell.name not in ANSWERED_BY_THE_EDGE:
        assert seen, "the call reached no vendor"
    for request in seen:
        assert request["path"].startswith(WIRE[upstream]), f"{request['path']} is not {upstream}'s wire"
        assert CLIENT_KEY not in str(request["headers"])


ANSWERED_BY_THE_EDGE = {"openai.models.sync+async", "anthropic.count_tokens"}
"""Answered from the edge's config (the model list) or, for a non-Anthropic LLM, estimated: maybe no vendor call."""

WIRE = {
    "openai": ("/v1/chat/completions", "/v1/responses", "/v1/embeddings"),
    "anthropic": ("/v1/messages",),
    "gemini": ("/v1beta/models/",),
}
"""The vendor paths each upstream column may see (its own wire format only)."""
