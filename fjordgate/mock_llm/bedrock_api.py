"""AWS Bedrock Runtime's Converse API: `POST /model/{modelId}/converse` and `/converse-stream`.

Requests must be SigV4-signed with the mock's key pair (`bedrock_format.verify_signature`); an unsigned or
wrongly signed one is 403 `AccessDeniedException`-style, as at AWS. The reply follows the mock's usual rules
(echo of the last message's text, tool calls on `call tool`), in Converse's shapes: `output.message.content`
blocks (`text`, `toolUse`), `stopReason`, `usage.inputTokens/outputTokens/totalTokens`; the stream is binary
event-stream frames: messageStart, contentBlockStart (tool uses), contentBlockDelta..., contentBlockStop,
messageStop, metadata (usage). `additionalModelResponseFieldPaths` (JSON Pointers) are looked up in Claude's own
answer, and those found come back in `additionalModelResponseFields` (`_claude_native`): `converse` points into
Claude's message, so `/stop_sequence` gives `{"stop_sequence": <the sequence it stopped on, or null>}`;
`converse-stream` into Claude's last stream event, `message_delta`, so there it takes `/delta/stop_sequence` and
gives `{"delta": {"stop_sequence": ...}}` in `messageStop`. An Amazon Nova model (`amazon.nova-...`, also as an inference
profile `us.amazon.nova-...`) keeps the stop sequence at the end of its text, as Nova at AWS does; the others cut
the text before it. `inferenceConfig` is held to Converse's bounds for every model (`temperature` and `topP` 0 to
1, at most 2500 `stopSequences`): beyond them, 400 ValidationException in AWS's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .bedrock_format import EVENT_STREAM, BedrockFormat, error_type, event_frame, verify_signature
from .exchange import Exchange, Invalid, begin
from .exchange import MockState as MockState
from .tokens import compose_reply, count_tokens, echo, group_pieces, token_pieces
from .tools import ToolChoice, ToolSpec, pick_tools, synthesize

BEDROCK = BedrockFormat()
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence"}


@dataclass(frozen=True, slots=True)
class ConverseRequest:
    max_tokens: int | None
    stop_sequences: list[str]
    tools: list[ToolSpec]
    tool_choice: ToolChoice
    prompt_tokens: int
    last_text: str
    user_text: str | None
    field_paths: tuple[str, ...] = ()
    """`additionalModelResponseFieldPaths`: JSON Pointers into the model's own answer."""


class BedrockApi:
    def __init__(self, state: MockState) -> None:
        self.state = state

    async def converse(self, request: Request) -> Response:
        return await self._answer(request, stream=False)

    async def converse_stream(self, request: Request) -> Response:
        return await self._answer(request, stream=True)

    async def _answer(self, request: Request, *, stream: bool) -> Response:
        exchange = await begin(self.state, BEDROCK, request)
        if not isinstance(exchange, Exchange):
            return _typed(exchange)
        problem = verify_signature(
            method=request.method,
            raw_path=request.scope.get("raw_path") or request.url.path.encode(),
            query=request.scope.get("query_string", b""),
            headers=request.headers,
            body=await request.body(),
            credentials=self.state.settings.aws_credentials,
            now=datetime.now(UTC),
        )
        if problem is not None:
            return _typed(exchange.error(403, problem))
        try:
            req = parse_converse(exchange.body)
        except Invalid as invalid:
            return _typed(exchange.invalid(invalid))
        keeps_stop = "amazon.nova" in request.path_params.get("model", "")
        blocks, output_tokens, stop_reason, stopped_on = _generate(exchange, req, keeps_stop)
        native = _claude_native(stop_reason, stopped_on, stream)
        fields = _pick_fields(native, req.field_paths)
        extra = {"additionalModelResponseFields": fields} if fields else {}
        usage = {
            "inputTokens": req.prompt_tokens,
            "outputTokens": output_tokens,
            "totalTokens": req.prompt_tokens + output_tokens,
        }
        if not stream:
            payload = {
                "output": {"message": {"role": "assistant", "content": blocks}},
                "stopReason": stop_reason,
                **extra,
                "usage": usage,
                "metrics": {"latencyMs": 1},
            }
            return exchange.json(payload, prompt_tokens=req.prompt_tokens, completion_tokens=output_tokens)
        events = [event_frame("messageStart", {"role": "assistant"})]
        for index, block in enumerate(blocks):
            _block_frames(events, index, block, exchange.plan.chunks)
        events.append(event_frame("messageStop", {"stopReason": stop_reason, **extra}))
        events.append(event_frame("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}))
        response = exchange.stream(events, prompt_tokens=req.prompt_tokens, completion_tokens=output_tokens)
        response.raw_headers = [(b"content-type", EVENT_STREAM)] + [
            h for h in response.raw_headers if h[0] not in (b"content-type", b"cache-control")
        ]
        return response


def _claude_native(stop_reason: str, stopped_on: str | None, stream: bool) -> dict[str, Any]:
    """What `additionalModelResponseFieldPaths` points into: Claude's own answer, its Messages message for
    `converse` (`stop_sequence` at the top, the path AWS's Converse guide shows: `/stop_sequence`) and its last
    stream event, `message_delta`, for `converse-stream` (`delta.stop_sequence`: `/delta/stop_sequence`, which
    AWS does not document; vercel/ai found it so, PR 11410)."""
    if stream:
        return {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": stopped_on}}
    return {"type": "message", "role": "assistant", "stop_reason": stop_reason, "stop_sequence": stopped_on}


def _field_paths(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > 10 or not all(isinstance(p, str) and p.startswith("/") for p in raw):
        raise Invalid("additionalModelResponseFieldPaths: must be a list of at most 10 JSON Pointers")
    return tuple(raw)


def _pick_fields(native: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """The requested paths that exist in `native`, at the same place in a new object; the others are left out."""
    picked: dict[str, Any] = {}
    for path in paths:
        keys = path.split("/")[1:]
        value: Any = native
        for key in keys:
            value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
        if value is _MISSING:
            continue
        into = picked
        for key in keys[:-1]:
            into = into.setdefault(key, {})
        into[keys[-1]] = value
    return picked


_MISSING = object()


def _generate(
    exchange: Exchange, req: ConverseRequest, keeps_stop: bool = False
) -> tuple[list[dict[str, Any]], int, str, str | None]:
    """The answer's blocks, output tokens, stopReason and the sequence it stopped on; `keeps_stop`: the model's
    text ends with that sequence (Nova's), not before it."""
    picked = pick_tools(req.user_text, req.tools, req.tool_choice)
    if picked:
        blocks = [
            {"toolUse": {"toolUseId": exchange.id("tooluse_"), "name": t.name, "input": synthesize(t.schema)}}
            for t in picked
        ]
        tokens = sum(
            count_tokens(b["toolUse"]["name"]) + count_tokens(orjson.dumps(b["toolUse"]["input"]).decode())
            for b in blocks
        )
        return blocks, tokens, "tool_use", None
    reply = compose_reply(
        echo(req.last_text),
        max_tokens=req.max_tokens,
        stop=req.stop_sequences,
        reply_tokens=exchange.plan.reply_tokens,
    )
    if keeps_stop and reply.stop_sequence is not None:
        text = reply.text + reply.stop_sequence
        return [{"text": text}], count_tokens(text), "stop_sequence", reply.stop_sequence
    return [{"text": reply.text}], reply.tokens, _STOP_REASONS[reply.finish], reply.stop_sequence


def _block_frames(events: list[bytes], index: int, block: dict[str, Any], chunks: int | None) -> None:
    if "text" in block:
        for piece in group_pieces(token_pieces(block["text"]), chunks):
            events.append(event_frame("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}}))
    else:
        use = block["toolUse"]
        start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
        events.append(event_frame("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        for piece in group_pieces(token_pieces(orjson.dumps(use["input"]).decode()), chunks):
            delta = {"toolUse": {"input": piece}}
            events.append(event_frame("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
    events.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))


def _typed(response: Response) -> Response:
    """An error with AWS's `x-amzn-ErrorType` header, which names the exception (the body has only `message`)."""
    if response.status_code >= 400 and hasattr(response, "raw_headers"):
        name = error_type(response.status_code).encode()
        response.raw_headers = [*response.raw_headers, (b"x-amzn-errortype", name + b":http://internal.amazon.com/")]
    return response


def parse_converse(body: dict[str, Any]) -> ConverseRequest:
    """Validate a Converse request as Bedrock does (the parts the mock acts on); messages must alternate."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid(
            "A conversation must start with a user message. Try again with a conversation that starts with a user message."
        )
    prompt = count_tokens(" ".join(str(s.get("text", "")) for s in body.get("system") or () if isinstance(s, dict)))
    previous = None
    for position, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant") or (position == 0 and role != "user"):
            raise Invalid(f"messages.{position}.role: A conversation must alternate between user and assistant roles.")
        if role == previous:
            raise Invalid(
                "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again."
            )
        previous = role
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise Invalid(f"messages.{position}.content: The content field must be a non-empty list of blocks.")
        for block in content:
            if not isinstance(block, dict) or ("text" in block and not block["text"]):
                raise Invalid(f"messages.{position}.content: Text blocks must not be empty.")
        prompt += count_tokens(_text(content, with_tool_use=True))
    last = messages[-1]["content"]
    answers_tool = any("toolResult" in b for b in last)
    config = body.get("inferenceConfig") or {}
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise Invalid("inferenceConfig.maxTokens: must be an integer >= 1")
    _check_ranges(config)
    stops = config.get("stopSequences") or []
    tools, choice = _tools(body.get("toolConfig"))
    last_text = _text(last)
    return ConverseRequest(
        max_tokens=max_tokens,
        stop_sequences=[s for s in stops if isinstance(s, str)],
        tools=tools,
        tool_choice=choice,
        prompt_tokens=prompt,
        last_text=last_text,
        user_text=last_text if messages[-1]["role"] == "user" and not answers_tool else None,
        field_paths=_field_paths(body.get("additionalModelResponseFieldPaths")),
    )


_MAX_STOPS = 2500  # AWS API reference, InferenceConfiguration.stopSequences


def _constraint(value: Any, field: str, rule: str) -> Invalid:
    """AWS's words for a field beyond its bounds (its request validation, before any model runs)."""
    shown = orjson.dumps(value).decode()[:64]
    return Invalid(f"1 validation error detected: Value '{shown}' at '{field}' failed to satisfy constraint: {rule}")


def _check_ranges(config: dict[str, Any]) -> None:
    """`inferenceConfig`'s bounds, as Converse states them for every model: `temperature` and `topP` 0 to 1, at
    most 2500 `stopSequences` of at least one character."""
    for name in ("temperature", "topP"):
        value = config.get(name)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise Invalid(f"inferenceConfig.{name}: must be a number")
        if value > 1:
            raise _constraint(value, f"inferenceConfig.{name}", "Member must have value less than or equal to 1")
        if value < 0:
            raise _constraint(value, f"inferenceConfig.{name}", "Member must have value greater than or equal to 0")
    stops = config.get("stopSequences")
    if stops is None:
        return
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise Invalid("inferenceConfig.stopSequences: must be a list of non-empty strings")
    if len(stops) > _MAX_STOPS:
        raise _constraint(
            stops, "inferenceConfig.stopSequences", f"Member must have length less than or equal to {_MAX_STOPS}"
        )


def _text(content: list[Any], *, with_tool_use: bool = False) -> str:
    parts: list[str] = []
    for block in content:
        if "text" in block:
            parts.append(str(block["text"]))
        elif "toolResult" in block:
            parts.append(_text((block["toolResult"] or {}).get("content") or []))
        elif "toolUse" in block and with_tool_use:
            use = block["toolUse"] or {}
            parts.append(f"{use.get('name', '')} {orjson.dumps(use.get('input', {})).decode()}")
    return "\n".join(parts)


def _tools(config: Any) -> tuple[list[ToolSpec], ToolChoice]:
    if config is None:
        return [], ToolChoice()
    specs: list[ToolSpec] = []
    for position, tool in enumerate(config.get("tools") or ()):
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        schema = (spec or {}).get("inputSchema") or {}
        if not isinstance(spec, dict) or not spec.get("name") or "json" not in schema:
            raise Invalid(f"toolConfig.tools.{position}.toolSpec: name and inputSchema.json are required")
        specs.append(ToolSpec(spec["name"], schema["json"]))
    choice = config.get("toolChoice") or {"auto": {}}
    if "any" in choice:
        return specs, ToolChoice("force")
    if "tool" in choice:
        name = (choice["tool"] or {}).get("name")
        if name not in {s.name for s in specs}:
            raise Invalid(f"toolConfig.toolChoice.tool.name: {name!r} is not among the tools")
        return specs, ToolChoice("force", name)
    return specs, ToolChoice()
