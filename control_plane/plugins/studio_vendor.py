"""The wire of the studio's own LLM calls, plain and streamed: OpenAI chat completions (also Azure OpenAI's, at
a deployment's URL: `studio_azure`), Anthropic Messages, Gemini's generateContent (`studio_gemini`; on Vertex AI
with an OAuth2 token: `studio_vertex`) and Bedrock's Converse (SigV4-signed: `studio_bedrock`).

Studio plugins and the portal's chat call vendors from the control plane (`StudioServicesImpl.call_llm` /
`stream_llm`). Requests and answers are kept in one vendor-neutral shape on our side (OpenAI's: `tool_calls` as
`{"id", "type": "function", "function": {"name", "arguments"}}`), translated here, so an agent loop is written
once whichever vendor serves the LLM.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from botocore.eventstream import EventStreamBuffer, ParserError

from shared_sdk.messages import LLMCallResponse, LLMMessage

from .studio_azure import azure_target
from .studio_bedrock import BedrockStreamError, bedrock_answer, bedrock_event, bedrock_request, bedrock_sign
from .studio_gemini import gemini_answer, gemini_body, gemini_event, gemini_request
from .studio_upstream import StreamEnd, Upstream
from .studio_vertex import VertexAuthError, vertex_tokens, vertex_url

__all__ = [
    "AUTH_FAILED",
    "StreamEnd",
    "Upstream",
    "VendorStreamError",
    "openai_answer",
    "openai_messages",
    "vendor_call",
    "vendor_stream",
]

logger = logging.getLogger(__name__)

AUTH_FAILED = "upstream_auth_failed"
"""The error type of a call whose credentials the vendor refused (the edge's code for the same failure)."""

_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def openai_messages(messages: list[LLMMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            item["tool_calls"] = m.tool_calls
            item["content"] = m.content or None
        if m.tool_call_id:
            item["tool_call_id"] = m.tool_call_id
        if m.name:
            item["name"] = m.name
        out.append(item)
    return out


def _arguments(call: dict[str, Any]) -> Any:
    raw = (call.get("function") or {}).get("arguments") or "{}"
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}


def _anthropic_messages(messages: list[LLMMessage]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, messages): tool calls become `tool_use` blocks, tool answers `tool_result` blocks of one
    user turn (Anthropic wants user and assistant turns to alternate)."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m.tool_calls:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
            for call in m.tool_calls:
                name = (call.get("function") or {}).get("name", "")
                blocks.append({"type": "tool_use", "id": call.get("id", ""), "name": name, "input": _arguments(call)})
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content})
    return system, out


def _anthropic_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        fn = tool.get("function") or tool
        out.append(
            {
                "name": fn.get("name", ""),
                "description": fn.get("description", ""),
                "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
            }
        )
    return out


def _request(
    upstream: Upstream,
    model: str,
    messages: list[LLMMessage],
    *,
    temperature: float | None,
    max_tokens: int | None,
    tools: list[dict[str, Any]] | None,
    stream: bool,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(url, headers, body) of one call in the upstream vendor's format, before `_authorized` (Vertex AI's token,
    Bedrock's signature)."""
    wire = upstream.wire
    if wire == "google":
        return gemini_request(
            upstream, model, messages, temperature=temperature, max_tokens=max_tokens, tools=tools, stream=stream
        )
    if wire == "vertex":
        gemini = gemini_body(messages, temperature=temperature, max_tokens=max_tokens, tools=tools)
        return vertex_url(upstream, model, stream), {"content-type": "application/json"}, gemini
    if wire == "bedrock":
        return bedrock_request(
            upstream, model, messages, temperature=temperature, max_tokens=max_tokens, tools=tools, stream=stream
        )
    headers = {"content-type": "application/json"}
    body: dict[str, Any] = {"model": model}
    if temperature is not None:
        body["temperature"] = temperature
    if stream:
        body["stream"] = True
    if upstream.anthropic:
        system, body["messages"] = _anthropic_messages(messages)
        if system:
            body["system"] = system
        if tools:
            body["tools"] = _anthropic_tools(tools)
        body["max_tokens"] = max_tokens or 1024
        headers.update({"x-api-key": upstream.key, "anthropic-version": "2023-06-01"})
        base = upstream.base
        return (f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"), headers, body
    body["messages"] = openai_messages(messages)
    if tools:
        body["tools"] = tools
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream_options"] = {"include_usage": True}
    if wire == "azure":
        del body["model"]  # the deployment names the model
        url, headers = azure_target(upstream, model)
        return url, headers, body
    if upstream.key:
        headers["authorization"] = f"Bearer {upstream.key}"
    return f"{upstream.base}/chat/completions", headers, body


async def _authorized(upstream: Upstream, url: str, headers: dict[str, str], content: bytes) -> dict[str, str]:
    """The headers with the credentials a request needs once its bytes are known: Vertex AI's access token
    (raises `VertexAuthError` when none can be had), Bedrock's SigV4 signature of exactly `content`."""
    if upstream.wire == "vertex":
        return {**headers, "authorization": await vertex_tokens.authorization(upstream)}
    if upstream.wire == "bedrock":
        return bedrock_sign(upstream, url, headers, content)
    return headers


def _refused(upstream: Upstream, status: int) -> str:
    """The error type of an error status: the vendor refused the LLM's credentials (401/403), or some other error.
    A Vertex AI token the vendor refused is dropped, so the next call exchanges the key again."""
    if status in (401, 403):
        if upstream.wire == "vertex":
            vertex_tokens.forget(upstream)
        return AUTH_FAILED
    return "upstream_error"


def _anthropic_answer(data: dict[str, Any]) -> LLMCallResponse:
    blocks = data.get("content") or []
    calls = [
        {
            "id": b.get("id", ""),
            "type": "function",
            "function": {"name": b.get("name", ""), "arguments": json.dumps(b.get("input") or {})},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    usage = data.get("usage") or {}
    stop = data.get("stop_reason") or ""
    return LLMCallResponse(
        content="".join(b.get("text", "") for b in blocks if b.get("type") == "text"),
        model=data.get("model", ""),
        finish_reason="tool_calls" if stop == "tool_use" else stop,
        tool_calls=calls,
        prompt_tokens=usage.get("input_tokens", 0),
        completion_tokens=usage.get("output_tokens", 0),
    )


def openai_answer(data: dict[str, Any]) -> LLMCallResponse:
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    usage = data.get("usage") or {}
    return LLMCallResponse(
        content=message.get("content") or "",
        model=data.get("model", ""),
        finish_reason=choice.get("finish_reason") or "",
        tool_calls=message.get("tool_calls") or [],
        prompt_tokens=usage.get("prompt_tokens", 0),
        completion_tokens=usage.get("completion_tokens", 0),
    )


async def vendor_call(
    upstream: Upstream,
    model: str,
    messages: list[LLMMessage],
    *,
    temperature: float | None = None,
    max_tokens: int | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> tuple[int, LLMCallResponse | None, str]:
    """(status, answer or None, error type): 502 with the exception's name when the upstream was unreachable,
    `upstream_auth_failed` when the vendor (or Vertex AI's token endpoint, 502) refused the LLM's credentials."""
    url, headers, body = _request(
        upstream, model, messages, temperature=temperature, max_tokens=max_tokens, tools=tools, stream=False
    )
    content = json.dumps(body).encode()
    try:
        headers = await _authorized(upstream, url, headers, content)
    except VertexAuthError as exc:
        logger.warning("%s", exc)
        return 502, None, AUTH_FAILED
    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
            response = await client.post(url, content=content, headers=headers)
    except httpx.HTTPError as exc:
        return 502, None, type(exc).__name__
    if response.status_code >= 400:
        return response.status_code, None, _refused(upstream, response.status_code)
    data = response.json()
    return response.status_code, _answer(upstream, model, data), ""


class VendorStreamError(Exception):
    """The upstream refused the stream or broke off: `status` (502 when unreachable) and an error type."""

    def __init__(self, status: int, error_type: str) -> None:
        super().__init__(f"{status} {error_type}")
        self.status = status
        self.error_type = error_type


def _openai_event(data: dict[str, Any], end: StreamEnd) -> str:
    end.model = data.get("model") or end.model
    usage = data.get("usage") or {}
    if usage:
        end.prompt_tokens = usage.get("prompt_tokens", 0)
        end.completion_tokens = usage.get("completion_tokens", 0)
    choice = (data.get("choices") or [{}])[0]
    end.finish_reason = choice.get("finish_reason") or end.finish_reason
    delta = choice.get("delta") or {}
    for fragment in delta.get("tool_calls") or []:  # the call's id and name first, then argument fragments
        call = end.tool_call(int(fragment.get("index") or 0))
        call["id"] = fragment.get("id") or call["id"]
        function = fragment.get("function") or {}
        call["function"]["name"] = function.get("name") or call["function"]["name"]
        call["function"]["arguments"] += function.get("arguments") or ""
    return delta.get("content") or ""


def _anthropic_event(data: dict[str, Any], end: StreamEnd) -> str:
    kind = data.get("type")
    if kind == "message_start":
        message = data.get("message") or {}
        end.model = message.get("model", "")
        end.prompt_tokens = (message.get("usage") or {}).get("input_tokens", 0)
    elif kind == "message_delta":
        stop = (data.get("delta") or {}).get("stop_reason") or end.finish_reason
        end.finish_reason = "tool_calls" if stop == "tool_use" else stop
        end.completion_tokens = (data.get("usage") or {}).get("output_tokens", end.completion_tokens)
    elif kind == "content_block_start":
        block = data.get("content_block") or {}
        if block.get("type") == "tool_use":  # its input follows as `input_json_delta` fragments of this block
            call = end.tool_call(len(end.tool_calls))
            call["id"], call["function"]["name"] = block.get("id", ""), block.get("name", "")
    elif kind == "content_block_delta":
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta":
            return delta.get("text") or ""
        if delta.get("type") == "input_json_delta" and end.tool_calls:
            end.tool_calls[-1]["function"]["arguments"] += delta.get("partial_json") or ""
    elif kind == "error":
        raise VendorStreamError(502, (data.get("error") or {}).get("type") or "upstream_error")
    return ""


def _answer(upstream: Upstream, model: str, data: dict[str, Any]) -> LLMCallResponse:
    wire = upstream.wire
    if wire in ("google", "vertex"):
        return gemini_answer(data)
    if wire == "bedrock":
        return bedrock_answer(data, model)
    return _anthropic_answer(data) if upstream.anthropic else openai_answer(data)


def _sse_parser(upstream: Upstream) -> Callable[[dict[str, Any], StreamEnd], str]:
    if upstream.wire in ("google", "vertex"):
        return gemini_event
    return _anthropic_event if upstream.anthropic else _openai_event


async def _sse_texts(response: httpx.Response, upstream: Upstream, end: StreamEnd) -> AsyncIterator[str]:
    parse = _sse_parser(upstream)
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        try:
            data = json.loads(payload)
        except ValueError:
            raise VendorStreamError(502, "malformed_stream") from None
        yield parse(data, end)


async def _event_stream_texts(response: httpx.Response, end: StreamEnd) -> AsyncIterator[str]:
    """Bedrock's converse-stream: binary event-stream frames, cut and CRC-checked by botocore."""
    frames = EventStreamBuffer()
    async for piece in response.aiter_bytes():
        frames.add_data(piece)
        try:
            for message in frames:
                yield bedrock_event(message, end)
        except BedrockStreamError as exc:
            raise VendorStreamError(exc.status, exc.name) from None
        except ParserError:
            raise VendorStreamError(502, "malformed_stream") from None


async def vendor_stream(
    upstream: Upstream,
    model: str,
    messages: list[LLMMessage],
    end: StreamEnd,
    *,
    temperature: float | None = None,
    max_tokens: int | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> AsyncIterator[str]:
    """Yield the answer's text deltas as the vendor sends them (server-sent events, Bedrock's event stream); usage
    and the tool calls (offered as `tools`, OpenAI's function shape) land in `end`.

    Raises `VendorStreamError` when the upstream is unreachable, refuses the credentials, answers an error status
    or breaks off."""
    url, headers, body = _request(
        upstream, model, messages, temperature=temperature, max_tokens=max_tokens, tools=tools, stream=True
    )
    content = json.dumps(body).encode()
    try:
        headers = await _authorized(upstream, url, headers, content)
    except VertexAuthError as exc:
        logger.warning("%s", exc)
        raise VendorStreamError(502, AUTH_FAILED) from None
    try:
        async with (
            httpx.AsyncClient(timeout=_TIMEOUT) as client,
            client.stream("POST", url, content=content, headers=headers) as response,
        ):
            if response.status_code >= 400:
                raise VendorStreamError(response.status_code, _refused(upstream, response.status_code))
            if upstream.wire == "bedrock":
                texts = _event_stream_texts(response, end)
            else:
                texts = _sse_texts(response, upstream, end)
            async for text in texts:
                if text:
                    yield text
    except httpx.HTTPError as exc:
        raise VendorStreamError(502, type(exc).__name__) from None
