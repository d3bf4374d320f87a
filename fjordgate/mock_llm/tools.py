"""When the mock answers with tool calls, which tools it calls, and the arguments it makes up.

Trigger (both vendors): the request defines tools and its last message is a user message whose text contains
`call tool` (case-insensitive). `call tool NAME` calls the tool named NAME when it is defined (else the first
tool); `call all tools` calls every tool, one call each, in definition order. A tool choice that forces a call
(OpenAI `"required"` or a named function, Anthropic `any` or `tool`) calls without the trigger; OpenAI `"none"` and
Anthropic `none` never call. A conversation whose last message is a tool result is answered with text, so an agent
loop ends.

Arguments are synthesised from the tool's JSON schema: every property, `const` or first `enum` value when given,
else by type: string `"mock"`, integer `1`, number `1.5`, boolean `true`, array of one item, nested objects
likewise, null `null`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_CALL_ALL = re.compile(r"\bcall all tools\b", re.IGNORECASE)
_CALL_ONE = re.compile(r"\bcall tool\b(?:\s+([\w.\-]+))?", re.IGNORECASE)
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool definition in vendor-neutral form."""

    name: str
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """`mode` is "auto", "none" or "force"; `name` narrows a forced call to one tool."""

    mode: str = "auto"
    name: str | None = None


def pick_tools(text: str | None, tools: list[ToolSpec], choice: ToolChoice, *, parallel: bool = True) -> list[ToolSpec]:
    """The tools to call for a last user message reading `text` (None when the last message is not a user turn)."""
    if not tools or choice.mode == "none":
        return []
    by_name = {tool.name: tool for tool in tools}
    if choice.mode == "force" and choice.name is not None:
        return [by_name[choice.name]] if choice.name in by_name else [tools[0]]
    if text is not None and _CALL_ALL.search(text):
        return list(tools) if parallel else [tools[0]]
    match = _CALL_ONE.search(text) if text is not None else None
    if match is None:
        return [tools[0]] if choice.mode == "force" else []
    named = match.group(1)
    return [by_name[named]] if named in by_name else [tools[0]]


def synthesize(schema: Any, root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A deterministic value that satisfies the common parts of a JSON schema."""
    if not isinstance(schema, dict):
        return "mock"
    root = schema if root is None else root
    if depth > _MAX_DEPTH:
        return None
    if "$ref" in schema:
        return synthesize(_resolve(root, schema["$ref"]), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return synthesize(options[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        return {name: synthesize(sub, root, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [synthesize(schema.get("items", {}), root, depth + 1)]
    return _SCALARS.get(kind, "mock")


_SCALARS: dict[str, Any] = {"string": "mock", "integer": 1, "number": 1.5, "boolean": True, "null": None}


def _resolve(root: dict[str, Any], ref: Any) -> Any:
    """Follow a local `#/...` reference; anything else resolves to an empty schema."""
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return {}
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node
