"""OpenAI Chat Completions <-> AWS Bedrock Converse, request and full response (streams: `bedrock_stream.py`).

Request: `system`/`developer` messages become `system` blocks; user content becomes `text`, `image` and
`document` blocks (images must be data URLs, files inline: Converse takes bytes, not links); assistant `tool_calls` become `toolUse` blocks and
`tool` messages `toolResult` blocks in a user turn; consecutive turns of one role are merged (Converse requires
alternation); `max_tokens`/`temperature`/`top_p`/`stop` go to `inferenceConfig` (a `temperature` above
Converse's 1, OpenAI's API takes up to 2, is the client's 400: `vendor_ranges`); `tools`/`tool_choice` to
`toolConfig` (`required` -> `any`, a named function -> `tool`, `none` drops the tools).
Response: `text` blocks become `content`, `toolUse` blocks `tool_calls`, `stopReason` maps to `finish_reason`
(`guardrail_intervened`/`content_filtered` -> `content_filter`), and usage is OpenAI's meaning (prompt tokens
include cache reads and writes).

Stop sequences: `stopReason: stop_sequence` says a sequence stopped the model, not which. Claude on Bedrock names
it in `additionalModelResponseFields` when the request asks for it (`additionalModelResponseFieldPaths`, sent for
an Anthropic model asked to stop on sequences): `stop_sequence` in a full answer, `delta.stop_sequence` in the
stream's `messageStop` (`STOP_SEQUENCE_PATHS`); other models have no such field. With one sequence asked it can
only be that one. With several, a model that cuts it (Llama, Mistral) does not say which: which one is unknown.
Amazon Nova keeps the sequence at the end of its text (as users of Bedrock report: LiteLLM issue 9483,
langchain-aws issue 420), where neither OpenAI's API nor Anthropic's ever has it: the edge cuts it off
(`cut_stop`: the longest asked sequence the text ends with; in a stream the text's last characters wait for the
end, `bedrock_stream`), which also names it; a Nova text that ends with an asked sequence stopped there even if
its `stopReason` says `end_turn`. The
sequence goes on the chat choice as `stop_reason` (vLLM's field, which `messages_reply.stop_of` reads), so an
Anthropic client gets Anthropic's `stop_reason: "stop_sequence"` and the sequence; an OpenAI client's
`finish_reason` stays `stop`, as OpenAI's. For a Messages client the chat choice (never sent as such) keeps
`finish_reason: "stop_sequence"` (`finish_reason`), so its answer is `stop_reason: "stop_sequence"` even when
the sequence is unknown (`stop_sequence: null` then), not a natural `end_turn`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from ..errors import GatewayError
from .base import Usage, token_count
from .documents import inline_document
from .field_errors import openai_unsupported_value
from .vendor_ranges import VENDOR_RANGES, stops_beyond, temperature_beyond

__all__ = [
    "STOP_SEQUENCE_PATHS",
    "cut_stop",
    "finish_reason",
    "keeps_stop",
    "matched_stop",
    "stop_list",
    "stop_tail_size",
    "to_converse",
    "to_openai",
    "usage_from_converse",
]

STOP_SEQUENCE_PATHS = ("/stop_sequence", "/delta/stop_sequence")
"""Where Claude on Bedrock names the sequence it stopped on (JSON Pointers into Claude's own answer): in a
`converse` reply its message's `stop_sequence` (the path AWS's Converse guide shows), in a `converse-stream` its
last event's, `message_delta`'s `delta.stop_sequence` (not documented by AWS; vercel/ai found it so, PR 11410).
Both are asked; a path not found is left out of the answer, not refused."""

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_BEDROCK = VENDOR_RANGES["bedrock"]
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


def _bad(message: str, param: str = "messages") -> GatewayError:
    return GatewayError.bad_request(message, param=param)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _image(part: dict[str, Any]) -> dict[str, Any]:
    url = str((part.get("image_url") or {}).get("url", ""))
    media, sep, data = url[5:].partition(";base64,") if url.startswith("data:") else ("", "", "")
    if not sep or media not in _IMAGE_FORMATS:
        raise _bad("images for Bedrock models must be base64 data URLs (png, jpeg, gif or webp)")
    return {"image": {"format": _IMAGE_FORMATS[media], "source": {"bytes": data}}}


_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "text/plain": "txt",
    "text/markdown": "md",
    "text/html": "html",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}


def _document(part: dict[str, Any], position: int) -> dict[str, Any]:
    """A chat `file` part as a Converse `document` block; Converse requires a name of letters, digits, single
    spaces, hyphens, parentheses and brackets, so the file name's stem is cleaned to that (numbered: unique)."""
    media_type, data, filename = inline_document(part, "Bedrock")
    if media_type not in _DOCUMENT_FORMATS:
        raise _bad(f"files of type {media_type!r} cannot be sent to Bedrock models")
    stem = (filename or "").rsplit(".", 1)[0]
    cleaned = " ".join("".join(c if c.isalnum() or c in "-()[]" else " " for c in stem).split())
    name = f"{cleaned or 'document'} {position}"
    return {"document": {"format": _DOCUMENT_FORMATS[media_type], "name": name, "source": {"bytes": data}}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise _bad("message content must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(_image(part))
        elif kind == "file":
            blocks.append(_document(part, len(blocks) + 1))
        else:
            raise _bad(f"content part type {kind!r} is not supported for Bedrock models")
    return blocks


def _tool_use(call: Any) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("function") or {}, dict):
        raise _bad("each tool call must be an object with a function")
    function = call.get("function") or {}
    raw = function.get("arguments")
    try:
        arguments = orjson.loads(raw) if isinstance(raw, str) and raw.strip() else (raw or {})
    except orjson.JSONDecodeError:
        raise _bad("tool call arguments must be a JSON object") from None
    use_id = call.get("id") or f"tooluse_{uuid.uuid4().hex[:22]}"
    return {"toolUse": {"toolUseId": use_id, "name": function.get("name", ""), "input": arguments}}


def _turns(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    system: list[dict[str, str]] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for message in messages:
        if not isinstance(message, dict):
            raise _bad("each message must be an object")
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            if text := _text(content):
                system.append({"text": text})
        elif role == "user":
            add("user", _blocks(content))
        elif role == "assistant":
            add("assistant", _blocks(content) + [_tool_use(c) for c in message.get("tool_calls") or ()])
        elif role == "tool":
            result = {"toolUseId": str(message.get("tool_call_id", "")), "content": [{"text": _text(content) or " "}]}
            add("user", [{"toolResult": result}])
        else:
            raise _bad(f"unsupported message role {role!r}")
    return turns, system


def _tool_config(data: dict[str, Any]) -> dict[str, Any] | None:
    tools = data.get("tools")
    choice = data.get("tool_choice")
    if not tools or choice == "none":
        return None
    specs = []
    for tool in tools:
        function = (tool.get("function") or {}) if isinstance(tool, dict) else {}
        if not function.get("name"):
            raise _bad("each tool needs a function name", "tools")
        spec: dict[str, Any] = {
            "name": function["name"],
            "inputSchema": {"json": function.get("parameters") or {"type": "object", "properties": {}}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        config["toolChoice"] = {"tool": {"name": (choice.get("function") or {}).get("name", "")}}
    return config


def to_converse(data: dict[str, Any], model: str = "") -> dict[str, Any]:
    """The Converse request body of an OpenAI chat request (the model goes in the URL, not the body; an Anthropic
    `model` is asked to name the stop sequence it stopped on, see the module docstring)."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list")
    n = data.get("n")
    if n not in (None, 1):
        raise _bad("Bedrock models return one choice: 'n' must be 1", "n")
    turns, system = _turns(messages)
    if not turns or turns[0]["role"] != "user":
        raise _bad("a Bedrock conversation must start with a user message")
    out: dict[str, Any] = {"messages": turns}
    if system:
        out["system"] = system
    inference: dict[str, Any] = {}
    max_tokens = data.get("max_completion_tokens") or data.get("max_tokens")
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP")):
        if data.get(ours) is not None:
            inference[theirs] = data[ours]
    temperature = data.get("temperature")
    if isinstance(temperature, (int, float)) and temperature > _BEDROCK.max_temperature:
        raise openai_unsupported_value("temperature", temperature_beyond(_BEDROCK, temperature))
    stop = data.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        if len(inference["stopSequences"]) > _BEDROCK.max_stops:
            raise openai_unsupported_value("stop", stops_beyond(_BEDROCK, len(inference["stopSequences"])))
        if "anthropic." in model:  # ids, inference profiles (`us.anthropic.`) and their ARNs
            out["additionalModelResponseFieldPaths"] = list(STOP_SEQUENCE_PATHS)
    if inference:
        out["inferenceConfig"] = inference
    if (tools := _tool_config(data)) is not None:
        out["toolConfig"] = tools
    return out


def usage_from_converse(raw: Any, usage: Usage) -> None:
    if not isinstance(raw, dict):
        return
    cache_read = token_count(raw.get("cacheReadInputTokens"))
    cache_write = token_count(raw.get("cacheWriteInputTokens"))
    usage.prompt_tokens = token_count(raw.get("inputTokens")) + cache_read + cache_write
    usage.completion_tokens = token_count(raw.get("outputTokens"))
    usage.cache_read_tokens = cache_read
    usage.cache_write_tokens = cache_write
    usage.reported = True


def finish_reason(reason: Any, for_messages: bool) -> str:
    """Chat's finish_reason of a Converse `stopReason`; "stop_sequence" kept for a Messages client's translation
    (module docstring), "stop" for an OpenAI client, as OpenAI answers."""
    if for_messages and reason == "stop_sequence":
        return "stop_sequence"
    return FINISH.get(str(reason or "end_turn"), "stop")


def stop_tail_size(asked: Any) -> int:
    """How much of the answer's end `matched_stop` needs to see: the longest sequence when several are asked (with
    one, or none, the text is not needed)."""
    if not isinstance(asked, list) or len(asked) < 2:
        return 0
    return max((len(s) for s in asked if isinstance(s, str)), default=0)


def matched_stop(reason: Any, fields: Any, asked: Any, text: str = "") -> str | None:
    """The stop sequence a `stopReason: stop_sequence` answer stopped on: named by the model in `fields`
    (`additionalModelResponseFields`), else the only one `asked` (the chat request's `stop`), else the longest
    asked one the answer's `text` ends with (module docstring); None when unknown."""
    if reason != "stop_sequence":
        return None
    named = None
    if isinstance(fields, dict):
        delta = fields.get("delta")
        named = fields.get("stop_sequence") or (delta.get("stop_sequence") if isinstance(delta, dict) else None)
    if isinstance(named, str) and named:
        return named
    if isinstance(asked, str):
        return asked
    if not isinstance(asked, list):
        return None
    if len(asked) == 1:
        return asked[0] if isinstance(asked[0], str) else None
    ends = [s for s in asked if isinstance(s, str) and s and text.endswith(s)]
    return max(ends, key=len) if ends else None


def keeps_stop(model: str) -> bool:
    """Whether the model ends its text with the stop sequence it stopped on (Amazon Nova: ids, inference profiles
    `us.amazon.nova-...` and their ARNs)."""
    return "amazon.nova" in model


def stop_list(asked: Any) -> list[str]:
    """The request's stop sequences (`stop` a string or list; `stop_sequences` a list) as a list of strings."""
    if isinstance(asked, str):
        return [asked] if asked else []
    return [s for s in asked if isinstance(s, str) and s] if isinstance(asked, list) else []


def cut_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """`text` without the longest of `stops` it ends with, and that sequence (None and `text` as is: none)."""
    ends = [s for s in stops if text.endswith(s)]
    if not ends:
        return text, None
    sequence = max(ends, key=len)
    return text[: len(text) - len(sequence)], sequence


def to_openai(
    response: dict[str, Any], model: str, usage: Usage, asked: Any = None, for_messages: bool = False
) -> dict[str, Any]:
    """The `chat.completion` of a Converse response; fills `usage` (tokens, tool calls, one choice). `asked`: the
    request's stop sequences; `for_messages`: the chat is translated on for a Messages client (`finish_reason`)."""
    content = ((response.get("output") or {}).get("message") or {}).get("content") or []
    text = "".join(str(b["text"]) for b in content if isinstance(b, dict) and "text" in b)
    reason = response.get("stopReason")
    kept = None
    if keeps_stop(model) and reason in ("stop_sequence", "end_turn"):
        text, kept = cut_stop(text, stop_list(asked))
        reason = "stop_sequence" if kept is not None else reason
    calls = [
        {
            "id": b["toolUse"].get("toolUseId", ""),
            "type": "function",
            "function": {
                "name": b["toolUse"].get("name", ""),
                "arguments": orjson.dumps(b["toolUse"].get("input") or {}).decode(),
            },
        }
        for b in content
        if isinstance(b, dict) and isinstance(b.get("toolUse"), dict)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    usage_from_converse(response.get("usage"), usage)
    usage.tool_calls, usage.choices = len(calls), 1
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(reason, for_messages),
    }
    stopped_on = kept or matched_stop(reason, response.get("additionalModelResponseFields"), asked, text)
    if stopped_on is not None:
        choice["stop_reason"] = stopped_on
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        },
    }
