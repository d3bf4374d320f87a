"""The health board's RPC over in-memory studio services: the board lists LLMs, a check calls the LLM and keeps
its record (checks, failures, latency); a failing LLM is counted as a failure with its error."""

from __future__ import annotations

import json
from collections.abc import Callable

from plugins.llm_health_board.plugin import LLMHealthBoard
from shared_sdk import ServiceError
from shared_sdk.messages import LLM, LLMMessage
from shared_sdk.testing import PluginHarness
from shared_sdk.testing.services import InMemoryStudio, make_services


def _harness(responder: Callable[[int, list[LLMMessage], str], str] | None = None) -> PluginHarness:
    studio = InMemoryStudio(
        llms=[
            LLM(id=1, name="GPT", vendor="openai", default_model="gpt-4o"),
            LLM(id=2, name="Claude", vendor="anthropic"),
        ],
        llm_responder=responder,
    )
    services = make_services("studio", "llm-health-board", studio=studio)
    return PluginHarness(LLMHealthBoard(), runtime="studio", services=services)


async def test_board_lists_llms_and_a_check_is_recorded() -> None:
    async with _harness(lambda llm_id, messages, model: "pong") as h:
        board = json.loads(await h.call("handle_rpc", "board", b""))
        assert [(r["name"], r["checks"]) for r in board["llms"]] == [("GPT", 0), ("Claude", 0)]
        answer = json.loads(await h.call("handle_rpc", "check", b'{"llm_id": 1}'))
        assert answer["llm"]["checks"] == 1 and answer["llm"]["failures"] == 0 and answer["llm"]["last_ms"] >= 0
        board = json.loads(await h.call("handle_rpc", "board", b""))
        assert board["llms"][0]["checks"] == 1


async def test_failing_llm_counts_a_failure_and_bad_input_is_explained() -> None:
    def broken(llm_id: int, messages: list[LLMMessage], model: str) -> str:
        raise ServiceError("vendor answered 503")

    async with _harness(broken) as h:
        answer = json.loads(await h.call("handle_rpc", "check", b'{"llm_id": 2}'))
        assert answer["llm"]["failures"] == 1 and "503" in answer["llm"]["last_error"]
        assert "llm_id" in json.loads(await h.call("handle_rpc", "check", b"not json"))["error"]
        deep = b"[" * 100_000 + b"]" * 100_000  # Python's json recurses: past its limit, a RecursionError
        assert "llm_id" in json.loads(await h.call("handle_rpc", "check", deep))["error"]
        assert "Unknown method" in json.loads(await h.call("handle_rpc", "drop_tables", b""))["error"]


async def test_assets_are_a_fixed_list() -> None:
    async with _harness() as h:
        index = await h.call("get_asset", "index.html")
        assert index.content_type.startswith("text/html") and b"board.js" in index.content
        assert await h.call("get_asset", "../plugin.py") is None
        assert sorted(await h.call("list_assets")) == ["board.css", "board.js", "index.html"]
