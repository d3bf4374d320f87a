"""Request parameters of the OpenAI endpoints, validated with the vendor's messages, `param` and `code`."""

from __future__ import annotations

from typing import Any

from .catalog import DEFAULT_EMBEDDING_DIMENSIONS, OPENAI_BY_ID
from .exchange import Invalid
from .openai_content import check_tool
from .tokens import count_tokens
from .tools import ToolChoice, ToolSpec

MAX_EMBEDDING_INPUTS = 2048


def model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Invalid("you must provide a model parameter", param="model", code="missing_required_parameter")
    return model


def optional_int(body: dict[str, Any], name: str, minimum: int, maximum: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(
            f"Invalid type for '{name}': expected an integer, but got {type(value).__name__} instead.",
            param=name,
            code="invalid_type",
        )
    if value < minimum:
        raise Invalid(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {minimum}, but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if maximum is not None and value > maximum:
        raise Invalid(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {maximum}, but got {value} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return value


def stop(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and len(stop) <= 4 and all(isinstance(item, str) for item in stop):
        return stop
    raise Invalid(
        "Invalid 'stop': expected a string or an array of at most 4 strings.", param="stop", code="invalid_value"
    )


def stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        raise Invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    return stream, isinstance(options, dict) and options.get("include_usage") is True


def tools(body: dict[str, Any]) -> list[ToolSpec]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise Invalid("Invalid 'tools': expected an array.", param="tools", code="invalid_type")
    specs = []
    for position, tool in enumerate(tools):
        function = check_tool(f"tools[{position}]", tool)
        if function is not None:
            specs.append(ToolSpec(function["name"], function.get("parameters") or {}))
    return specs


def tool_choice(choice: Any, tools: list[ToolSpec]) -> ToolChoice:
    if choice is None or choice == "auto":
        return ToolChoice()
    if choice == "none":
        return ToolChoice("none")
    if choice == "required":
        return ToolChoice("force")
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(name, str):
        raise Invalid(
            "Invalid 'tool_choice': expected 'none', 'auto', 'required' or a named function.",
            param="tool_choice",
            code="invalid_value",
        )
    if name not in {tool.name for tool in tools}:
        raise Invalid(
            f"Invalid 'tool_choice': function {name!r} is not among the provided tools.",
            param="tool_choice",
            code="invalid_value",
        )
    return ToolChoice("force", name)


def json_schema(response_format: Any) -> Any:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) and schema else {"type": "object"}
    return None


def prompts(body: dict[str, Any]) -> list[tuple[str, int]]:
    """Each prompt as (text, tokens); token-array prompts count their length and read as space-joined ids."""
    prompt = body.get("prompt")
    if prompt is None:
        raise Invalid("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    if isinstance(prompt, str):
        return [(prompt, count_tokens(prompt))]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(item, str) for item in prompt):
            return [(item, count_tokens(item)) for item in prompt]
        if all(isinstance(item, int) for item in prompt):
            return [(" ".join(map(str, prompt)), len(prompt))]
        if all(isinstance(item, list) and all(isinstance(t, int) for t in item) for item in prompt):
            return [(" ".join(map(str, item)), len(item)) for item in prompt]
    raise Invalid(
        "Invalid 'prompt': expected a string, an array of strings, an array of tokens or an array of token arrays.",
        param="prompt",
        code="invalid_type",
    )


def embedding_inputs(body: dict[str, Any]) -> list[tuple[str, int]]:
    """Each input as (hash key, tokens); token arrays hash under a prefix so they never collide with text."""
    value = body.get("input")
    if value is None:
        raise Invalid("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    items: list[tuple[str, int]] | None = None
    if isinstance(value, str):
        items = [(value, count_tokens(value))]
    elif isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            items = [(item, count_tokens(item)) for item in value]
        elif all(isinstance(item, int) and not isinstance(item, bool) for item in value):
            items = [("\0tokens:" + ",".join(map(str, value)), len(value))]
        elif all(isinstance(item, list) and item and all(isinstance(t, int) for t in item) for item in value):
            items = [("\0tokens:" + ",".join(map(str, item)), len(item)) for item in value]
    if items is None or any(key == "" for key, _ in items):
        raise Invalid(
            "'$.input' is invalid. Expected a non-empty string, an array of non-empty strings, or token arrays.",
            param="input",
            code="invalid_value",
        )
    if len(items) > MAX_EMBEDDING_INPUTS:
        raise Invalid(
            f"Invalid 'input': at most {MAX_EMBEDDING_INPUTS} inputs per request.", param="input", code="invalid_value"
        )
    return items


def dimensions(body: dict[str, Any], model: str) -> int:
    known = OPENAI_BY_ID.get(model)
    native = known.embedding_dimensions if known and known.embedding_dimensions else DEFAULT_EMBEDDING_DIMENSIONS
    requested = optional_int(body, "dimensions", 1, None)
    if requested is None:
        return native
    if known is not None and not known.shortenable:
        raise Invalid("This model does not support specifying dimensions.", param="dimensions", code="invalid_value")
    if requested > native:
        raise Invalid(
            f"Invalid 'dimensions': {model} produces at most {native} dimensions, got {requested}.",
            param="dimensions",
            code="integer_above_max_value",
        )
    return requested
