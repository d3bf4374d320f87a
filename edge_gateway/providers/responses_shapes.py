"""OpenAI Responses API <-> Chat Completions: the request and the finished response, as plain JSON shapes.

Why a translation at all: most vendors (the mock in chat mode, vLLM, Anthropic behind the Anthropic provider)
speak Chat Completions, and the providers only translate from that. A Responses request becomes one Chat
Completions request here, and the chat answer becomes a Responses `response` object here; streams are in
`responses.py`. What cannot be expressed in Chat Completions (built-in tools such as `web_search`, `input_file`
parts by file id or URL) is a 400 naming the field, never silently dropped.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..errors import GatewayError
from .base import Usage
from .documents import file_part

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
_COPIED = ("temperature", "top_p", "parallel_tool_calls", "user", "seed")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError.bad_request(message, param=param)


def _image_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    """An `input_image` part as an `image_url` part; a file id alone is refused (no file store here)."""
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise _bad("input_image needs an 'image_url' (file ids are not supported here)", param)
    image: dict[str, Any] = {"url": url}
    if part.get("detail"):
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _file_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    """An `input_file` part with its data inline as a chat `file` part; a file id or URL is refused (no file
    store here, and the vendor behind may be another)."""
    data = part.get("file_data")
    if not isinstance(data, str) or not data:
        raise _bad("input_file needs 'file_data' (file ids and URLs are not supported here)", param)
    filename = part.get("filename")
    if data.startswith("data:") and ";base64," in data:
        media_type, data = data[5:].split(";base64,", 1)
    else:
        media_type = "application/pdf"
    return file_part(media_type or "application/pdf", data, filename if isinstance(filename, str) else None)


def _parts(content: Any, param: str) -> str | list[dict[str, Any]]:
    """A message's content in Chat Completions form: a string, or text / image_url parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad("message content must be a string or an array of parts", param)
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal") or "")})
        elif kind == "input_image":
            parts.append(_image_part(part, param))
        elif kind == "input_file":
            parts.append(_file_part(part, param))
        else:
            raise _bad(f"content part type {kind!r} is not supported by this model's API", param)
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise _bad(f"unsupported message role {role!r}", f"{where}.role")
    return {"role": role, "content": _parts(item.get("content"), f"{where}.content")}


def _add_call(messages: list[dict[str, Any]], item: dict[str, Any]) -> None:
    """A `function_call` item joins the assistant message just before it (Chat puts calls on a message), or
    becomes an assistant message of its own."""
    call = {
        "id": str(item.get("call_id") or ""),
        "type": "function",
        "function": {"name": str(item.get("name") or ""), "arguments": str(item.get("arguments") or "")},
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and "tool_calls" in last:
        last["tool_calls"].append(call)
    elif last is not None and last["role"] == "assistant" and isinstance(last.get("content"), str):
        last["tool_calls"] = [call]
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def chat_messages(items: list[Any], param: str = "input") -> list[dict[str, Any]]:
    """Responses input items (messages, function calls and their outputs) as Chat Completions messages."""
    messages: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        where = f"{param}[{position}]"
        if not isinstance(item, dict):
            raise _bad("each input item must be an object", where)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            _add_call(messages, item)
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _text_of(output)
            messages.append({"role": "tool", "tool_call_id": str(item.get("call_id") or ""), "content": text})
        elif kind == "reasoning":
            continue  # the model's own reasoning summary: nothing a chat model can take back
        else:
            raise _bad(f"input item type {kind!r} is not supported by this model's API", f"{where}.type")
    return messages


def _text_of(output: Any) -> str:
    if isinstance(output, list):
        return "".join(str(p.get("text") or "") for p in output if isinstance(p, dict))
    return "" if output is None else str(output)


def input_items(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's `input` as a list of items (a string is one user message)."""
    raw = data.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if isinstance(raw, list):
        return raw
    if raw is None:
        return []
    raise _bad("'input' must be a string or an array of items", "input")


def _tools(data: dict[str, Any]) -> list[dict[str, Any]]:
    tools = data.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _bad("'tools' must be an array", "tools")
    out = []
    for position, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _bad(f"tool type {kind!r} is not supported by this model's API", f"tools[{position}].type")
        function: dict[str, Any] = {"name": str(tool.get("name") or "")}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": str(choice.get("name") or "")}}
    raise _bad("'tool_choice' must be 'auto', 'none', 'required' or a function", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise _bad(f"text format {fmt.get('type')!r} is not supported", "text.format")


def _conversation(data: dict[str, Any], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Instructions as the system message, then the earlier turns, then this request's input (400 when that
    leaves no message but the system one)."""
    messages: list[dict[str, Any]] = []
    instructions = data.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    messages.extend(chat_messages(history, "previous_response_id"))
    messages.extend(chat_messages(input_items(data)))
    if not any(m["role"] != "system" for m in messages):
        raise _bad("'input' must hold at least one message", "input")
    return messages


def to_chat_request(data: dict[str, Any], history: list[dict[str, Any]], model: str, stream: bool) -> dict[str, Any]:
    """A Chat Completions body for a Responses request; `history` are the stored items of earlier turns."""
    out: dict[str, Any] = {"model": model, "messages": _conversation(data, history)}
    for key in _COPIED:
        if data.get(key) is not None:
            out[key] = data[key]
    if data.get("max_output_tokens") is not None:
        out["max_tokens"] = data["max_output_tokens"]
    tools = _tools(data)
    if tools:
        out["tools"] = tools
        if data.get("tool_choice") is not None:
            out["tool_choice"] = _tool_choice(data.get("tool_choice"))
    response_format = _response_format(data.get("text"))
    if response_format is not None:
        out["response_format"] = response_format
    reasoning = data.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        out["reasoning_effort"] = reasoning["effort"]
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # the final usage chunk: reasoning tokens for `usage`
    return out


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
