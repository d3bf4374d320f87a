"""Anthropic Messages in front of an OpenAI-compatible vendor: the request translated to Chat Completions.

Why: `POST /v1/messages` is a kind of request of its own ("messages"); to an Anthropic LLM it goes as is, to an
OpenAI-compatible one (the mock included) the provider sends Chat Completions and hands the client Messages back
(`messages_reply.py` translates the reply and the stream). What maps to what:

    system (string or text blocks)          -> a system message
    text / image (base64, url) blocks       -> text / image_url parts (base64 as a data: URL)
    document blocks (base64 PDF, text)      -> file parts (a data: URL) / text parts
    assistant tool_use blocks               -> tool_calls (arguments as a JSON string)
    user tool_result blocks                 -> tool messages (before the rest of that user turn); their images
                                               and base64 documents -> image_url / file parts of the user
                                               message that follows them; their text documents -> their text
    tools / tool_choice (auto, any, tool, none), disable_parallel_tool_use -> tools / tool_choice,
                                               parallel_tool_calls
    max_tokens, temperature, top_p, stop_sequences, metadata.user_id -> max_tokens, ..., stop, user
    output_config.format (json_schema)      -> response_format json_schema (what `client.messages.parse` sends)

`thinking` blocks and `top_k` have no Chat Completions counterpart and are dropped.

Every field read, translated or dropped here is first held to the type and shape Anthropic's API documents, in
the same walk (`messages_fields.py`): a misfit is the client's 400 naming its path (`messages.0.content.1.text:
Field required`), as Anthropic answers, never a field silently dropped or mangled.

Images in a `tool_result` (a screenshot tool, a chart): a Chat Completions `tool` message holds text only, so
the tool message keeps the result's text and the images follow in the user message after the turn's tool
messages, each result's images behind a text part naming its `tool_use_id` ("the result of tool call X
includes these images:"), before the turn's own blocks; a result of images only says so in its tool message.
That is the order OpenAI accepts (the tool messages right after the calls, then a user message) and the usual
way gateways carry such results. A Gemini LLM gets the same through `gemini_format.chat_to_gemini`, which merges
consecutive user messages into one turn: the `functionResponse` parts and, beside them, the images as
`inlineData` (or `fileData`) parts, which every Gemini model reads (multimodal `functionResponse.parts` exist
for Gemini 3 only). A document in a `tool_result` (a PDF a tool fetched) takes the same way as a `file` part
(a Gemini LLM gets it as `inlineData` of its media type); a plain-text document is text, so it stays in the tool
message with the result's text.
"""

from __future__ import annotations

from typing import Any

import orjson

from .base import estimate_tokens
from .documents import file_part
from .messages_fields import (
    FIELD_REQUIRED,
    IMAGE_MEDIA_TYPES,
    Misfit,
    base64_data,
    check_cache_control,
    check_request_fields,
    one_of,
    optional_string,
    required_dict,
    required_string,
    string_misfit,
)
from .vendor_ranges import VendorRange, stops_beyond

__all__ = ["check_count_tokens", "estimate_message_tokens", "messages_to_chat"]

_ROLES = ("user", "assistant")
_TOOL_CHOICES = ("auto", "any", "tool", "none")
_RESULT_BLOCKS = frozenset({"text", "image", "search_result", "document", "tool_reference"})
"""What a `tool_result`'s content may hold (Anthropic's list); its text, images and documents reach a Chat vendor."""
_NOT_BLOCKS = "Input should be a valid string or a list of content blocks"
_DEFAULT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def _not_dict(value: object) -> Misfit:
    return Misfit("", FIELD_REQUIRED if value is None else "Input should be a valid dictionary")


def _block_kind(block: object) -> str:
    """A content block's `type`, the block checked to be an object (and its `cache_control`, dropped here)."""
    if not isinstance(block, dict):
        raise _not_dict(block)
    kind = block.get("type")
    if not isinstance(kind, str):
        raise Misfit("type", FIELD_REQUIRED if kind is None else "Input should be a valid string")
    if "cache_control" in block:
        check_cache_control(block)
    return kind


def _media_type(source: dict[str, Any], allowed: tuple[str, ...]) -> str:
    media_type = source.get("media_type")
    if media_type in allowed:
        return str(media_type)
    raise Misfit("media_type", FIELD_REQUIRED if media_type is None else one_of(allowed))


def _source_kind(block: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _not_dict(source).under("source")
    kind = source.get("type")
    if kind is None:
        raise Misfit("type", FIELD_REQUIRED).under("source")
    return source, kind


def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    source, kind = _source_kind(block)
    try:
        if kind == "base64":
            url = f"data:{_media_type(source, IMAGE_MEDIA_TYPES)};base64,{base64_data(source)}"
        elif kind == "url":
            url = required_string(source, "url")
        else:
            raise Misfit("type", f"image source type {kind!r} is not supported for this model")
    except Misfit as misfit:
        raise misfit.under("source") from None
    return {"type": "image_url", "image_url": {"url": url}}


def _document_parts(block: dict[str, Any]) -> dict[str, Any]:
    """A `document` block: a base64 PDF as a `file` part, a plain-text document as a text part; a URL or a Files
    API id is a 400 (Chat Completions takes documents inline only)."""
    title = optional_string(block, "title")
    optional_string(block, "context")
    source, kind = _source_kind(block)
    try:
        if kind == "base64":
            return file_part(_media_type(source, ("application/pdf",)), base64_data(source), title)
        if kind == "text":
            _media_type(source, ("text/plain",))
            return {"type": "text", "text": required_string(source, "data")}
        message = f"document source type {kind!r} is not supported for this model: send the document as base64"
        raise Misfit("type", message)
    except Misfit as misfit:
        raise misfit.under("source") from None


def _tool_message(block: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A `tool_result` block as a tool message (an error result says so in its text: Chat has no flag for it)
    and its images and PDFs as image_url / file parts behind a text part naming the call (module docstring); its
    plain-text documents are part of its text."""
    call_id = required_string(block, "tool_use_id")
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise Misfit("is_error", "Input should be a valid boolean")
    content = block.get("content")
    texts: list[str] = []
    attached: list[dict[str, Any]] = []  # images and documents: in the user message after the tool messages
    documents = 0
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for index, item in enumerate(content):
            try:
                kind = _block_kind(item)
                if kind == "text":
                    text = item.get("text")
                    if text.__class__ is not str:
                        raise string_misfit("text", text)
                    texts.append(text)
                elif kind == "image":
                    attached.append(_image_part(item))
                elif kind == "document":
                    part = _document_parts(item)
                    if part["type"] == "text":  # a plain-text document: text, like the result's own
                        texts.append(part["text"])
                    else:
                        attached.append(part)
                        documents += 1
                elif kind not in _RESULT_BLOCKS:
                    raise Misfit("type", one_of(tuple(sorted(_RESULT_BLOCKS))))
            except Misfit as misfit:
                raise misfit.under("content", index) from None
    elif content is not None:
        raise Misfit("content", _NOT_BLOCKS)
    result = "".join(texts)
    if attached:
        noun = "images" if not documents else "documents" if documents == len(attached) else "attachments"
        attached.insert(0, {"type": "text", "text": f"The result of tool call {call_id} includes these {noun}:"})
        result = result or f"The result is the {noun} in the next message."
    if is_error:
        result = f"Error: {result}"
    return {"role": "tool", "tool_call_id": call_id, "content": result}, attached


def _check_thinking_block(kind: str, block: dict[str, Any]) -> None:
    """A `thinking` / `redacted_thinking` block (dropped: no Chat counterpart) of the shape Anthropic takes."""
    if kind == "thinking":
        required_string(block, "thinking")
        required_string(block, "signature")
    else:
        required_string(block, "data")


def _user_turn(content: Any) -> list[dict[str, Any]]:
    """One user turn: its tool results as tool messages first (they answer the previous assistant turn)."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise Misfit("content", FIELD_REQUIRED if content is None else _NOT_BLOCKS)
    tools: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []  # of the tool results (documents too): in the user message after them
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        try:
            kind = _block_kind(block)
            if kind == "text":
                text = block.get("text")
                if text.__class__ is not str:
                    raise string_misfit("text", text)
                parts.append({"type": "text", "text": text})
            elif kind == "image":
                parts.append(_image_part(block))
            elif kind == "document":
                parts.append(_document_parts(block))
            elif kind == "tool_result":
                message, result_images = _tool_message(block)
                tools.append(message)
                images += result_images
            elif kind in ("thinking", "redacted_thinking"):
                _check_thinking_block(kind, block)
            else:
                raise Misfit("type", f"content block type {kind!r} is not supported for this model")
        except Misfit as misfit:
            raise misfit.under("content", index) from None
    if images or parts:
        tools.append({"role": "user", "content": images + parts})
    return tools


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """A `tool_use` block as a tool call, its input as the JSON string Chat Completions carries."""
    call_id = required_string(block, "id")
    name = required_string(block, "name")
    arguments = orjson.dumps(required_dict(block, "input")).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _assistant_turn(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise Misfit("content", FIELD_REQUIRED if content is None else _NOT_BLOCKS)
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        try:
            kind = _block_kind(block)
            if kind == "text":
                words = block.get("text")
                if words.__class__ is not str:
                    raise string_misfit("text", words)
                text.append(words)
            elif kind == "tool_use":
                calls.append(_tool_call(block))
            elif kind in ("thinking", "redacted_thinking"):
                _check_thinking_block(kind, block)
            else:
                raise Misfit("type", f"content block type {kind!r} is not supported in an assistant turn")
        except Misfit as misfit:
            raise misfit.under("content", index) from None
    turn: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        turn["tool_calls"] = calls
    return turn


def _system(system: Any) -> str:
    """The system prompt: a string or text blocks (their texts joined)."""
    if system is None or isinstance(system, str):
        return system or ""
    if not isinstance(system, list):
        raise Misfit("system", "Input should be a valid string or a list of text blocks")
    texts: list[str] = []
    for index, block in enumerate(system):
        try:
            if _block_kind(block) != "text":
                raise Misfit("type", one_of(("text",)))
            texts.append(required_string(block, "text"))
        except Misfit as misfit:
            raise misfit.under("system", index) from None
    return "".join(texts)


def _chat_messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The system prompt and the turns as chat messages (a user turn may become several: tool results first)."""
    chat: list[dict[str, Any]] = []
    system = _system(data.get("system"))
    if system:
        chat.append({"role": "system", "content": system})
    messages = data.get("messages")
    if not isinstance(messages, list):  # intake refuses it; a plugin may have rewritten the body since
        raise Misfit("messages", FIELD_REQUIRED if messages is None else "Input should be a valid list")
    for index, message in enumerate(messages):
        try:
            if not isinstance(message, dict):
                raise _not_dict(message)
            role = message.get("role")
            if role == "user":
                chat.extend(_user_turn(message.get("content")))
            elif role == "assistant":
                chat.append(_assistant_turn(message.get("content")))
            else:
                raise Misfit("role", FIELD_REQUIRED if role is None else one_of(_ROLES))
        except Misfit as misfit:
            raise misfit.under("messages", index) from None
    return chat


def _sampling(data: dict[str, Any], out: dict[str, Any], target: VendorRange | None) -> None:
    """Sampling fields, their types checked by `check_request_fields` before. More `stop_sequences` than the
    target vendor takes (Anthropic's API sets no bound; OpenAI takes 4, Google 5) is the client's 400 naming
    the field, in Anthropic's words, rather than the vendor's refusal of its own `stop`."""
    if isinstance(data.get("max_tokens"), int):
        out["max_tokens"] = data["max_tokens"]
    for key in ("temperature", "top_p"):
        if data.get(key) is not None:
            out[key] = data[key]
    stops = data.get("stop_sequences")
    if stops:
        if target is not None and len(stops) > target.max_stops:
            raise Misfit("stop_sequences", stops_beyond(target, len(stops)))
        out["stop"] = list(stops)


def _function(tool: object) -> dict[str, Any]:
    """A tool as a chat function: a custom tool's name, description and `input_schema`; a server tool (a `type`
    such as `web_search_20250305`) by its name, taking no arguments (the vendor has no such tool)."""
    if not isinstance(tool, dict):
        raise _not_dict(tool)
    name = required_string(tool, "name")
    kind = tool.get("type")
    if kind is None or kind == "custom":
        schema = required_dict(tool, "input_schema")
        if schema.get("type") != "object":
            raise Misfit("type", one_of(("object",))).under("input_schema")
    elif isinstance(kind, str):
        schema = tool.get("input_schema") or _DEFAULT_SCHEMA
    else:
        raise Misfit("type", "Input should be a valid string")
    description = optional_string(tool, "description") or ""
    if "cache_control" in tool:
        check_cache_control(tool)
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


def _tools(data: dict[str, Any], out: dict[str, Any]) -> None:
    tools = data.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise Misfit("tools", "Input should be a valid list")
    if tools:
        functions: list[dict[str, Any]] = []
        for index, tool in enumerate(tools):
            try:
                functions.append(_function(tool))
            except Misfit as misfit:
                raise misfit.under("tools", index) from None
        out["tools"] = functions
    choice = data.get("tool_choice")
    if choice is not None:
        try:
            _tool_choice(choice, out)
        except Misfit as misfit:
            raise misfit.under("tool_choice") from None


def _tool_choice(choice: object, out: dict[str, Any]) -> None:
    if not isinstance(choice, dict):
        raise _not_dict(choice)
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": required_string(choice, "name")}}
    else:
        raise Misfit("type", FIELD_REQUIRED if kind is None else one_of(_TOOL_CHOICES))
    parallel = choice.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise Misfit("disable_parallel_tool_use", "Input should be a valid boolean")
    if parallel and "tools" in out:
        out["parallel_tool_calls"] = False


def _output_format(data: dict[str, Any], out: dict[str, Any]) -> None:
    """Structured output (`output_config.format`, or the beta's top-level `output_format`) as a `json_schema`
    response format: dropped, the model would answer prose that `client.messages.parse(...)` fails to parse."""
    config = data.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise Misfit("output_config", "Input should be a valid dictionary")
    wanted = config.get("format") if config else None
    where: tuple[str, ...] = ("output_config", "format")
    if config:
        try:
            optional_string(config, "effort")  # dropped: Chat Completions has no such knob for every model
        except Misfit as misfit:
            raise misfit.under("output_config") from None
    if wanted is None:
        wanted = data.get("output_format")
        where = ("output_format",)
    if wanted is None:
        return
    try:
        if not isinstance(wanted, dict):
            raise _not_dict(wanted)
        if wanted.get("type") != "json_schema":
            raise Misfit("type", one_of(("json_schema",)))
        schema = required_dict(wanted, "schema")
    except Misfit as misfit:
        raise misfit.under(*where) from None
    out["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def messages_to_chat(
    data: dict[str, Any], model: str, stream: bool, target: VendorRange | None = None
) -> dict[str, Any]:
    """An Anthropic Messages request body as a Chat Completions request body; 400 naming the field (Anthropic's
    words) when one is not of the type or shape Anthropic's API takes, or beyond what `target`, the vendor the
    chat body is for (`vendor_ranges`), takes."""
    try:
        check_request_fields(data)
        out: dict[str, Any] = {"model": model, "messages": _chat_messages(data)}
        _sampling(data, out, target)
        _tools(data, out)
        _output_format(data, out)
    except Misfit as misfit:
        raise misfit.error() from None
    metadata = data.get("metadata")
    if metadata and metadata.get("user_id") is not None:
        out["user"] = metadata["user_id"]
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def check_count_tokens(data: dict[str, Any]) -> None:
    """A count_tokens body the edge estimates itself (no vendor call) is checked as a Messages request would be:
    the same walk, its translation dropped; raises the client's 400 (`GatewayError`)."""
    messages_to_chat(data, "", False)


def estimate_message_tokens(data: dict[str, Any]) -> int:
    """Input tokens of a Messages request, estimated (4 characters per token over system, messages and tools)."""
    return estimate_tokens([data.get("system") or "", data.get("messages") or [], data.get("tools") or []])
