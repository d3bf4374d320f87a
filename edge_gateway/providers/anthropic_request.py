"""An OpenAI chat (or completions) request as an Anthropic Messages request.

System and developer messages become `system`; `file` parts (a PDF inline) become `document` blocks; `tool` messages become `tool_result` blocks in a user turn;
assistant `tool_calls` become `tool_use` blocks; `tools`/`tool_choice`, `stop`, `temperature` (above Anthropic's 1: a 400,
`vendor_ranges`), `top_p`, `max_tokens` map one to one; a `user` over 256 characters goes as its hash (`max_tokens` is required by Anthropic, so it defaults to `DEFAULT_MAX_TOKENS`);
`parallel_tool_calls: false` becomes `tool_choice.disable_parallel_tool_use`; a `json_schema` `response_format`
becomes Anthropic's structured output (`output_config.format`), so `client.chat.completions.parse(...)` gets JSON
(Anthropic has no schema-less JSON mode: `json_object` is left to the prompt); consecutive turns of the same role are merged, as Anthropic requires. Apart from the reply's translation
(`anthropic_reply.py`) because the two directions share nothing but the vendor.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson

from ..errors import GatewayError
from .documents import inline_document
from .field_errors import openai_unsupported_value
from .vendor_ranges import ANTHROPIC_USER_ID_MAX, VENDOR_RANGES, temperature_beyond

__all__ = ["DEFAULT_MAX_TOKENS", "to_anthropic_request"]

DEFAULT_MAX_TOKENS = 4096
_ANTHROPIC = VENDOR_RANGES["anthropic"]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    """An `image_url` part: a base64 data: URL as a base64 source, anything else as a URL source."""
    url = (part.get("image_url") or {}).get("url", "")
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            blocks.append(_image_block(part))
        elif kind == "file":
            media_type, data, _ = inline_document(part, "Anthropic")
            blocks.append({"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}})
        else:
            raise GatewayError.bad_request(
                f"content part type {kind!r} is not supported for Anthropic models", param="messages"
            )
    return blocks


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise GatewayError.bad_request("tool call arguments must be a JSON object", param="messages") from None
    return raw or {}


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """An assistant message's text and its tool calls as `tool_use` blocks (an id made up where none came)."""
    blocks = _content_blocks(message.get("content"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:20]}",
                "name": function.get("name", ""),
                "input": _arguments(function.get("arguments")),
            }
        )
    return blocks


def _turn_of(message: Any) -> tuple[str, list[dict[str, Any]]]:
    """The role and blocks one OpenAI message becomes (`system` for the system prompt); 400 for anything else."""
    if not isinstance(message, dict):
        raise GatewayError.bad_request("each message must be an object", param="messages")
    role = message.get("role")
    content = message.get("content")
    if role in ("system", "developer"):
        return "system", [{"type": "text", "text": _text_of(content)}]
    if role == "user":
        return "user", _content_blocks(content)
    if role == "assistant":
        return "assistant", _assistant_blocks(message)
    if role == "tool":
        result = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""), "content": _text_of(content)}
        return "user", [result]
    raise GatewayError.bad_request(f"unsupported message role {role!r}", param="messages")


def _conversation(messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """The system texts, and the turns with consecutive ones of the same role merged (Anthropic requires it)."""
    if not isinstance(messages, list) or not messages:
        raise GatewayError.bad_request("'messages' must be a non-empty list", param="messages")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role, blocks = _turn_of(message)
        if role == "system":
            system.append(blocks[0]["text"])
        elif not blocks:
            continue
        elif turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _sampling(data: dict[str, Any], out: dict[str, Any]) -> None:
    """The sampling fields; a `temperature` above Anthropic's 1 (OpenAI's API takes up to 2) is the client's 400
    naming it, not Anthropic's refusal of a field of its own API, nor a value quietly clamped."""
    temperature = data.get("temperature")
    if temperature is not None:
        if isinstance(temperature, (int, float)) and temperature > _ANTHROPIC.max_temperature:
            raise openai_unsupported_value("temperature", temperature_beyond(_ANTHROPIC, temperature))
        out["temperature"] = temperature
    for key in ("top_p", "top_k"):
        if data.get(key) is not None:
            out[key] = data[key]
    stop = data.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)


def _tools(data: dict[str, Any], out: dict[str, Any]) -> None:
    """`tools` (functions only) and `tool_choice`; `none` drops the tools, as Anthropic has no such choice."""
    tools = data.get("tools")
    if tools:
        out["tools"] = [
            {
                "name": (t.get("function") or {}).get("name", ""),
                "description": (t.get("function") or {}).get("description", ""),
                "input_schema": (t.get("function") or {}).get("parameters") or {"type": "object", "properties": {}},
            }
            for t in tools
            if t.get("type", "function") == "function"
        ]
    _tool_choice(data.get("tool_choice"), out)
    if data.get("parallel_tool_calls") is False and "tools" in out:
        out["tool_choice"] = {**out.get("tool_choice", {"type": "auto"}), "disable_parallel_tool_use": True}


def _output_format(data: dict[str, Any], out: dict[str, Any]) -> None:
    """A `json_schema` response format as `output_config.format`: dropped, the model would answer prose that the
    client's parser (the SDK's `.parse()`, a pydantic model) then fails on."""
    response_format = data.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return
    schema = (response_format.get("json_schema") or {}).get("schema")
    if isinstance(schema, dict):
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if choice == "required":
        out["tool_choice"] = {"type": "any"}
    elif choice == "auto":
        out["tool_choice"] = {"type": "auto"}
    elif choice == "none":
        out.pop("tools", None)
    elif isinstance(choice, dict) and choice.get("type") == "function":
        out["tool_choice"] = {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}


def to_anthropic_request(data: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """An OpenAI chat request body as an Anthropic Messages request body for `model`.

    Anthropic answers one message per call: `n` other than 1 is refused (400 on `n`) rather than silently
    answered with one choice the client did not ask for."""
    n = data.get("n")
    if n is not None and n != 1:
        raise GatewayError.bad_request(
            "Anthropic models return one choice per request: 'n' must be 1", param="n", code="unsupported_parameter"
        )
    system, turns = _conversation(data.get("messages"))
    out: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": data.get("max_completion_tokens") or data.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    _sampling(data, out)
    if stream:
        out["stream"] = True
    _tools(data, out)
    _output_format(data, out)
    user = data.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user if len(user) <= ANTHROPIC_USER_ID_MAX else _hashed_user(user)}
    return out


def _hashed_user(user: str) -> str:
    """An OpenAI `user` longer than Anthropic's `user_id` takes (256): its SHA-256, in hex. Both are opaque ids
    for the vendor's abuse tracking, so the same user stays one id there (Anthropic asks for a hash or uuid);
    refusing would fail a request valid in the client's API for a field the model never reads."""
    return hashlib.sha256(user.encode()).hexdigest()
