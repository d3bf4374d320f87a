"""Anthropic Messages request fields and content blocks, checked as api.anthropic.com checks them.

Anthropic validates with pydantic and answers `invalid_request_error` with `<path>: <message>`, the path dotted
with list indexes and, inside a tagged union, the tag (`messages.0.content.1.text.text: Field required`). The
option fields are a table walked over the request's own keys, and `check_content` runs inside the parser's one
walk over the messages, so a plain string message costs a type check.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from typing import Any

from .exchange import Invalid

Check = Callable[[str, Any], None]
_NUMBER = (int, float)

MIN_THINKING_BUDGET = 1024
THINKING_LIMIT = (
    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
)
_NOT_OBJECT = "Input should be a valid dictionary or object to extract fields from"


def _fail(path: str, message: str) -> Invalid:
    return Invalid(f"{path}: {message}")


def number(minimum: float, maximum: float) -> Check:
    def check(path: str, value: Any) -> None:
        if not isinstance(value, _NUMBER) or isinstance(value, bool):
            raise _fail(path, "Input should be a valid number")
        if value < minimum:
            raise _fail(path, f"Input should be greater than or equal to {minimum}")
        if value > maximum:
            raise _fail(path, f"Input should be less than or equal to {maximum}")

    return check


def integer(minimum: int) -> Check:
    def check(path: str, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail(path, "Input should be a valid integer")
        if value < minimum:
            raise _fail(path, f"Input should be greater than or equal to {minimum}")

    return check


def string(path: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _fail(path, "Input should be a valid string")


def boolean(path: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _fail(path, "Input should be a valid boolean")


def obj(path: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, _NOT_OBJECT)
    return value


def required(block: dict[str, Any], path: str, field: str, check: Check) -> None:
    value = block.get(field)
    if value is None:
        raise _fail(f"{path}.{field}", "Field required")
    check(f"{path}.{field}", value)


def stop_sequences(path: str, value: Any) -> None:
    if not isinstance(value, list):
        raise _fail(path, "Input should be a valid list")
    for index, item in enumerate(value):
        string(f"{path}.{index}", item)


def system(path: str, value: Any) -> None:
    """A string, or a list of text blocks."""
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise _fail(path, "Input should be a valid list")
    for index, block in enumerate(value):
        where = f"{path}.{index}"
        if obj(where, block).get("type") != "text":
            raise _fail(f"{where}.type", "Input should be 'text'")
        required(block, where, "text", string)


def metadata(path: str, value: Any) -> None:
    for key, item in obj(path, value).items():
        if key != "user_id":
            raise _fail(f"{path}.{key}", "Extra inputs are not permitted")
        if item is not None:
            string(f"{path}.user_id", item)
            if len(item) > 256:
                raise _fail(f"{path}.user_id", "String should have at most 256 characters")


def thinking(path: str, value: Any) -> None:
    """`{"type": "enabled", "budget_tokens": >= 1024}`, `{"type": "disabled"}` or `{"type": "adaptive"}`."""
    kind = _tag(path, obj(path, value), _THINKING)
    if kind == "enabled":
        required(value, f"{path}.enabled", "budget_tokens", _BUDGET)


def tool_choice_fields(path: str, value: Any) -> None:
    """The fields beside the kind (which `anthropic_api` reads): `disable_parallel_tool_use`, a tool's `name`."""
    if isinstance(value, dict) and value.get("disable_parallel_tool_use") is not None:
        boolean(f"{path}.{value.get('type')}.disable_parallel_tool_use", value["disable_parallel_tool_use"])


def check_fields(body: Mapping[str, Any]) -> None:
    """Each option field the request sends, then the thinking budget against `max_tokens`."""
    for name, value in body.items():
        check = FIELDS.get(name)
        if check is not None and value is not None:
            check(name, value)
    budget = body.get("thinking")
    max_tokens = body.get("max_tokens")
    if isinstance(budget, dict) and budget.get("type") == "enabled" and isinstance(max_tokens, int):
        if max_tokens <= budget["budget_tokens"]:
            raise Invalid(THINKING_LIMIT)


def check_content(path: str, content: Any) -> None:
    """A message's content: a string or a list of blocks of the Messages API's kinds."""
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail(path, "Field required" if content is None else "Input should be a valid list")
    for index, block in enumerate(content):
        _block(f"{path}.{index}", block, _BLOCKS)


def _block(path: str, block: Any, kinds: Mapping[str, Callable[[str, dict[str, Any]], None] | None]) -> None:
    kind = _tag(path, obj(path, block), kinds)
    check = kinds[kind]
    if check is not None:
        check(f"{path}.{kind}", block)


def _tag(path: str, value: dict[str, Any], kinds: Mapping[str, Any]) -> str:
    kind = value.get("type")
    if kind is None:
        raise _fail(path, "Unable to extract tag using discriminator 'type'")
    if kind not in kinds:
        expected = ", ".join(f"'{name}'" for name in kinds)
        raise _fail(path, f"Input tag '{kind}' found using 'type' does not match any of the expected tags: {expected}")
    return str(kind)


def _text(path: str, block: dict[str, Any]) -> None:
    required(block, path, "text", string)


def _image(path: str, block: dict[str, Any]) -> None:
    source = block.get("source")
    if source is None:
        raise _fail(f"{path}.source", "Field required")
    where = f"{path}.source"
    kind = _tag(where, obj(where, source), _IMAGE_SOURCES)
    where = f"{where}.{kind}"
    if kind == "base64":
        media_type = source.get("media_type")
        if media_type not in _IMAGE_TYPES:
            raise _fail(f"{where}.media_type", "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
        required(source, where, "data", _base64)
    else:
        required(source, where, "url" if kind == "url" else "file_id", string)


def _document(path: str, block: dict[str, Any]) -> None:
    source = block.get("source")
    if source is None:
        raise _fail(f"{path}.source", "Field required")
    where = f"{path}.source"
    kind = _tag(where, obj(where, source), _DOCUMENT_SOURCES)
    if kind == "base64":
        required(source, f"{where}.base64", "data", _base64)


def _base64(path: str, value: Any) -> None:
    string(path, value)
    try:
        binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error:
        raise _fail(path, "Invalid base64 data") from None


def _tool_use(path: str, block: dict[str, Any]) -> None:
    required(block, path, "id", string)
    required(block, path, "name", string)
    required(block, path, "input", _input)


def _input(path: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise _fail(path, "Input should be a valid dictionary")


def _tool_result(path: str, block: dict[str, Any]) -> None:
    required(block, path, "tool_use_id", string)
    content = block.get("content")
    if content is not None and not isinstance(content, str):
        if not isinstance(content, list):
            raise _fail(f"{path}.content", "Input should be a valid list")
        for index, item in enumerate(content):
            _block(f"{path}.content.{index}", item, _RESULT_BLOCKS)
    if block.get("is_error") is not None:
        boolean(f"{path}.is_error", block["is_error"])


def _thinking_block(path: str, block: dict[str, Any]) -> None:
    required(block, path, "thinking", string)
    required(block, path, "signature", string)


def _redacted(path: str, block: dict[str, Any]) -> None:
    required(block, path, "data", string)


def _search_result(path: str, block: dict[str, Any]) -> None:
    required(block, path, "source", string)
    required(block, path, "title", string)
    content = block.get("content")
    if not isinstance(content, list):
        raise _fail(f"{path}.content", "Field required" if content is None else "Input should be a valid list")
    for index, item in enumerate(content):
        _block(f"{path}.content.{index}", item, {"text": _text})


_BUDGET = integer(MIN_THINKING_BUDGET)
_THINKING = {"enabled": None, "disabled": None, "adaptive": None}
_IMAGE_TYPES = frozenset(("image/jpeg", "image/png", "image/gif", "image/webp"))
_IMAGE_SOURCES = {"base64": None, "url": None, "file": None}
_DOCUMENT_SOURCES = {"base64": None, "text": None, "content": None, "url": None, "file": None}
_RESULT_BLOCKS: dict[str, Callable[[str, dict[str, Any]], None] | None] = {
    "text": _text,
    "image": _image,
    "search_result": _search_result,
    "document": _document,
}
_BLOCKS: dict[str, Callable[[str, dict[str, Any]], None] | None] = {
    **_RESULT_BLOCKS,
    "thinking": _thinking_block,
    "redacted_thinking": _redacted,
    "tool_use": _tool_use,
    "tool_result": _tool_result,
    "server_tool_use": _tool_use,
    "web_search_tool_result": None,
    "web_fetch_tool_result": None,
    "code_execution_tool_result": None,
    "bash_code_execution_tool_result": None,
    "text_editor_code_execution_tool_result": None,
    "mcp_tool_use": None,
    "mcp_tool_result": None,
    "container_upload": None,
}


def _service_tier(path: str, value: Any) -> None:
    if value not in ("auto", "standard_only"):
        raise _fail(path, "Input should be 'auto' or 'standard_only'")


FIELDS: dict[str, Check] = {
    "temperature": number(0, 1),
    "top_p": number(0, 1),
    "top_k": integer(0),
    "system": system,
    "stop_sequences": stop_sequences,
    "metadata": metadata,
    "thinking": thinking,
    "stream": boolean,
    "service_tier": _service_tier,
    "tool_choice": tool_choice_fields,
}
