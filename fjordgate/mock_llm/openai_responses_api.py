"""OpenAI's Responses API (`POST /v1/responses`), streamed and not, in api.openai.com's wire format.

The reply follows the chat endpoint's rules: it echoes the text of the last input item (a message's text parts,
or a `function_call_output`'s output) after `Echo: `; a last user message saying "call tool [name]" (or a forced
`tool_choice`) yields `function_call` items instead. `max_output_tokens` cuts the reply and the response is
`incomplete` (`incomplete_details.reason = max_output_tokens`). Input tokens are the tokens of every text in
`instructions` and `input`. The mock remembers the ids it issued (the last 10,000): a `previous_response_id` it
never issued is a 400 `previous_response_not_found`, as OpenAI answers; it does not use the earlier turns.
Streams are `event: <type>` + `data: {...}` pairs with a `sequence_number`, ending with `response.completed`.
`error_after_chunks` ends one as api.openai.com ends a failing stream: `event: error` (`code`, `message`,
`param`, `sequence_number` at the top: the SDK yields it as a `ResponseErrorEvent`, it does not raise), then
`event: response.failed` with the response `failed` and its `error`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from . import openai_params as params
from .exchange import Exchange, Invalid, MockState, begin
from .openai_api import OPENAI
from .openai_content import check_function
from .openai_fields import RESPONSES, check_fields, missing, string, unsupported, wrong_type
from .openai_format import SERVER_ERROR
from .tokens import compose_reply, count_tokens, echo, group_pieces, token_pieces
from .tools import ToolChoice, ToolSpec, pick_tools, synthesize

_REMEMBERED = 10_000
_ROLES = ("user", "assistant", "system", "developer")
_PART_TYPES = ("input_text", "input_image", "input_file", "input_audio", "output_text", "refusal")
_PART_TEXT = {"input_text": "text", "output_text": "text", "refusal": "refusal"}
_CALL_FIELDS = {"function_call": ("call_id", "name", "arguments"), "function_call_output": ("call_id", "output")}


class OpenAIResponsesApi:
    def __init__(self, state: MockState) -> None:
        self.state = state
        self.issued: OrderedDict[str, None] = OrderedDict()

    async def create(self, request: Request) -> Response:
        exchange = await begin(self.state, OPENAI, request)
        if not isinstance(exchange, Exchange):
            return exchange
        body = exchange.body
        try:
            model = params.model(body)
            check_fields(body, RESPONSES)
            items = _items(body)
            tools = _tools(body)
            choice = _tool_choice(body.get("tool_choice"), tools)
            max_tokens = params.optional_int(body, "max_output_tokens", 16, None)
            previous = body.get("previous_response_id")
            if previous is not None and previous not in self.issued:
                raise Invalid(
                    f"Previous response with id '{previous}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
        except Invalid as problem:
            return exchange.invalid(problem)
        last = items[-1] if items else {}
        user_text = _text(last.get("content")) if last.get("role") == "user" else None
        picked = pick_tools(user_text, tools, choice, parallel=body.get("parallel_tool_calls") is not False)
        input_tokens = count_tokens(str(body.get("instructions") or "")) + sum(
            count_tokens(_item_text(i)) for i in items
        )
        response_id = exchange.id("resp_")
        self.issued[response_id] = None
        if len(self.issued) > _REMEMBERED:
            self.issued.popitem(last=False)
        head = _Response(response_id, model, body)
        if picked:
            calls = [
                (exchange.id("fc_"), exchange.id("call_"), t.name, orjson.dumps(synthesize(t.schema)).decode())
                for t in picked
            ]
            output_tokens = sum(count_tokens(name) + count_tokens(args) for _, _, name, args in calls)
            output = [_function_item(*call) for call in calls]
            reason = None
            pieces: list[str] = []
            message_id = ""
        else:
            reply = compose_reply(
                echo(_item_text(last)), max_tokens=max_tokens, stop=[], reply_tokens=exchange.plan.reply_tokens
            )
            output_tokens = reply.tokens
            message_id = exchange.id("msg_")
            output = [_message_item(message_id, reply.text)]
            reason = "max_output_tokens" if reply.finish == "length" else None
            pieces = group_pieces(token_pieces(reply.text), exchange.plan.chunks)
            calls = []
        usage = _usage(input_tokens, output_tokens)
        final = head.build("incomplete" if reason else "completed", output, usage, reason)
        if body.get("stream") is not True:
            return exchange.json(final, prompt_tokens=input_tokens, completion_tokens=output_tokens)
        events = _Events()
        started = head.build("in_progress", [], None, None)
        events.add("response.created", response=started)
        events.add("response.in_progress", response=started)
        if calls:
            for index, (item_id, call_id, name, arguments) in enumerate(calls):
                events.add(
                    "response.output_item.added",
                    output_index=index,
                    item={**_function_item(item_id, call_id, name, ""), "status": "in_progress"},
                )
                for piece in group_pieces(token_pieces(arguments), exchange.plan.chunks):
                    events.add(
                        "response.function_call_arguments.delta", item_id=item_id, output_index=index, delta=piece
                    )
                events.add(
                    "response.function_call_arguments.done", item_id=item_id, output_index=index, arguments=arguments
                )
                events.add("response.output_item.done", output_index=index, item=output[index])
        else:
            text = output[0]["content"][0]
            where = {"item_id": message_id, "output_index": 0}
            events.add(
                "response.output_item.added", output_index=0, item={**output[0], "status": "in_progress", "content": []}
            )
            events.add("response.content_part.added", **where, content_index=0, part={**text, "text": ""})
            for piece in pieces:
                events.add("response.output_text.delta", **where, content_index=0, delta=piece, logprobs=[])
            events.add("response.output_text.done", **where, content_index=0, text=text["text"], logprobs=[])
            events.add("response.content_part.done", **where, content_index=0, part=text)
            events.add("response.output_item.done", output_index=0, item=output[0])
        events.add("response.incomplete" if reason else "response.completed", response=final)
        failing = None
        if exchange.plan.error_after_chunks is not None:  # numbered after the events sent (EventStream's cut)
            sent = min(exchange.plan.error_after_chunks, len(events.out) - 1)
            failing = _failure(sent, head.build("failed", [], None, None))
        return exchange.stream(
            events.out, prompt_tokens=input_tokens, completion_tokens=output_tokens, error_event=failing
        )


def _failure(sequence: int, response: dict[str, Any]) -> bytes:
    """OpenAI's end of a failing Responses stream: `error`, then `response.failed` (`sequence` is the next)."""
    error = {"code": "server_error", "message": SERVER_ERROR}
    events = _Events(sequence)
    events.add("error", **error, param=None)
    events.add("response.failed", response={**response, "error": error})
    return b"".join(events.out)


class _Events:
    def __init__(self, first: int = 0) -> None:
        self.out: list[bytes] = []
        self.first = first
        """The `sequence_number` of the first event (events that follow others already sent)."""

    def add(self, kind: str, **payload: Any) -> None:
        data = orjson.dumps({"type": kind, "sequence_number": self.first + len(self.out), **payload})
        self.out.append(b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n")


class _Response:
    def __init__(self, response_id: str, model: str, body: dict[str, Any]) -> None:
        self.id = response_id
        self.model = model
        self.body = body
        self.created = int(time.time())

    def build(
        self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None, reason: str | None
    ) -> dict[str, Any]:
        body = self.body
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": reason} if reason else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True) is not False,
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _message_item(item_id: str, text: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": item_id, "status": "completed", "role": "assistant", "content": content}


def _function_item(item_id: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if raw is None and body.get("previous_response_id") is not None:
        return []
    if not isinstance(raw, list):
        raise Invalid("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    for position, item in enumerate(raw):
        if not isinstance(item, dict):
            raise wrong_type(f"input[{position}]", "an object", item)
        _check_item(f"input[{position}]", item)
    return raw


def _check_item(param: str, item: dict[str, Any]) -> None:
    """The input items the mock reads (messages, function calls and their outputs); other kinds pass."""
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role is None:
            raise missing(f"{param}.role")
        if role not in _ROLES:
            raise unsupported(f"{param}.role", role, _ROLES)
        content = item.get("content")
        if content is None:
            raise missing(f"{param}.content")
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            raise wrong_type(f"{param}.content", "one of a string or array of objects", content)
        for index, part in enumerate(content):
            _check_part(f"{param}.content[{index}]", part)
    elif kind in _CALL_FIELDS:
        for field in _CALL_FIELDS[kind]:
            if item.get(field) is None:
                raise missing(f"{param}.{field}")
            if field != "output" or not isinstance(item[field], list):
                string(f"{param}.{field}", item[field])


def _check_part(param: str, part: Any) -> None:
    if not isinstance(part, dict):
        raise wrong_type(param, "an object", part)
    kind = part.get("type")
    if kind is None:
        raise missing(f"{param}.type")
    if kind not in _PART_TYPES:
        raise unsupported(f"{param}.type", kind, _PART_TYPES)
    field = _PART_TEXT.get(kind)
    if field is not None:
        if part.get(field) is None:
            raise missing(f"{param}.{field}")
        string(f"{param}.{field}", part[field])


def _tools(body: dict[str, Any]) -> list[ToolSpec]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise Invalid("Invalid 'tools': expected an array.", param="tools", code="invalid_type")
    specs = []
    for position, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue  # built-in tools: the mock never calls them
        check_function(f"tools[{position}]", tool)
        specs.append(ToolSpec(tool["name"], tool.get("parameters") or {}))
    return specs


def _tool_choice(choice: Any, tools: list[ToolSpec]) -> ToolChoice:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return params.tool_choice({"type": "function", "function": {"name": choice.get("name")}}, tools)
    return params.tool_choice(choice, tools)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("input_text", "output_text")
        )
    return ""


def _item_text(item: dict[str, Any]) -> str:
    if item.get("type") == "function_call_output":
        output = item.get("output")
        return output if isinstance(output, str) else _text(output)
    if item.get("type") == "function_call":
        return f"{item.get('name', '')} {item.get('arguments', '')}"
    return _text(item.get("content"))
