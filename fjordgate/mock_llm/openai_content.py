"""Chat messages and tool definitions, checked as api.openai.com checks them.

A message's content is a string or an array of parts whose types depend on its role (a user's: text, image_url,
input_audio, file, and `video_url`, the extension of OpenAI-compatible servers such as vLLM that the edge bills
for; an assistant's: text, refusal; system, developer and tool messages: text). An assistant's
`tool_calls` need an id and a function name and arguments; a tool message needs its `tool_call_id`. Tool
definitions need a name matching `^[a-zA-Z0-9_-]{1,64}$` and, when given, parameters that are an object.
`check_message` runs inside the chat parser's one walk over the messages: a plain string message costs a couple
of dict lookups.
"""

from __future__ import annotations

from typing import Any

from .openai_fields import boolean, missing, name_pattern, one_of, string, unsupported, wrong_type

_TEXT = ("text",)
_USER = ("text", "image_url", "input_audio", "file")
PARTS_BY_ROLE: dict[str, tuple[str, ...]] = {
    "system": _TEXT,
    "developer": _TEXT,
    "user": _USER,
    "assistant": ("text", "refusal"),
    "tool": _TEXT,
}
_PLAIN = frozenset(("user", "system", "developer"))
_CONTENT_TYPES = "one of a string or array of objects"
_DETAIL = one_of("auto", "low", "high")
_AUDIO_FORMAT = one_of("wav", "mp3")
_TOOL_TYPES = ("function", "custom")


def check_message(position: int, message: dict[str, Any], role: str) -> None:
    """One message of a chat request (its role already known to be valid)."""
    content = message.get("content")
    if content.__class__ is str and role in _PLAIN:
        return  # the common case, before any path is formatted
    where = f"messages[{position}]"
    if role == "assistant":
        calls = message.get("tool_calls")
        if calls is not None:
            _tool_calls(f"{where}.tool_calls", calls)
        if content is None:
            return  # an assistant turn may carry only tool calls (or nothing at all)
    elif role == "tool":
        call_id = message.get("tool_call_id")
        if call_id is None:
            raise missing(f"{where}.tool_call_id")
        string(f"{where}.tool_call_id", call_id)
    elif role == "function":
        if message.get("name") is None:
            raise missing(f"{where}.name")
        if content is None:
            return
    if isinstance(content, str):
        return
    if content is None:
        raise missing(f"{where}.content")
    if not isinstance(content, list) or role == "function":
        raise wrong_type(f"{where}.content", _CONTENT_TYPES if role != "function" else "a string", content)
    allowed = PARTS_BY_ROLE[role]
    for index, part in enumerate(content):
        _part(f"{where}.content[{index}]", part, allowed)


def _part(param: str, part: Any, allowed: tuple[str, ...]) -> None:
    """A content part; its payload sits under the key named by its type (`text`, `image_url`, ...)."""
    if not isinstance(part, dict):
        raise wrong_type(param, "an object", part)
    kind = part.get("type")
    if kind is None:
        raise missing(f"{param}.type")
    if kind not in allowed and (kind != "video_url" or allowed is not _USER):
        raise unsupported(f"{param}.type", kind, allowed)
    payload = part.get(kind)
    if payload is None:
        raise missing(f"{param}.{kind}")
    if kind in ("text", "refusal"):
        string(f"{param}.{kind}", payload)
        return
    if not isinstance(payload, dict):
        raise wrong_type(f"{param}.{kind}", "an object", payload)
    if kind in ("image_url", "video_url"):
        if payload.get("url") is None:
            raise missing(f"{param}.{kind}.url")
        string(f"{param}.{kind}.url", payload["url"])
        if payload.get("detail") is not None:
            _DETAIL(f"{param}.image_url.detail", payload["detail"])
    elif kind == "input_audio":
        for field in ("data", "format"):
            if payload.get(field) is None:
                raise missing(f"{param}.input_audio.{field}")
        string(f"{param}.input_audio.data", payload["data"])
        _AUDIO_FORMAT(f"{param}.input_audio.format", payload["format"])
    else:  # file: file_data, file_id, filename, each a string when given
        for field in ("file_data", "file_id", "filename"):
            if payload.get(field) is not None:
                string(f"{param}.file.{field}", payload[field])


def _tool_calls(param: str, calls: Any) -> None:
    if not isinstance(calls, list):
        raise wrong_type(param, "an array", calls)
    for index, call in enumerate(calls):
        where = f"{param}[{index}]"
        if not isinstance(call, dict):
            raise wrong_type(where, "an object", call)
        for field in ("id", "type"):
            if call.get(field) is None:
                raise missing(f"{where}.{field}")
        string(f"{where}.id", call["id"])
        if call["type"] not in _TOOL_TYPES:
            raise unsupported(f"{where}.type", call["type"], _TOOL_TYPES)
        kind = call["type"]
        payload = call.get(kind)
        if payload is None:
            raise missing(f"{where}.{kind}")
        if not isinstance(payload, dict):
            raise wrong_type(f"{where}.{kind}", "an object", payload)
        if payload.get("name") is None:
            raise missing(f"{where}.{kind}.name")
        name_pattern(f"{where}.{kind}.name", payload["name"])
        field = "arguments" if kind == "function" else "input"
        if payload.get(field) is None:
            raise missing(f"{where}.{kind}.{field}")
        string(f"{where}.{kind}.{field}", payload[field])


def check_tool(param: str, tool: Any) -> dict[str, Any] | None:
    """A chat tool definition; answers its `function` object (None for a custom tool, which the mock never calls)."""
    if not isinstance(tool, dict):
        raise wrong_type(param, "an object", tool)
    kind = tool.get("type")
    if kind is None:
        raise missing(f"{param}.type")
    if kind not in _TOOL_TYPES:
        raise unsupported(f"{param}.type", kind, _TOOL_TYPES)
    definition = tool.get(kind)
    if definition is None:
        raise missing(f"{param}.{kind}")
    if not isinstance(definition, dict):
        raise wrong_type(f"{param}.{kind}", "an object", definition)
    check_function(f"{param}.{kind}", definition)
    return definition if kind == "function" else None


def check_function(param: str, definition: dict[str, Any]) -> None:
    """A function's `name` (required, the pattern), `description`, `parameters` (an object) and `strict`."""
    name = definition.get("name")
    if name is None:
        raise missing(f"{param}.name")
    name_pattern(f"{param}.name", name)
    if definition.get("description") is not None:
        string(f"{param}.description", definition["description"])
    parameters = definition.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise wrong_type(f"{param}.parameters", "an object", parameters)
    if definition.get("strict") is not None:
        boolean(f"{param}.strict", definition["strict"])
