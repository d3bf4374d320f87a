"""Fields api.anthropic.com refuses with a 400 are refused by the mock too: `invalid_request_error`, `<path>: <what>`.

The `anthropic` SDK sends whatever it is given (its parameter types are not checked at run time), so each bad
value goes through the SDK, as a client would send it; the sampling fields this SDK version no longer names
(`temperature`, `top_p`, `top_k`) go in `extra_body`, as its users send them.
"""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from .conftest import KEY, MockServer

MODEL = "claude-opus-4-5"
USER = [{"role": "user", "content": "Hello"}]
PNG = "iVBORw0KGgo="
UNNAMED = ("temperature", "top_p", "top_k")


@pytest.fixture
def claude(mock: MockServer) -> Any:
    with anthropic.Anthropic(api_key=KEY, base_url=mock.url, max_retries=0) as client:
        yield client


def _image(data: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"temperature": "hot"}, "temperature: Input should be a valid number"),
        ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
        ({"top_p": -0.1}, "top_p: Input should be greater than or equal to 0"),
        ({"top_k": "x"}, "top_k: Input should be a valid integer"),
        ({"top_k": -1}, "top_k: Input should be greater than or equal to 0"),
        ({"system": 5}, "system: Input should be a valid list"),
        ({"system": [{"type": "image"}]}, "system.0.type: Input should be 'text'"),
        ({"system": [{"type": "text"}]}, "system.0.text: Field required"),
        ({"stop_sequences": "x"}, "stop_sequences: Input should be a valid list"),
        ({"stop_sequences": ["a", 5]}, "stop_sequences.1: Input should be a valid string"),
        ({"metadata": {"user_id": 5}}, "metadata.user_id: Input should be a valid string"),
        ({"metadata": {"team": "a"}}, "metadata.team: Extra inputs are not permitted"),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 512}},
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": "x"}},
            "thinking.enabled.budget_tokens: Input should be a valid integer",
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
            "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
        ),
        (
            {"tool_choice": {"type": "auto", "disable_parallel_tool_use": "x"}},
            "tool_choice.auto.disable_parallel_tool_use: Input should be a valid boolean",
        ),
        (
            {"tool_choice": {"type": "sometimes"}},
            "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'",
        ),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content: Input should be a valid list"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages.0.content.0.text.text: Field required",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "messages.0.content.0.text.text: Input should be a valid string",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages.0.content.0: Input tag 'video' found using 'type' does not match any of the expected tags: "
            "'text', 'image', 'search_result', 'document', 'thinking', 'redacted_thinking', 'tool_use', 'tool_result', "
            "'server_tool_use', 'web_search_tool_result', 'web_fetch_tool_result', 'code_execution_tool_result', "
            "'bash_code_execution_tool_result', 'text_editor_code_execution_tool_result', 'mcp_tool_use', "
            "'mcp_tool_result', 'container_upload'",
        ),
        (
            {"messages": [{"role": "user", "content": [_image("!!!")]}]},
            "messages.0.content.0.image.source.base64.data: Invalid base64 data",
        ),
        (
            {"messages": [{"role": "user", "content": [{**_image(PNG), "source": {"type": "base64", "data": PNG}}]}]},
            "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
            "'image/gif' or 'image/webp'",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
            "messages.0.content.0.tool_result.tool_use_id: Field required",
        ),
        (
            {
                "messages": [
                    *USER,
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}]},
                ]
            },
            "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
        ),
    ],
)
def test_a_field_anthropic_refuses_is_a_400_naming_its_path(claude: Any, fields: dict[str, Any], message: str) -> None:
    named = {name: value for name, value in fields.items() if name not in UNNAMED}
    extra = {name: value for name, value in fields.items() if name in UNNAMED}
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(**{"model": MODEL, "max_tokens": 1024, "messages": USER, **named}, extra_body=extra)

    assert refused.value.status_code == 400
    assert refused.value.body["error"] == {"type": "invalid_request_error", "message": message}


def test_count_tokens_checks_the_same_fields(claude: Any) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.count_tokens(model=MODEL, messages=USER, system=5)

    assert refused.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "system: Input should be a valid list",
    }


def test_every_field_anthropic_accepts_still_answers(claude: Any) -> None:
    reply = claude.messages.create(
        model=MODEL,
        max_tokens=4096,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Look"}, _image(PNG)]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "sig"},
                    {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Oslo"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sunny"}]},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
                ],
            },
        ],
        extra_body={"temperature": 1, "top_p": 0.5, "top_k": 0},
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        service_tier="auto",
    )

    assert reply.stop_reason == "end_turn"
    assert reply.content[0].text == "Echo: sunny"
