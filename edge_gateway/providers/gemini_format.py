"""Google Gemini (`generateContent`) <-> OpenAI Chat Completions: the request, the reply and the stream.

Pure functions (the stream translator is `gemini_stream`), independent of auth and URLs, so Vertex AI (same body, other
endpoint and credentials) can reuse them. What maps to what (OpenAI chat -> Gemini):

    system / developer messages           -> systemInstruction.parts[].text
    user text / image_url parts            -> text / inlineData (data: URLs) or fileData (other URLs) parts
    user file parts (a PDF inline)         -> inlineData parts
    assistant content / tool_calls         -> role "model": text / functionCall {name, args} parts (a call's
                                              extra_content.google.thought_signature -> thoughtSignature)
    tool messages                          -> role "user": functionResponse {name, response} parts (the name is
                                              the one of the tool call the message answers)
    tools (function), tool_choice          -> tools[].functionDeclarations, toolConfig.functionCallingConfig
                                              (auto AUTO, required ANY, none NONE, a named function ANY + allowed)
    max_tokens, temperature, top_p, stop, n, seed, penalties, response_format, reasoning_effort
                                           -> generationConfig (maxOutputTokens, ..., responseMimeType,
                                              responseJsonSchema, thinkingConfig)

Back: text parts -> `content`, `thought: true` parts -> `reasoning_content` (the field OpenAI-compatible
reasoning models use), functionCall -> `tool_calls` (its `thoughtSignature` as the call's
`extra_content.google.thought_signature`, as Google's OpenAI compatibility returns it), finishReason STOP /
MAX_TOKENS / SAFETY, RECITATION, ... -> stop (tool_calls when the turn called a tool) / length / content_filter,
usageMetadata -> usage (thoughts count as completion tokens, as Google bills them; cached content as cached
prompt tokens).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from ..errors import GatewayError
from .base import Usage, token_count
from .documents import inline_document

__all__ = [
    "FINISH_TO_OPENAI",
    "chat_to_gemini",
    "clean_schema",
    "finish_reason",
    "gemini_to_chat",
    "read_usage",
    "tool_call",
    "usage_body",
]

FINISH_TO_OPENAI = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
    "MALFORMED_FUNCTION_CALL": "stop",
    "OTHER": "stop",
}
_THINKING_BUDGET = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
_GENERATION_FIELDS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("seed", "seed"),
    ("n", "candidateCount"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)
_SCHEMA_DROPPED = frozenset({"$schema", "$id", "$comment", "additionalProperties", "strict"})


def _bad(message: str, param: str = "messages") -> GatewayError:
    return GatewayError.bad_request(message, param=param)


def clean_schema(schema: Any) -> Any:
    """A JSON schema without the keywords Gemini's `parameters` (an OpenAPI subset) refuses."""
    if isinstance(schema, dict):
        return {k: clean_schema(v) for k, v in schema.items() if k not in _SCHEMA_DROPPED}
    if isinstance(schema, list):
        return [clean_schema(v) for v in schema]
    return schema


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _image(part: dict[str, Any]) -> dict[str, Any]:
    url = str((part.get("image_url") or {}).get("url", ""))
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"inlineData": {"mimeType": media or "image/png", "data": data}}
    lowered = url.lower().split("?", 1)[0]
    mime = "image/png" if lowered.endswith(".png") else "image/webp" if lowered.endswith(".webp") else "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise _bad("'content' must be a string or an array of parts")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            parts.append(_image(part))
        elif kind == "file":
            media_type, data, _ = inline_document(part, "Gemini")
            parts.append({"inlineData": {"mimeType": media_type, "data": data}})
        else:
            raise _bad(f"content part type {kind!r} is not supported for Gemini models")
    return parts


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _bad("tool call arguments must be a JSON object") from None
    return value if isinstance(value, dict) else {"value": value}


def _function_response(message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A tool message as a functionResponse part: Gemini matches results to calls by function name."""
    call_id = str(message.get("tool_call_id", ""))
    text = _text_of(message.get("content"))
    try:
        value = orjson.loads(text) if text.strip().startswith("{") else None
    except orjson.JSONDecodeError:
        value = None
    response = value if isinstance(value, dict) else {"result": text}
    return {"functionResponse": {"name": names.get(call_id) or str(message.get("name") or ""), "response": response}}


def _contents(messages: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    names: dict[str, str] = {}

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["parts"].extend(parts)
        else:
            turns.append({"role": role, "parts": parts})

    for message in messages:
        if not isinstance(message, dict):
            raise _bad("each message must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(message.get("content")))
        elif role == "user":
            add("user", _parts(message.get("content")))
        elif role == "assistant":
            parts = _parts(message.get("content"))
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                name = str(function.get("name", ""))
                names[str(call.get("id", ""))] = name
                part: dict[str, Any] = {"functionCall": {"name": name, "args": _arguments(function.get("arguments"))}}
                if (signature := _signature(call)) is not None:
                    part["thoughtSignature"] = signature
                parts.append(part)
            add("model", parts)
        elif role == "tool":
            add("user", [_function_response(message, names)])
        else:
            raise _bad(f"unsupported message role {role!r}")
    return system, turns


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice == "auto":
        return {"functionCallingConfig": {"mode": "AUTO"}}
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = str((choice.get("function") or {}).get("name", ""))
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


def _generation_config(data: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = data.get("max_completion_tokens") or data.get("max_tokens")
    if isinstance(max_tokens, int):
        config["maxOutputTokens"] = max_tokens
    for source, target in _GENERATION_FIELDS:
        if data.get(source) is not None:
            config[target] = data[source]
    stop = data.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = data.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    effort = data.get("reasoning_effort")
    if isinstance(effort, str) and effort in _THINKING_BUDGET:
        config["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGET[effort], "includeThoughts": True}
    return config


def chat_to_gemini(data: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions request body as a Gemini `generateContent` body (the model goes in the URL)."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list")
    system, turns = _contents(messages)
    if not turns:
        raise _bad("Gemini needs at least one user or assistant message")
    out: dict[str, Any] = {"contents": turns}
    if any(system):
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(s for s in system if s)}]}
    tools = [t for t in data.get("tools") or () if isinstance(t, dict) and t.get("type", "function") == "function"]
    if tools:
        declarations = []
        for tool in tools:
            function = tool.get("function") or {}
            declaration: dict[str, Any] = {"name": str(function.get("name", ""))}
            if function.get("description"):
                declaration["description"] = str(function["description"])
            if isinstance(function.get("parameters"), dict) and function["parameters"].get("properties"):
                declaration["parameters"] = clean_schema(function["parameters"])
            declarations.append(declaration)
        out["tools"] = [{"functionDeclarations": declarations}]
        tool_config = _tool_config(data.get("tool_choice"))
        if tool_config is not None:
            out["toolConfig"] = tool_config
    config = _generation_config(data)
    if config:
        out["generationConfig"] = config
    return out


def read_usage(raw: Any, usage: Usage) -> None:
    """Gemini's usageMetadata into `usage` (OpenAI meaning: prompt includes cached; thoughts are completion)."""
    if not isinstance(raw, dict):
        return
    usage.prompt_tokens = token_count(raw.get("promptTokenCount")) + token_count(raw.get("toolUsePromptTokenCount"))
    usage.completion_tokens = token_count(raw.get("candidatesTokenCount")) + token_count(raw.get("thoughtsTokenCount"))
    usage.cache_read_tokens = token_count(raw.get("cachedContentTokenCount"))
    usage.reported = True


def usage_body(usage: Usage, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


_SIGNED = "call_sig_"
"""The id prefix of a tool call that carries its thought signature (base64url) after it."""


def requires_signatures(model: str) -> bool:
    """Whether the model refuses replayed function calls without their thought signature: Gemini 3 and later
    (1.x and 2.x accept them without), the only ones whose call ids carry the signature (see `tool_call`)."""
    name = model.removeprefix("models/")
    return name.startswith("gemini-") and not name.startswith(("gemini-1", "gemini-2"))


def tool_call(part: dict[str, Any], signed_id: bool = False) -> dict[str, Any]:
    """A `functionCall` part as a chat tool call. Gemini 3 refuses (400) a replayed call without the
    `thoughtSignature` it gave it, so the signature rides along where Google's own OpenAI compatibility puts it
    (`extra_content.google.thought_signature`, kept by the openai SDK when the message goes back as it came)
    and, with `signed_id` (a model that `requires_signatures`), in the call's id, the one field every client
    returns (tool results name it; an Anthropic `tool_use` block or a Responses `function_call` item keeps it
    as its id): `_signature` reads either. Only then, because such an id is longer than OpenAI's 40 characters
    (Bedrock's 64): a conversation moved to those vendors would be refused."""
    call = part["functionCall"]
    signature = part.get("thoughtSignature") or part.get("thought_signature")
    signature = signature if isinstance(signature, str) and signature else None
    signed = f"{_SIGNED}{_url_safe(signature)}" if signature and signed_id else None
    call_id = call.get("id") or signed or f"call_{uuid.uuid4().hex[:24]}"
    out: dict[str, Any] = {
        "id": str(call_id),
        "type": "function",
        "function": {"name": str(call.get("name", "")), "arguments": orjson.dumps(call.get("args") or {}).decode()},
    }
    if signature:
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def _url_safe(signature: str) -> str:
    """A base64 signature in the id alphabet every vendor accepts (`[A-Za-z0-9_-]`); `_from_id` undoes it."""
    return signature.replace("+", "-").replace("/", "_").rstrip("=")


def _from_id(call_id: str) -> str | None:
    if not call_id.startswith(_SIGNED) or len(call_id) == len(_SIGNED):
        return None
    encoded = call_id[len(_SIGNED) :].replace("-", "+").replace("_", "/")
    return encoded + "=" * (-len(encoded) % 4)


def _signature(call: dict[str, Any]) -> str | None:
    """The thought signature a chat tool call carries back: `extra_content.google.thought_signature`, else its id."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    if isinstance(signature, str) and signature:
        return signature
    return _from_id(str(call.get("id") or ""))


def finish_reason(reason: Any, called_tool: bool) -> str:
    mapped = FINISH_TO_OPENAI.get(str(reason or "STOP"), "stop")
    return "tool_calls" if called_tool and mapped == "stop" else mapped


def _choice(candidate: dict[str, Any], position: int, signed_ids: bool) -> dict[str, Any]:
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            calls.append(tool_call(part, signed_ids))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else text).append(part["text"])
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or (None if calls else "")}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return {
        "index": int(candidate.get("index", position) or 0),
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
    }


def gemini_to_chat(body: dict[str, Any], model: str, usage: Usage) -> dict[str, Any]:
    """A `GenerateContentResponse` as a `chat.completion` (a prompt blocked outright: empty, content_filter)."""
    candidates = [c for c in body.get("candidates") or () if isinstance(c, dict)]
    signed_ids = requires_signatures(model)
    choices = [_choice(c, i, signed_ids) for i, c in enumerate(candidates)]
    if not choices:
        message = {"role": "assistant", "content": ""}
        choices = [{"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"}]
    read_usage(body.get("usageMetadata"), usage)
    usage.choices = len(choices)
    usage.tool_calls = sum(len(c["message"].get("tool_calls") or ()) for c in choices)
    thoughts = int((body.get("usageMetadata") or {}).get("thoughtsTokenCount") or 0)
    return {
        "id": f"chatcmpl-{body.get('responseId') or uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("modelVersion") or model,
        "choices": choices,
        "usage": usage_body(usage, thoughts),
    }
