"""OpenAI endpoints: chat completions, legacy completions, embeddings and models.

Prompt tokens (chat) are the tokens of every message's text (string content, or its `text` parts) plus the name and
arguments of assistant tool calls; nothing is added per message and tool definitions are not counted. Legacy
completions count each prompt; embeddings count each input (a token-array input counts its length).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from . import openai_format as fmt
from . import openai_params as params
from .catalog import OPENAI_BY_ID, OPENAI_MODELS
from .exchange import Exchange, Invalid, MockState, begin
from .openai_content import check_message
from .openai_fields import CHAT, COMPLETIONS, EMBEDDINGS, check_fields
from .tokens import Reply, compose_reply, count_tokens, echo, group_pieces, token_pieces
from .tools import ToolChoice, ToolSpec, pick_tools, synthesize
from .vectors import embedding_base64, embedding_vector

OPENAI = fmt.OpenAIFormat()
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length"}


def _named_stop(reply: Reply | None) -> str | None:
    """vLLM's `stop_reason` (the `name_stop` option): the stop sequence that ended the reply, else null."""
    return reply.stop_sequence if reply is not None else None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    n: int
    stream: bool
    include_usage: bool
    max_tokens: int | None
    stop: list[str]
    tools: list[ToolSpec]
    tool_choice: ToolChoice
    parallel: bool
    prompt_tokens: int
    last_text: str
    user_text: str | None  # the last message's text when it is a user turn (tool-call trigger)
    json_schema: Any  # None: plain text; {}: json_object; a schema: json_schema


@dataclass(frozen=True, slots=True)
class Call:
    id: str
    name: str
    arguments: str


class OpenAIApi:
    """The OpenAI routes; each method is a Starlette endpoint."""

    def __init__(self, state: MockState) -> None:
        self.state = state

    async def chat_completions(self, request: Request) -> Response:
        exchange = await begin(self.state, OPENAI, request)
        if not isinstance(exchange, Exchange):
            return exchange
        try:
            chat = parse_chat(exchange.body)
        except Invalid as problem:
            return exchange.invalid(problem)
        plan = exchange.plan
        picked = pick_tools(chat.user_text, chat.tools, chat.tool_choice, parallel=chat.parallel)
        calls = [[_call(exchange, tool) for tool in picked] for _ in range(chat.n)]
        reply = None if picked else _chat_reply(chat, plan.reply_tokens)
        per_choice = sum(count_tokens(c.name) + count_tokens(c.arguments) for c in calls[0]) if picked else 0
        completion_tokens = chat.n * (reply.tokens if reply is not None else per_choice)
        usage = fmt.usage(chat.prompt_tokens, completion_tokens, plan.cached_tokens)
        completion_id, created = exchange.id("chatcmpl-"), int(time.time())
        finish = "tool_calls" if reply is None else _FINISH[reply.finish]
        if not chat.stream:
            choices = [
                fmt.chat_choice(
                    index,
                    None if reply is None else reply.text,
                    [fmt.tool_call(c.id, c.name, c.arguments) for c in calls[index]],
                    finish,
                )
                for index in range(chat.n)
            ]
            if plan.name_stop:
                choices = [{**choice, "stop_reason": _named_stop(reply)} for choice in choices]
            payload = fmt.chat_completion(completion_id, created, chat.model, choices, usage)
            return exchange.json(payload, prompt_tokens=chat.prompt_tokens, completion_tokens=completion_tokens)
        encoder = fmt.ChunkEncoder(
            completion_id, "chat.completion.chunk", created, chat.model, include_usage=chat.include_usage
        )
        events: list[bytes] = []
        for index in range(chat.n):
            if reply is None:
                _tool_call_chunks(events, encoder, index, calls[index], plan.chunks)
            else:
                events.append(encoder.delta(index, {"role": "assistant", "content": "", "refusal": None}))
                events.extend(
                    encoder.content(index, piece) for piece in group_pieces(token_pieces(reply.text), plan.chunks)
                )
            if plan.name_stop:
                named = {"stop_reason": _named_stop(reply)}
                events.append(encoder.choice({"index": index, "delta": {}, "finish_reason": finish, **named}))
            else:
                events.append(encoder.delta(index, {}, finish))
        if chat.include_usage:
            events.append(encoder.usage(usage))
        events.append(fmt.DONE)
        return exchange.stream(events, prompt_tokens=chat.prompt_tokens, completion_tokens=completion_tokens)

    async def completions(self, request: Request) -> Response:
        exchange = await begin(self.state, OPENAI, request)
        if not isinstance(exchange, Exchange):
            return exchange
        body = exchange.body
        try:
            model = params.model(body)
            prompts = params.prompts(body)
            check_fields(body, COMPLETIONS)
            max_tokens = params.optional_int(body, "max_tokens", 0, None)
            n = params.optional_int(body, "n", 1, 128) or 1
            stop = params.stop(body)
            stream, include_usage = params.stream_flags(body)
        except Invalid as problem:
            return exchange.invalid(problem)
        limit = 16 if max_tokens is None else max_tokens  # the legacy endpoint's documented default
        echo_prompt = body.get("echo") is True
        replies: list[tuple[str, Reply]] = []
        for text, _ in prompts:
            reply = compose_reply(echo(text), max_tokens=limit, stop=stop, reply_tokens=exchange.plan.reply_tokens)
            replies.extend(((text if echo_prompt else "") + reply.text, reply) for _ in range(n))
        prompt_tokens = sum(tokens for _, tokens in prompts)
        completion_tokens = sum(reply.tokens for _, reply in replies)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        completion_id, created = exchange.id("cmpl-"), int(time.time())
        if not stream:
            choices = [
                {"text": text, "index": index, "logprobs": None, "finish_reason": _FINISH[reply.finish]}
                for index, (text, reply) in enumerate(replies)
            ]
            payload = fmt.text_completion(completion_id, created, model, choices, usage)
            return exchange.json(payload, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        encoder = fmt.ChunkEncoder(completion_id, "text_completion", created, model, include_usage=include_usage)
        events: list[bytes] = []
        for index, (text, reply) in enumerate(replies):
            events.extend(
                encoder.content(index, piece) for piece in group_pieces(token_pieces(text), exchange.plan.chunks)
            )
            events.append(encoder.text_finish(index, _FINISH[reply.finish]))
        if include_usage:
            events.append(encoder.usage(usage))
        events.append(fmt.DONE)
        return exchange.stream(events, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    async def embeddings(self, request: Request) -> Response:
        exchange = await begin(self.state, OPENAI, request)
        if not isinstance(exchange, Exchange):
            return exchange
        body = exchange.body
        try:
            model = params.model(body)
            inputs = params.embedding_inputs(body)
            dimensions = params.dimensions(body, model)
            check_fields(body, EMBEDDINGS)
            encoding = body.get("encoding_format") or "float"
        except Invalid as problem:
            return exchange.invalid(problem)
        encode = embedding_base64 if encoding == "base64" else embedding_vector
        data = [
            {"object": "embedding", "index": index, "embedding": encode(key, dimensions)}
            for index, (key, _) in enumerate(inputs)
        ]
        tokens = sum(count for _, count in inputs)
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return exchange.json(payload, prompt_tokens=tokens)

    async def list_models(self, request: Request) -> Response:
        exchange = await begin(self.state, OPENAI, request, has_body=False)
        if not isinstance(exchange, Exchange):
            return exchange
        return exchange.json({"object": "list", "data": [_model_object(model.id) for model in OPENAI_MODELS]})

    async def retrieve_model(self, request: Request) -> Response:
        exchange = await begin(self.state, OPENAI, request, has_body=False)
        if not isinstance(exchange, Exchange):
            return exchange
        model_id = request.path_params["model"]
        if model_id not in OPENAI_BY_ID:
            message = f"The model '{model_id}' does not exist or you do not have access to it."
            return exchange.error(404, message, param="model", code="model_not_found")
        return exchange.json(_model_object(model_id))


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    """Validate a chat request the way the vendor does (the parts the mock acts on) and extract what it needs."""
    model = params.model(body)
    messages = body.get("messages")
    if messages is None:
        raise Invalid("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise Invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    prompt_tokens = 0
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            role = message.get("role") if isinstance(message, dict) else None
            raise Invalid(
                f"Invalid value: {role!r}. Supported values are: {', '.join(repr(r) for r in _ROLES)}.",
                param=f"messages[{position}].role",
                code="invalid_value",
            )
        check_message(position, message, message["role"])
        prompt_tokens += count_tokens(_text(message.get("content")))
        tool_calls = message.get("tool_calls")
        for call in tool_calls if isinstance(tool_calls, list) else ():
            function = call.get("function", {}) if isinstance(call, dict) else {}
            prompt_tokens += count_tokens(str(function.get("name", ""))) + count_tokens(
                str(function.get("arguments", ""))
            )
    check_fields(body, CHAT)
    last = messages[-1]
    last_text = _text(last.get("content"))
    max_tokens = params.optional_int(body, "max_completion_tokens", 1, None)
    if max_tokens is None:
        max_tokens = params.optional_int(body, "max_tokens", 1, None)
    stream, include_usage = params.stream_flags(body)
    tools = params.tools(body)
    return ChatRequest(
        model=model,
        n=params.optional_int(body, "n", 1, 128) or 1,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        stop=params.stop(body),
        tools=tools,
        tool_choice=params.tool_choice(body.get("tool_choice"), tools),
        parallel=body.get("parallel_tool_calls") is not False,
        prompt_tokens=prompt_tokens,
        last_text=last_text,
        user_text=last_text if last.get("role") == "user" else None,
        json_schema=params.json_schema(body.get("response_format")),
    )


def _chat_reply(chat: ChatRequest, reply_tokens: int | None) -> Reply:
    if chat.json_schema is None:
        text = echo(chat.last_text)
    elif chat.json_schema == {}:
        text = orjson.dumps({"echo": chat.last_text}).decode()
    else:
        text = orjson.dumps(synthesize(chat.json_schema)).decode()
    return compose_reply(text, max_tokens=chat.max_tokens, stop=chat.stop, reply_tokens=reply_tokens)


def _call(exchange: Exchange, tool: ToolSpec) -> Call:
    return Call(exchange.id("call_"), tool.name, orjson.dumps(synthesize(tool.schema)).decode())


def _tool_call_chunks(
    events: list[bytes], encoder: fmt.ChunkEncoder, index: int, calls: list[Call], chunks: int | None
) -> None:
    """OpenAI's tool-call stream: the call's id and name with empty arguments, then argument fragments."""
    for position, call in enumerate(calls):
        head = {"index": position, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        if position == 0:
            events.append(
                encoder.delta(index, {"role": "assistant", "content": None, "tool_calls": [head], "refusal": None})
            )
        else:
            events.append(encoder.delta(index, {"tool_calls": [head]}))
        for piece in group_pieces(token_pieces(call.arguments), chunks):
            events.append(encoder.delta(index, {"tool_calls": [{"index": position, "function": {"arguments": piece}}]}))


def _text(content: Any) -> str:
    """The text of a message's content: a string, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text")
        )
    return ""


def _model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": OPENAI_BY_ID[model_id].created, "owned_by": "system"}
