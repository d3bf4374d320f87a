"""The studio's own LLM calls to AWS Bedrock: the Converse API (`converse`, `converse-stream`), SigV4-signed.

Translation, in the studio's OpenAI-shaped terms (`studio_vendor`): system messages become `system` blocks, tool
calls `toolUse` blocks and tool answers `toolResult` blocks of a user turn (Converse wants user and assistant turns
to alternate, so consecutive turns of one role are merged); answers' `toolUse` blocks come back as OpenAI
`tool_calls`. The LLM's key is `ACCESS_KEY_ID:SECRET_ACCESS_KEY` and its region `metadata.region`; signing is
botocore's `SigV4Auth` (pure CPU, AWS's own), over the exact bytes sent. Streams are AWS event-stream frames, read
with botocore's `EventStreamBuffer` (CRCs checked): a studio stream is one user's chat, so its CPU does not matter
the way the edge's does.
"""

from __future__ import annotations

import json
from typing import Any, cast
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamMessage

from shared_sdk.messages import LLMCallResponse, LLMMessage

from .studio_upstream import StreamEnd, Upstream

__all__ = ["BedrockStreamError", "bedrock_answer", "bedrock_event", "bedrock_request", "bedrock_sign"]

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


class BedrockStreamError(Exception):
    """An `exception` frame of a converse-stream (throttlingException, modelStreamErrorException, ...)."""

    def __init__(self, status: int, name: str) -> None:
        super().__init__(name)
        self.status = status
        self.name = name


def _arguments(call: dict[str, Any]) -> Any:
    raw = (call.get("function") or {}).get("arguments") or "{}"
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}


def _turns(messages: list[LLMMessage]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            result = {"toolUseId": m.tool_call_id, "content": [{"text": m.content or " "}]}
            add("user", [{"toolResult": result}])
            continue
        blocks: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
        for call in m.tool_calls or []:
            name = (call.get("function") or {}).get("name", "")
            blocks.append({"toolUse": {"toolUseId": call.get("id", ""), "name": name, "input": _arguments(call)}})
        add("assistant" if m.role == "assistant" else "user", blocks)
    return turns


def _tool_config(tools: list[dict[str, Any]]) -> dict[str, Any]:
    specs = []
    for tool in tools:
        fn = tool.get("function") or tool
        spec: dict[str, Any] = {
            "name": fn.get("name", ""),
            "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}},
        }
        if fn.get("description"):
            spec["description"] = fn["description"]
        specs.append({"toolSpec": spec})
    return {"tools": specs}


def bedrock_request(
    upstream: Upstream,
    model: str,
    messages: list[LLMMessage],
    *,
    temperature: float | None,
    max_tokens: int | None,
    tools: list[dict[str, Any]] | None,
    stream: bool,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(url, headers, body) of a Converse call, not yet signed (`bedrock_sign` signs the bytes sent)."""
    body: dict[str, Any] = {"messages": _turns(messages)}
    system = [{"text": m.content} for m in messages if m.role == "system" and m.content]
    if system:
        body["system"] = system
    config = {k: v for k, v in {"maxTokens": max_tokens, "temperature": temperature}.items() if v is not None}
    if config:
        body["inferenceConfig"] = config
    if tools:
        body["toolConfig"] = _tool_config(tools)
    operation = "converse-stream" if stream else "converse"
    url = f"{upstream.base.rstrip('/')}/model/{quote(model, safe='')}/{operation}"
    accept = "application/vnd.amazon.eventstream" if stream else "application/json"
    return url, {"content-type": "application/json", "accept": accept}, body


def bedrock_sign(upstream: Upstream, url: str, headers: dict[str, str], content: bytes) -> dict[str, str]:
    """`headers` plus SigV4's `x-amz-date` and `authorization` for this exact request (`studio_services` checked
    the key's shape and the region before the call)."""
    key_id, _, secret = upstream.key.partition(":")
    request = AWSRequest(method="POST", url=url, data=content, headers=dict(headers))
    SigV4Auth(Credentials(key_id, secret), "bedrock", str(upstream.metadata.get("region") or "")).add_auth(request)
    return {name.lower(): str(value) for name, value in request.headers.items()}


def _usage(raw: Any) -> tuple[int, int]:
    """(prompt, completion) tokens in OpenAI's meaning: prompt tokens include cache reads and writes."""
    if not isinstance(raw, dict):
        return 0, 0
    prompt = sum(int(raw.get(k) or 0) for k in ("inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens"))
    return prompt, int(raw.get("outputTokens") or 0)


def bedrock_answer(data: dict[str, Any], model: str) -> LLMCallResponse:
    """A Converse answer in the studio's shape (Converse answers do not name the model: the one asked for)."""
    blocks = ((data.get("output") or {}).get("message") or {}).get("content") or []
    calls = [
        {
            "id": b["toolUse"].get("toolUseId", ""),
            "type": "function",
            "function": {
                "name": b["toolUse"].get("name", ""),
                "arguments": json.dumps(b["toolUse"].get("input") or {}),
            },
        }
        for b in blocks
        if isinstance(b, dict) and isinstance(b.get("toolUse"), dict)
    ]
    prompt, completion = _usage(data.get("usage"))
    return LLMCallResponse(
        content="".join(str(b["text"]) for b in blocks if isinstance(b, dict) and "text" in b),
        model=model,
        finish_reason=_FINISH.get(str(data.get("stopReason") or "end_turn"), "stop"),
        tool_calls=calls,
        prompt_tokens=prompt,
        completion_tokens=completion,
    )


def bedrock_event(message: EventStreamMessage, end: StreamEnd) -> str:
    """One converse-stream frame: its text; the finish reason and usage land in `end`.

    Raises `BedrockStreamError` for an exception frame (429 for throttling, else 502)."""
    headers = cast(dict[str, Any], message.headers)  # botocore-stubs type it `int`; botocore gives a dict
    if headers.get(":message-type") in ("exception", "error"):
        name = str(headers.get(":exception-type") or headers.get(":error-code") or "upstream_error")
        raise BedrockStreamError(429 if name == "throttlingException" else 502, name)
    try:
        data = json.loads(message.payload) if message.payload else {}
    except ValueError:
        raise BedrockStreamError(502, "malformed_stream") from None
    if not isinstance(data, dict):
        return ""
    kind = headers.get(":event-type")
    if kind == "contentBlockDelta":
        return str((data.get("delta") or {}).get("text") or "")
    if kind == "messageStop":
        end.finish_reason = _FINISH.get(str(data.get("stopReason") or "end_turn"), "stop")
    elif kind == "metadata":
        end.prompt_tokens, end.completion_tokens = _usage(data.get("usage"))
    return ""
