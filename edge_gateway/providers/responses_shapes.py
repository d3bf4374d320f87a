"""OpenAI Responses API <-> Chat Completions: the request and the finished response, as plain JSON shapes.

Why a translation at all: most vendors (the mock in chat mode, vLLM, Anthropic behind the Anthropic provider)
speak Chat Completions, and the providers only translate from that. A Responses request becomes one Chat
Completions request here, and the chat answer becomes a Responses `response` object here; streams are in
`responses.py`. What cannot be expressed in Chat Completions (built-in tools such as `web_search`, `input_file`
parts by file id or URL) is a 400 naming the field, never silently dropped. Every field the translation reads,
or drops for want of a chat counterpart, is checked for the type OpenAI gives it as the translation reaches it:
a wrong one is OpenAI's 400 with `param` naming it (`field_errors`), never a 200 that ignored it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..errors import GatewayError
from .base import Usage
from .documents import file_part
from .field_errors import (
    is_number,
    openai_invalid_type,
    openai_invalid_value,
    openai_missing,
    openai_out_of_range,
)

__all__ = [
    "chat_messages",
    "incomplete_reason",
    "new_id",
    "output_items",
    "reasoning_tokens",
    "response_object",
    "to_chat_request",
    "usage_block",
]

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_RANGES = {"temperature": 2.0, "top_p": 1.0}
"""Copied to the chat request: decimals from 0 to OpenAI's bound (a vendor behind may not check them)."""
_SCALARS: dict[str, tuple[type, str]] = {
    "parallel_tool_calls": (bool, "a boolean"),  # copied
    "user": (str, "a string"),  # copied
    "seed": (int, "an integer"),  # copied
    "store": (bool, "a boolean"),  # read by the pipeline
    "background": (bool, "a boolean"),  # dropped (answered in the foreground)
    "service_tier": (str, "a string"),  # dropped from here on
    "prompt_cache_key": (str, "a string"),
    "safety_identifier": (str, "a string"),
    "top_logprobs": (int, "an integer"),
    "max_tool_calls": (int, "an integer"),
}
"""Top-level fields of one JSON type, checked by exact type as JSON decodes them (a boolean is not an integer)."""
_CHECKED = frozenset({*_RANGES, *_SCALARS, "metadata", "include", "truncation"})
_COPIED = ("temperature", "top_p", "parallel_tool_calls", "user", "seed")
_FUNCTION_FIELDS = (("description", str, "a string"), ("parameters", dict, "an object"), ("strict", bool, "a boolean"))
_ROLES = ("user", "assistant", "system", "developer")
_TOOL_CHOICES = ("none", "auto", "required")
_DETAILS = ("low", "high", "auto")
_TRUNCATIONS = ("auto", "disabled")
_FORMATS = ("text", "json_object", "json_schema")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError.bad_request(message, param=param)


def _string(value: Any, param: str, required: bool = False) -> Any:
    """`value` when it is a string (or absent and not `required`), else OpenAI's 400 naming `param`."""
    if isinstance(value, str) or (value is None and not required):
        return value
    raise openai_missing(param) if value is None else openai_invalid_type(param, "a string", value)


def _image_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    """An `input_image` part as an `image_url` part; a file id alone is refused (no file store here)."""
    url = _string(part.get("image_url"), f"{param}.image_url")
    if not url:
        raise _bad("input_image needs an 'image_url' (file ids are not supported here)", param)
    image: dict[str, Any] = {"url": url}
    detail = part.get("detail")
    if detail is not None:
        if detail not in _DETAILS:
            raise openai_invalid_value(f"{param}.detail", detail, _DETAILS)
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def _file_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    """An `input_file` part with its data inline as a chat `file` part; a file id or URL is refused (no file
    store here, and the vendor behind may be another)."""
    data = part.get("file_data")
    if not isinstance(data, str) or not data:
        raise _bad("input_file needs 'file_data' (file ids and URLs are not supported here)", param)
    filename = _string(part.get("filename"), f"{param}.filename")
    if data.startswith("data:") and ";base64," in data:
        media_type, data = data[5:].split(";base64,", 1)
    else:
        media_type = "application/pdf"
    return file_part(media_type or "application/pdf", data, filename)


def _not_string(value: Any, param: str) -> GatewayError:
    """The 400 for a required string field that is missing or of another type (built only on that path)."""
    return openai_missing(param) if value is None else openai_invalid_type(param, "a string", value)


def _parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A message's content in Chat Completions form: a string, or text / image_url parts. `where` is the item's
    path (`input[0]`); a part's path is built only for an error."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        param = f"{where}.content"
        raise openai_missing(param) if content is None else openai_invalid_type(param, "a string or an array", content)
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        if not isinstance(part, dict):
            raise openai_invalid_type(f"{where}.content[{index}]", "an object", part)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise _not_string(text, f"{where}.content[{index}].text")
            parts.append({"type": "text", "text": text})
        elif kind == "refusal":
            text = part.get("refusal")
            if not isinstance(text, str):
                raise _not_string(text, f"{where}.content[{index}].refusal")
            parts.append({"type": "text", "text": text})
        elif kind == "input_image":
            parts.append(_image_part(part, f"{where}.content[{index}]"))
        elif kind == "input_file":
            parts.append(_file_part(part, f"{where}.content[{index}]"))
        else:
            message = f"content part type {kind!r} is not supported by this model's API"
            raise _bad(message, f"{where}.content[{index}].type")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _add_call(messages: list[dict[str, Any]], item: dict[str, Any], param: str, position: int) -> None:
    """A `function_call` item joins the assistant message just before it (Chat puts calls on a message), or
    becomes an assistant message of its own."""
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
    if not (isinstance(call_id, str) and isinstance(name, str) and isinstance(arguments, str)):
        field = next(f for f in ("call_id", "name", "arguments") if not isinstance(item.get(f), str))
        raise _not_string(item.get(field), f"{param}[{position}].{field}")
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and "tool_calls" in last:
        last["tool_calls"].append(call)
    elif last is not None and last["role"] == "assistant" and isinstance(last.get("content"), str):
        last["tool_calls"] = [call]
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool_message(item: dict[str, Any], param: str, position: int) -> dict[str, Any]:
    """A `function_call_output` item as the tool message answering its call."""
    call_id = item.get("call_id")
    if not isinstance(call_id, str):
        raise _not_string(call_id, f"{param}[{position}].call_id")
    output = item.get("output")
    if not isinstance(output, str):
        output = _output_text(output, f"{param}[{position}].output")
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def chat_messages(items: list[Any], param: str = "input") -> list[dict[str, Any]]:
    """Responses input items (messages, function calls and their outputs) as Chat Completions messages."""
    messages: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise openai_invalid_type(f"{param}[{position}]", "an object", item)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise _bad(f"unsupported message role {role!r}", f"{param}[{position}].role")
            content = item.get("content")
            messages.append({"role": role, "content": _parts(content, f"{param}[{position}]")})
        elif kind == "function_call":
            _add_call(messages, item, param, position)
        elif kind == "function_call_output":
            messages.append(_tool_message(item, param, position))
        elif kind == "reasoning":
            continue  # the model's own reasoning summary: nothing a chat model can take back
        else:
            raise _bad(f"input item type {kind!r} is not supported by this model's API", f"{param}[{position}].type")
    return messages


def _output_text(output: Any, param: str) -> str:
    """A `function_call_output`'s output given as parts: text parts only (a tool message carries text)."""
    if not isinstance(output, list):
        raise _not_string(output, param)
    text = []
    for index, part in enumerate(output):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("input_text", "output_text"):
            raise _bad(f"output part type {kind!r} is not supported by this model's API", f"{param}[{index}]")
        said = part.get("text")
        if not isinstance(said, str):
            raise _not_string(said, f"{param}[{index}].text")
        text.append(said)
    return "".join(text)


def input_items(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's `input` as a list of items (a string is one user message)."""
    raw = data.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if isinstance(raw, list):
        return raw
    if raw is None:
        return []
    raise openai_invalid_type("input", "a string or an array", raw)


def _tools(data: dict[str, Any]) -> list[dict[str, Any]]:
    tools = data.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _bad("'tools' must be an array", "tools")
    out = []
    for position, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise openai_invalid_type(f"tools[{position}]", "an object", tool)
        if tool.get("type") != "function":
            raise _bad(
                f"tool type {tool.get('type')!r} is not supported by this model's API", f"tools[{position}].type"
            )
        name = tool.get("name")
        if not isinstance(name, str):
            raise _not_string(name, f"tools[{position}].name")
        function: dict[str, Any] = {"name": name}
        for key, kind, expected in _FUNCTION_FIELDS:
            value = tool.get(key)
            if value is not None:
                if not isinstance(value, kind):
                    raise openai_invalid_type(f"tools[{position}].{key}", expected, value)
                function[key] = value
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICES:
            raise openai_invalid_value("tool_choice", choice, _TOOL_CHOICES)
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": _string(choice.get("name"), "tool_choice.name", True)}}
    raise _bad("'tool_choice' must be 'auto', 'none', 'required' or a function", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    """`text.format` as the chat `response_format` (None for plain text); `text.verbosity` is dropped."""
    if not isinstance(text, dict):
        raise openai_invalid_type("text", "an object", text)
    verbosity = text.get("verbosity")  # no chat counterpart: dropped
    if verbosity is not None and not isinstance(verbosity, str):
        raise openai_invalid_type("text.verbosity", "a string", verbosity)
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise openai_invalid_type("text.format", "an object", fmt)
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise (
            openai_missing("text.format.type")
            if kind is None
            else openai_invalid_value("text.format.type", kind, _FORMATS)
        )
    schema = {"name": _string(fmt.get("name"), "text.format.name", True)}
    if not isinstance(fmt.get("schema"), dict):
        value = fmt.get("schema")
        raise (
            openai_missing("text.format.schema")
            if value is None
            else openai_invalid_type("text.format.schema", "an object", value)
        )
    schema["schema"] = fmt["schema"]
    for key, kind, expected in (("strict", bool, "a boolean"), ("description", str, "a string")):
        value = fmt.get(key)
        if value is not None:
            if not isinstance(value, kind):
                raise openai_invalid_type(f"text.format.{key}", expected, value)
            schema[key] = value
    return {"type": "json_schema", "json_schema": schema}


def _conversation(data: dict[str, Any], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Instructions as the system message, then the earlier turns, then this request's input (400 when that
    leaves no message but the system one)."""
    messages: list[dict[str, Any]] = []
    instructions = _string(data.get("instructions"), "instructions")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    messages.extend(chat_messages(history, "previous_response_id"))
    messages.extend(chat_messages(input_items(data)))
    if not any(m["role"] != "system" for m in messages):
        raise _bad("'input' must hold at least one message", "input")
    return messages


def to_chat_request(data: dict[str, Any], history: list[dict[str, Any]], model: str, stream: bool) -> dict[str, Any]:
    """A Chat Completions body for a Responses request; `history` are the stored items of earlier turns."""
    out: dict[str, Any] = {"model": model, "messages": _conversation(data, history)}
    _check_scalars(data)
    for key in _COPIED:
        if data.get(key) is not None:
            out[key] = data[key]
    if data.get("max_output_tokens") is not None:
        out["max_tokens"] = data["max_output_tokens"]
    tools = _tools(data)
    choice = data.get("tool_choice")
    if choice is not None:
        choice = _tool_choice(choice)
        if tools:
            out["tool_choice"] = choice
    if tools:
        out["tools"] = tools
    text = data.get("text")
    if text is not None:
        response_format = _response_format(text)
        if response_format is not None:
            out["response_format"] = response_format
    reasoning = data.get("reasoning")
    if reasoning is not None:
        effort = _reasoning_effort(reasoning)
        if effort:
            out["reasoning_effort"] = effort
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # the final usage chunk: reasoning tokens for `usage`
    return out


def _check_scalars(data: dict[str, Any]) -> None:
    """The top-level fields of one JSON type (`_SCALARS`), `temperature` and `top_p` in range, `metadata` (echoed
    in the response), `include` and `truncation` (dropped): OpenAI's 400 naming the first that is wrong. Only
    the ones the request has are looked at (one set intersection in C, usually one or two fields)."""
    for key in _CHECKED.intersection(data):
        value = data[key]
        rule = _SCALARS.get(key)
        if value is None:
            continue
        if rule is not None:
            if type(value) is not rule[0]:
                raise openai_invalid_type(key, rule[1], value)
        elif key in _RANGES:
            if not is_number(value):
                raise openai_invalid_type(key, "a decimal", value)
            if not 0 <= value <= _RANGES[key]:
                raise openai_out_of_range(key, value, 0, _RANGES[key])
        elif key == "metadata":
            _check_metadata(value)
        elif key == "include":
            if not (isinstance(value, list) and all(isinstance(i, str) for i in value)):
                raise openai_invalid_type("include", "an array of strings", value)
        elif value not in _TRUNCATIONS:
            raise openai_invalid_value("truncation", value, _TRUNCATIONS)


def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, dict):
        raise openai_invalid_type("metadata", "an object", metadata)
    for name, value in metadata.items():
        if not isinstance(value, str):
            raise openai_invalid_type(f"metadata.{name}", "a string", value)


def _reasoning_effort(reasoning: Any) -> Any:
    """`reasoning.effort` (sent as `reasoning_effort`); `reasoning.summary` has no chat counterpart (dropped)."""
    if not isinstance(reasoning, dict):
        raise openai_invalid_type("reasoning", "an object", reasoning)
    _string(reasoning.get("summary"), "reasoning.summary")
    return _string(reasoning.get("effort"), "reasoning.effort")


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def function_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat `message` as Responses output items: one message (if it has text), one item per tool call."""
    items: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str) and content:
        items.append(message_item(new_id("msg"), content))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        items.append(
            function_item(
                new_id("fc"),
                str(call.get("id") or ""),
                str(function.get("name") or ""),
                function.get("arguments") or "",
            )
        )
    return items


def incomplete_reason(finish_reason: str | None) -> str | None:
    return _INCOMPLETE.get(finish_reason or "")


def usage_block(usage: Usage, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def reasoning_tokens(chat_usage: Any) -> int:
    """The reasoning tokens a chat answer's `usage` reports (`completion_tokens_details`), else 0."""
    details = chat_usage.get("completion_tokens_details") if isinstance(chat_usage, dict) else None
    tokens = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return tokens if isinstance(tokens, int) else 0


def response_object(
    response_id: str,
    data: dict[str, Any],
    model: str,
    output: list[dict[str, Any]],
    *,
    status: str = "completed",
    reason: str | None = None,
    usage: Usage | None = None,
    created_at: int | None = None,
    reasoning: int = 0,
) -> dict[str, Any]:
    """A Responses `response` object as api.openai.com returns it (the fields the SDKs read)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at if created_at is not None else int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "instructions": data.get("instructions"),
        "max_output_tokens": data.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": data.get("parallel_tool_calls", True),
        "previous_response_id": data.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": data.get("store", True) is not False,
        "temperature": data.get("temperature", 1.0),
        "text": data.get("text") or {"format": {"type": "text"}},
        "tool_choice": data.get("tool_choice", "auto"),
        "tools": data.get("tools") or [],
        "top_p": data.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage_block(usage, reasoning) if usage is not None else None,
        "user": data.get("user"),
        "metadata": data.get("metadata") or {},
    }
