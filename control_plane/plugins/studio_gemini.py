"""The studio's own LLM calls to vendor `google` (Gemini's generateContent; Vertex AI sends the same bodies,
`studio_vertex`), in the studio's OpenAI-shaped terms.

`studio_vendor` keeps requests and answers in OpenAI's shape; this module translates them for Gemini: system
messages become `systemInstruction`, assistant turns role `model`, tool calls `functionCall` parts and tool
answers `functionResponse` parts; answers' `functionCall` parts come back as OpenAI `tool_calls`. Thought parts
(`thought: true`) are not part of the answer's text.
"""

from __future__ import annotations

import json
from typing import Any

from shared_sdk.messages import LLMCallResponse, LLMMessage

from .studio_upstream import StreamEnd, Upstream

__all__ = ["gemini_answer", "gemini_body", "gemini_event", "gemini_request"]

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter"}


def _arguments(call: dict[str, Any]) -> Any:
    raw = (call.get("function") or {}).get("arguments") or "{}"
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}


def _contents(messages: list[LLMMessage]) -> list[dict[str, Any]]:
    names = {c.get("id", ""): (c.get("function") or {}).get("name", "") for m in messages for c in m.tool_calls or []}
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            part = {"functionResponse": {"name": names.get(m.tool_call_id, m.name), "response": {"content": m.content}}}
            if out and out[-1]["role"] == "user" and "functionResponse" in out[-1]["parts"][0]:
                out[-1]["parts"].append(part)
            else:
                out.append({"role": "user", "parts": [part]})
            continue
        parts: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
        for call in m.tool_calls or []:
            parts.append(
                {"functionCall": {"name": (call.get("function") or {}).get("name", ""), "args": _arguments(call)}}
            )
        out.append({"role": "model" if m.role == "assistant" else "user", "parts": parts or [{"text": ""}]})
    return out


def gemini_body(
    messages: list[LLMMessage],
    *,
    temperature: float | None,
    max_tokens: int | None,
    tools: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """The generateContent body (the same on Vertex AI, `studio_vertex`)."""
    body: dict[str, Any] = {"contents": _contents(messages)}
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    config = {k: v for k, v in {"temperature": temperature, "maxOutputTokens": max_tokens}.items() if v is not None}
    if config:
        body["generationConfig"] = config
    if tools:
        declarations = [
            {
                "name": fn.get("name", ""),
                "description": fn.get("description", ""),
                "parameters": fn.get("parameters") or {"type": "object", "properties": {}},
            }
            for fn in (tool.get("function") or tool for tool in tools)
        ]
        body["tools"] = [{"functionDeclarations": declarations}]
    return body


def gemini_request(
    upstream: Upstream,
    model: str,
    messages: list[LLMMessage],
    *,
    temperature: float | None,
    max_tokens: int | None,
    tools: list[dict[str, Any]] | None,
    stream: bool,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(url, headers, body) of a generateContent (or streamGenerateContent with `alt=sse`) call."""
    body = gemini_body(messages, temperature=temperature, max_tokens=max_tokens, tools=tools)
    base = upstream.base.rstrip("/")
    base = base if base.endswith(("/v1beta", "/v1")) else f"{base}/v1beta"
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    headers = {"content-type": "application/json", "x-goog-api-key": upstream.key}
    return f"{base}/models/{model}:{method}", headers, body


def _parts(data: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    candidate = (data.get("candidates") or [{}])[0]
    return candidate, (candidate.get("content") or {}).get("parts") or []


def gemini_answer(data: dict[str, Any]) -> LLMCallResponse:
    candidate, parts = _parts(data)
    calls = [
        {
            "id": f"call_{index}",
            "type": "function",
            "function": {
                "name": p["functionCall"].get("name", ""),
                "arguments": json.dumps(p["functionCall"].get("args") or {}),
            },
        }
        for index, p in enumerate(parts)
        if isinstance(p.get("functionCall"), dict)
    ]
    usage = data.get("usageMetadata") or {}
    finish = _FINISH.get(candidate.get("finishReason", ""), "stop")
    return LLMCallResponse(
        content="".join(p.get("text", "") for p in parts if not p.get("thought")),
        model=data.get("modelVersion") or "",
        finish_reason="tool_calls" if calls else finish,
        tool_calls=calls,
        prompt_tokens=usage.get("promptTokenCount", 0),
        completion_tokens=usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0),
    )


def gemini_event(data: dict[str, Any], end: StreamEnd) -> str:
    """One `data:` event of a streamGenerateContent: its text; usage and finish reason land in `end`."""
    candidate, parts = _parts(data)
    end.model = data.get("modelVersion") or end.model
    usage = data.get("usageMetadata") or {}
    if usage:
        end.prompt_tokens = usage.get("promptTokenCount", 0)
        end.completion_tokens = usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0)
    if candidate.get("finishReason"):
        end.finish_reason = _FINISH.get(candidate["finishReason"], "stop")
    for part in parts:  # Gemini streams each function call whole, in one part
        if isinstance(part.get("functionCall"), dict):
            call = end.tool_call(len(end.tool_calls))
            call["id"] = f"call_{len(end.tool_calls) - 1}"
            call["function"]["name"] = part["functionCall"].get("name", "")
            call["function"]["arguments"] = json.dumps(part["functionCall"].get("args") or {})
    if end.tool_calls:
        end.finish_reason = "tool_calls"
    return "".join(p.get("text", "") for p in parts if not p.get("thought"))
