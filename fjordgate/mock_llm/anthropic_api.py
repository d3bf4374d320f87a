"""Anthropic endpoints: Messages (plain and streamed), token counting, and models.

Prompt tokens are the tokens of the system prompt and of every message's text: string content, text blocks,
tool_result contents, and the name plus JSON input of tool_use blocks. `input_tokens` excludes the tokens reported
as cache reads or writes (mock options `cached_tokens`, `cache_write_tokens`), as Anthropic's usage does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from . import anthropic_format as fmt
from .anthropic_params import check_content, check_fields
from .catalog import ANTHROPIC_BY_ID, ANTHROPIC_MODELS, AnthropicModel
from .exchange import Exchange, Invalid, MockState, begin
from .tokens import compose_reply, count_tokens, echo, group_pieces, token_pieces
from .tools import ToolChoice, ToolSpec, pick_tools, synthesize

ANTHROPIC = fmt.AnthropicFormat()
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence"}


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    max_tokens: int
    stream: bool
    stop_sequences: list[str]
    tools: list[ToolSpec]
    tool_choice: ToolChoice
    parallel: bool
    prompt_tokens: int
    last_text: str
    user_text: str | None  # the last message's text when it is a plain user turn (tool-call trigger)
    output_schema: dict[str, Any] | None  # structured output (`output_config.format`): the reply is built from it


class AnthropicApi:
    """The Anthropic routes; each method is a Starlette endpoint."""

    def __init__(self, state: MockState) -> None:
        self.state = state

    async def messages(self, request: Request) -> Response:
        exchange = await begin(self.state, ANTHROPIC, request)
        if not isinstance(exchange, Exchange):
            return exchange
        try:
            req = parse_messages(exchange.body)
        except Invalid as problem:
            return exchange.invalid(problem)
        plan = exchange.plan
        total = req.prompt_tokens
        cache_read = min(plan.cached_tokens, total)
        cache_write = min(plan.cache_write_tokens, total - cache_read)
        input_tokens = total - cache_read - cache_write
        picked = pick_tools(req.user_text, req.tools, req.tool_choice, parallel=req.parallel)
        blocks: list[dict[str, Any]] = []
        if picked:
            for tool in picked:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": exchange.id("toolu_"),
                        "name": tool.name,
                        "input": synthesize(tool.schema),
                    }
                )
            output_tokens = sum(
                count_tokens(b["name"]) + count_tokens(orjson.dumps(b["input"]).decode()) for b in blocks
            )
            stop_reason, stop_sequence = "tool_use", None
        else:
            text = (
                echo(req.last_text)
                if req.output_schema is None
                else orjson.dumps(synthesize(req.output_schema)).decode()
            )
            reply = compose_reply(
                text, max_tokens=req.max_tokens, stop=req.stop_sequences, reply_tokens=plan.reply_tokens
            )
            blocks.append({"type": "text", "text": reply.text})
            output_tokens, stop_reason, stop_sequence = reply.tokens, _STOP_REASONS[reply.finish], reply.stop_sequence
        usage = fmt.usage(input_tokens, output_tokens, cache_read, cache_write)
        message_id = exchange.id("msg_")
        if not req.stream:
            payload = fmt.message(message_id, req.model, blocks, stop_reason, stop_sequence, usage)
            return exchange.json(payload, prompt_tokens=total, completion_tokens=output_tokens)
        start_usage = fmt.usage(input_tokens, min(1, output_tokens), cache_read, cache_write)
        events = [
            fmt.event(
                "message_start",
                {"type": "message_start", "message": fmt.message(message_id, req.model, [], None, None, start_usage)},
            )
        ]
        for index, block in enumerate(blocks):
            _block_events(events, index, block, plan.chunks)
        delta_usage = {key: value for key, value in usage.items() if key != "service_tier"}
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": delta_usage,
        }
        events.append(fmt.event("message_delta", delta))
        events.append(fmt.MESSAGE_STOP)
        return exchange.stream(events, prompt_tokens=total, completion_tokens=output_tokens)

    async def count_tokens(self, request: Request) -> Response:
        exchange = await begin(self.state, ANTHROPIC, request)
        if not isinstance(exchange, Exchange):
            return exchange
        try:
            req = parse_messages(exchange.body, require_max_tokens=False)
        except Invalid as problem:
            return exchange.invalid(problem)
        return exchange.json({"input_tokens": req.prompt_tokens})

    async def list_models(self, request: Request) -> Response:
        exchange = await begin(self.state, ANTHROPIC, request, has_body=False)
        if not isinstance(exchange, Exchange):
            return exchange
        params = request.query_params
        try:
            limit = int(params.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return exchange.error(400, "limit: Input should be an integer between 1 and 1000")
        models = list(ANTHROPIC_MODELS)
        ids = [model.id for model in models]
        if (after := params.get("after_id")) in ids:
            models = models[ids.index(after) + 1 :]
        elif (before := params.get("before_id")) in ids:
            models = models[: ids.index(before)][-limit:]
        page = models[:limit]
        return exchange.json(
            {
                "data": [_model_object(model) for model in page],
                "has_more": len(models) > len(page),
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            }
        )

    async def retrieve_model(self, request: Request) -> Response:
        exchange = await begin(self.state, ANTHROPIC, request, has_body=False)
        if not isinstance(exchange, Exchange):
            return exchange
        model_id = request.path_params["model"]
        model = ANTHROPIC_BY_ID.get(model_id)
        if model is None:
            return exchange.error(404, f"model: {model_id}")
        return exchange.json(_model_object(model))


def parse_messages(body: dict[str, Any], *, require_max_tokens: bool = True) -> MessagesRequest:
    """Validate a Messages request the way the vendor does (the parts the mock acts on) and extract what it needs."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if max_tokens is None and require_max_tokens:
        raise Invalid("max_tokens: Field required")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise Invalid("max_tokens: Input should be an integer greater than or equal to 1")
    messages = body.get("messages")
    if messages is None:
        raise Invalid("messages: Field required")
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: List should have at least 1 item after validation, not 0")
    prompt_tokens = count_tokens(_system_text(body.get("system")))
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise Invalid(f"messages.{position}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if content.__class__ is not str:
            check_content(f"messages.{position}.content", content)
        prompt_tokens += count_tokens(_content_text(content, with_tool_use=True))
    check_fields(body)
    last = messages[-1]
    content = last.get("content")
    answers_tool = isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )
    last_text = _content_text(content)
    stop_sequences = body.get("stop_sequences") or []
    if not isinstance(stop_sequences, list) or not all(isinstance(item, str) for item in stop_sequences):
        raise Invalid("stop_sequences: Input should be a valid list of strings")
    tools = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"), tools)
    return MessagesRequest(
        model=model,
        max_tokens=max_tokens or 0,
        stream=body.get("stream") is True,
        stop_sequences=stop_sequences,
        tools=tools,
        tool_choice=choice,
        parallel=not (
            isinstance(body.get("tool_choice"), dict) and body["tool_choice"].get("disable_parallel_tool_use")
        ),
        prompt_tokens=prompt_tokens,
        last_text=last_text,
        user_text=last_text if last.get("role") == "user" and not answers_tool else None,
        output_schema=_output_schema(body.get("output_config")),
    )


def _output_schema(config: Any) -> dict[str, Any] | None:
    """The schema of `output_config.format` (`{"type": "json_schema", "schema": {...}}`), else None."""
    wanted = config.get("format") if isinstance(config, dict) else None
    if not isinstance(wanted, dict) or wanted.get("type") != "json_schema":
        return None
    schema = wanted.get("schema")
    if not isinstance(schema, dict):
        raise Invalid("output_config.format.schema: Field required")
    return schema


def _block_events(events: list[bytes], index: int, block: dict[str, Any], chunks: int | None) -> None:
    """One content block as Anthropic streams it; the ping follows the first block's start."""
    if block["type"] == "text":
        start = {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
        pieces = [fmt.text_delta(index, piece) for piece in group_pieces(token_pieces(block["text"]), chunks)]
    else:
        head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        start = {"type": "content_block_start", "index": index, "content_block": head}
        arguments = orjson.dumps(block["input"]).decode()
        pieces = [
            fmt.json_delta(index, ""),
            *(fmt.json_delta(index, p) for p in group_pieces(token_pieces(arguments), chunks)),
        ]
    events.append(fmt.event("content_block_start", start))
    if index == 0:
        events.append(fmt.PING)
    events.extend(pieces)
    events.append(fmt.event("content_block_stop", {"type": "content_block_stop", "index": index}))


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    return _content_text(system) if isinstance(system, list) else ""


def _content_text(content: Any, *, with_tool_use: bool = False) -> str:
    """Text of a content value: the string, or text blocks and tool results (and tool uses, when counting)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "tool_result":
            parts.append(_content_text(block.get("content")))
        elif kind == "tool_use" and with_tool_use:
            parts.append(f"{block.get('name', '')} {orjson.dumps(block.get('input', {})).decode()}")
    return "\n".join(parts)


def _tools(tools: Any) -> list[ToolSpec]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise Invalid("tools: Input should be a valid list")
    specs = []
    for position, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise Invalid(f"tools.{position}.name: Field required")
        if "type" not in tool and not isinstance(tool.get("input_schema"), dict):
            raise Invalid(f"tools.{position}.custom.input_schema: Field required")
        specs.append(ToolSpec(tool["name"], tool.get("input_schema") or {}))
    return specs


def _tool_choice(choice: Any, tools: list[ToolSpec]) -> ToolChoice:
    if choice is None:
        return ToolChoice()
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        return ToolChoice()
    if kind == "none":
        return ToolChoice("none")
    if kind == "any":
        return ToolChoice("force")
    if kind == "tool":
        name = choice.get("name")
        if name not in {tool.name for tool in tools}:
            raise Invalid(f"tool_choice: tool {name!r} is not among the provided tools")
        return ToolChoice("force", name)
    raise Invalid("tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'")


def _model_object(model: AnthropicModel) -> dict[str, Any]:
    return {"type": "model", "id": model.id, "display_name": model.display_name, "created_at": model.created_at}
