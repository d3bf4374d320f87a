"""The desk agent behind the real plugin host (in-process and isolated) with the SDK's in-memory studio: a tool
call round, refusals of its tools, budget refusals as error chunks."""

from __future__ import annotations

from typing import Any

import pytest

from plugins.desk_agent.plugin import DeskAgent
from plugins.desk_agent.tools import ToolError, calculate, current_time, run_tool
from shared_sdk import Runtime, ServiceError
from shared_sdk.messages import (
    LLM,
    AgentChunkType,
    AgentHistoryMessage,
    AgentMessageRequest,
    LLMCallResponse,
    LLMMessage,
)
from shared_sdk.testing.harness import PluginHarness
from shared_sdk.testing.services import InMemoryStudio, make_services

LLMS = [LLM(id=7, slug="team-gpt", name="Team GPT", privacy_score=40)]


def _scripted(llm_id: int, messages: list[LLMMessage], model: str) -> str | LLMCallResponse:
    """First call: ask for `calculate`; then answer with the tool's result."""
    if messages[-1].role == "tool":
        return f"The answer is {messages[-1].content.split(' = ')[-1]}."
    return LLMCallResponse(
        finish_reason="tool_calls",
        tool_calls=[
            {"id": "c1", "type": "function", "function": {"name": "calculate", "arguments": '{"expression": "6*7"}'}}
        ],
    )


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
async def test_a_tool_call_round_streams_call_result_content_done(isolated: bool) -> None:
    studio = InMemoryStudio(llms=LLMS, llm_responder=_scripted)
    services = make_services(Runtime.STUDIO, "desk-agent", studio=studio)
    plugin = "plugins.desk_agent.plugin:DeskAgent" if isolated else DeskAgent()
    async with PluginHarness(
        plugin, runtime=Runtime.STUDIO, slug="desk-agent", isolated=isolated, services=services
    ) as h:
        request = AgentMessageRequest(
            session_id="s1",
            user_message="what is 6*7?",
            available_llms=LLMS,
            history=[
                AgentHistoryMessage(role="user", content="hi"),
                AgentHistoryMessage(role="assistant", content="hello"),
            ],
        )
        chunks = await h.collect("handle_agent_message", request)
    kinds = [c.type for c in chunks]
    assert kinds == [
        AgentChunkType.THINKING,
        AgentChunkType.TOOL_CALL,
        AgentChunkType.TOOL_RESULT,
        AgentChunkType.THINKING,
        AgentChunkType.CONTENT,
        AgentChunkType.DONE,
    ]
    assert chunks[1].content == 'calculate({"expression": "6*7"})' and chunks[1].metadata["name"] == "calculate"
    assert chunks[2].content == "6*7 = 42" and chunks[2].metadata["ok"] is True
    assert chunks[4].content == "The answer is 42."
    if not isolated:  # the in-memory studio saw both calls: history first, then the tool round trip
        first, second = studio.llm_calls
        assert [m.role for m in first[1]] == ["system", "user", "assistant", "user"]
        assert [m.role for m in second[1]][-2:] == ["assistant", "tool"]
        assert second[1][-2].tool_calls[0]["id"] == "c1" and second[1][-1].tool_call_id == "c1"
        assert [t["function"]["name"] for t in studio.llm_tools[0]] == [
            "calculate",
            "current_time",
            "list_llms",
            "word_count",
        ]


async def test_no_llm_for_the_user_is_an_error_chunk() -> None:
    async with PluginHarness(DeskAgent(), runtime=Runtime.STUDIO, slug="desk-agent") as h:
        chunks = await h.collect("handle_agent_message", AgentMessageRequest(user_message="hi"))
    assert [(c.type, c.is_final) for c in chunks] == [(AgentChunkType.ERROR, True)]
    assert "no access to an LLM" in chunks[0].content


async def test_a_budget_refusal_of_the_llm_call_reaches_the_user_as_an_error() -> None:
    class Broke(InMemoryStudio):
        async def call_llm(self, *args: Any, **kwargs: Any) -> LLMCallResponse:
            raise ServiceError("llm budget exhausted: 5.0000 of 5 USD spent this period")

    services = make_services(Runtime.STUDIO, "desk-agent", studio=Broke(llms=LLMS))
    async with PluginHarness(DeskAgent(), runtime=Runtime.STUDIO, slug="desk-agent", services=services) as h:
        chunks = await h.collect("handle_agent_message", AgentMessageRequest(user_message="hi", available_llms=LLMS))
    assert chunks[-1].type is AgentChunkType.ERROR and "budget exhausted" in chunks[-1].content


def test_the_calculator_refuses_anything_but_arithmetic() -> None:
    assert calculate("(1250 * 0.19) + 3") == "(1250 * 0.19) + 3 = 240.5"
    assert calculate("2 ** 10 // 3") == "2 ** 10 // 3 = 341"
    for hostile in ("__import__('os').system('id')", "x + 1", "9 ** 9 ** 9", "1/0", "10.0 ** 400", "[1] * 9"):
        with pytest.raises(ToolError):
            calculate(hostile)
    with pytest.raises(ToolError, match="characters"):
        calculate("1+" * 200 + "1")


def test_tools_by_name_with_json_arguments() -> None:
    assert run_tool("list_llms", "{}", llms=LLMS) == "Team GPT (team-gpt, privacy 40)"
    assert run_tool("word_count", '{"text": "a b  c"}', llms=[]) == "3 words, 6 characters"
    assert "UTC" in current_time("UTC")
    for name, arguments in (("nope", "{}"), ("calculate", "not json"), ("current_time", '{"timezone": "Mars/Base"}')):
        with pytest.raises(ToolError):
            run_tool(name, arguments, llms=[])
