"""Anthropic Messages in front of an OpenAI-compatible vendor: the request translated to Chat Completions.

Why: `POST /v1/messages` is a kind of request of its own ("messages"); to an Anthropic LLM it goes as is, to an
OpenAI-compatible one (the mock included) the provider sends Chat Completions and hands the client Messages back
(`messages_reply.py` translates the reply and the stream). What maps to what:

    system (string or text blocks)          -> a system message
    text / image (base64, url) blocks       -> text / image_url parts (base64 as a data: URL)
    document blocks (base64 PDF, text)      -> file parts (a data: URL) / text parts
    assistant tool_use blocks               -> tool_calls (arguments as a JSON string)
    user tool_result blocks                 -> tool messages (before the rest of that user turn); their images
                                               -> image_url parts of the user message that follows them
    tools / tool_choice (auto, any, tool, none), disable_parallel_tool_use -> tools / tool_choice,
                                               parallel_tool_calls
    max_tokens, temperature, top_p, stop_sequences, metadata.user_id -> max_tokens, ..., stop, user
    output_config.format (json_schema)      -> response_format json_schema (what `client.messages.parse` sends)

`thinking` blocks and `top_k` have no Chat Completions counterpart and are dropped.

Images in a `tool_result` (a screenshot tool, a chart): a Chat Completions `tool` message holds text only, so
the tool message keeps the result's text and the images follow in the user message after the turn's tool
messages, each result's images behind a text part naming its `tool_use_id` ("the result of tool call X
includes these images:"), before the turn's own blocks; a result of images only says so in its tool message.
That is the order OpenAI accepts (the tool messages right after the calls, then a user message) and the usual
way gateways carry such results. A Gemini LLM gets the same through `gemini_format.chat_to_gemini`, which merges
consecutive user messages into one turn: the `functionResponse` parts and, beside them, the images as
`inlineData` (or `fileData`) parts, which every Gemini model reads (multimodal `functionResponse.parts` exist
for Gemini 3 only).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import GatewayError
from .base import estimate_tokens
from .documents import file_part

__all__ = ["estimate_message_tokens", "messages_to_chat"]


def _bad(message: str, param: str = "messages") -> GatewayError:
    return GatewayError.bad_request(message, param=param)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _bad("an image block needs a 'source'")
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise _bad(f"image source type {source.get('type')!r} is not supported")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_parts(block: dict[str, Any]) -> dict[str, Any]:
    """A `document` block: a base64 PDF as a `file` part, a plain-text document as a text part; a URL or a Files
    API id is a 400 (Chat Completions takes documents inline only)."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise _bad("a document block needs a 'source'")
    kind = source.get("type")
    if kind == "base64":
        title = block.get("title")
        media_type = str(source.get("media_type") or "application/pdf")
        return file_part(media_type, str(source.get("data", "")), title if isinstance(title, str) else None)
    if kind == "text":
        return {"type": "text", "text": str(source.get("data", ""))}
    raise _bad(f"document source type {kind!r} is not supported for this model: send the document as base64")


def _result_images(block: dict[str, Any]) -> list[dict[str, Any]]:
    """A `tool_result`'s images as image_url parts, behind a text part naming the call (module docstring)."""
    content = block.get("content")
    if not isinstance(content, list):
        return []
    images = [_image_part(b) for b in content if isinstance(b, dict) and b.get("type") == "image"]
    if not images:
        return []
    label = f"The result of tool call {block.get('tool_use_id', '')} includes these images:"
    return [{"type": "text", "text": label}, *images]


def _tool_message(block: dict[str, Any], has_images: bool) -> dict[str, Any]:
    """A `tool_result` block as a tool message; an error result says so in its text (Chat has no flag for it)."""
    result = _text(block.get("content"))
    if has_images and not result:
        result = "The result is the images in the next message."
    if block.get("is_error"):
        result = f"Error: {result}"
    return {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": result}


def _user_turn(content: Any) -> list[dict[str, Any]]:
    """One user turn: its tool results as tool messages first (they answer the previous assistant turn)."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise _bad("'content' must be a string or an array of blocks")
    tools: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []  # of the tool results: in the user message after the tool messages
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block))
        elif kind == "document":
            parts.append(_document_parts(block))
        elif kind == "tool_result":
            result_images = _result_images(block)
            tools.append(_tool_message(block, bool(result_images)))
            images += result_images
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise _bad(f"content block type {kind!r} is not supported for this model")
    if images or parts:
        tools.append({"role": "user", "content": images + parts})
    return tools


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """A `tool_use` block as a tool call, its input as the JSON string Chat Completions carries."""
    arguments = orjson.dumps(block.get("input") or {}).decode()
    function = {"name": str(block.get("name", "")), "arguments": arguments}
    return {"id": str(block.get("id", "")), "type": "function", "function": function}


def _assistant_turn(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise _bad("'content' must be a string or an array of blocks")
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(_tool_call(block))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise _bad(f"content block type {kind!r} is not supported in an assistant turn")
    turn: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        turn["tool_calls"] = calls
    return turn


def _tool_choice(choice: dict[str, Any], out: dict[str, Any]) -> None:
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": str(choice.get("name", ""))}}
    if choice.get("disable_parallel_tool_use") and "tools" in out:
        out["parallel_tool_calls"] = False


def _chat_messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The system prompt and the turns as chat messages (a user turn may become several: tool results first)."""
    chat: list[dict[str, Any]] = []
    system = _text(data.get("system"))
    if system:
        chat.append({"role": "system", "content": system})
    for message in data.get("messages") or ():
        if not isinstance(message, dict):
            raise _bad("each message must be an object")
        role = message.get("role")
        if role == "user":
            chat.extend(_user_turn(message.get("content")))
        elif role == "assistant":
            chat.append(_assistant_turn(message.get("content")))
        else:
            raise _bad(f"unsupported message role {role!r}")
    return chat


def _sampling(data: dict[str, Any], out: dict[str, Any]) -> None:
    if isinstance(data.get("max_tokens"), int):
        out["max_tokens"] = data["max_tokens"]
    for key in ("temperature", "top_p"):
        if data.get(key) is not None:
            out[key] = data[key]
    if data.get("stop_sequences"):
        out["stop"] = list(data["stop_sequences"])


def _tools(data: dict[str, Any], out: dict[str, Any]) -> None:
    tools = data.get("tools")
    if isinstance(tools, list) and tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": str(t.get("name", "")),
                    "description": str(t.get("description", "")),
                    "parameters": t.get("input_schema") or {"type": "object", "properties": {}},
                },
            }
            for t in tools
            if isinstance(t, dict)
        ]
    if isinstance(data.get("tool_choice"), dict):
        _tool_choice(data["tool_choice"], out)


def _output_format(data: dict[str, Any], out: dict[str, Any]) -> None:
    """Structured output (`output_config.format`, or the beta's top-level `output_format`) as a `json_schema`
    response format: dropped, the model would answer prose that `client.messages.parse(...)` fails to parse."""
    config = data.get("output_config")
    wanted = config.get("format") if isinstance(config, dict) else None
    wanted = wanted if wanted is not None else data.get("output_format")
    if not isinstance(wanted, dict) or wanted.get("type") != "json_schema":
        return
    schema = wanted.get("schema")
    if isinstance(schema, dict):
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def messages_to_chat(data: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """An Anthropic Messages request body as a Chat Completions request body."""
    out: dict[str, Any] = {"model": model, "messages": _chat_messages(data)}
    _sampling(data, out)
    _tools(data, out)
    _output_format(data, out)
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def estimate_message_tokens(data: dict[str, Any]) -> int:
    """Input tokens of a Messages request, estimated (4 characters per token over system, messages and tools)."""
    return estimate_tokens([data.get("system") or "", data.get("messages") or [], data.get("tools") or []])
