"""Google Gemini API endpoints (`/v1beta/models/...`): generateContent, streamGenerateContent (SSE with
`alt=sse`, else one JSON array), countTokens, embedContent, batchEmbedContents, and the model list.

Same rules as the other vendors (`docs/mock-llm.md`): the reply echoes the last turn's text, tokens follow
`tokens.count_tokens`, tools are called on `call tool` (or a forcing `toolConfig`), faults come from the
`x-mock-fault` header or the body's `mock` field. Prompt tokens: the system instruction and every part's text,
function calls (name and args JSON) and function responses (name and response JSON). With
`generationConfig.thinkingConfig.includeThoughts` the answer starts with a `thought: true` part, counted in
`thoughtsTokenCount`. Models named `gemini-3...` sign their function calls and check the signatures
(`thought_signatures.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from . import gemini_format as fmt
from . import gemini_params
from .exchange import Exchange, Invalid, MockState, begin
from .thought_signatures import check_signatures, signature_for, signs
from .tokens import compose_reply, count_tokens, echo, group_pieces, token_pieces
from .tools import ToolChoice, ToolSpec, pick_tools, synthesize
from .vectors import embedding_vector

_FINISH = {"stop": "STOP", "stop_sequence": "STOP", "length": "MAX_TOKENS"}
_MODES = {"AUTO": "auto", "ANY": "force", "NONE": "none", "VALIDATED": "auto"}


@dataclass(frozen=True, slots=True)
class GeminiModel:
    name: str
    display_name: str
    input_limit: int
    output_limit: int
    methods: tuple[str, ...]
    dimensions: int = 0


_GENERATE = ("generateContent", "countTokens", "streamGenerateContent")
GEMINI_MODELS: tuple[GeminiModel, ...] = (
    GeminiModel("gemini-2.5-pro", "Gemini 2.5 Pro", 1048576, 65536, _GENERATE),
    GeminiModel("gemini-2.5-flash", "Gemini 2.5 Flash", 1048576, 65536, _GENERATE),
    GeminiModel("gemini-2.0-flash", "Gemini 2.0 Flash", 1048576, 8192, _GENERATE),
    GeminiModel("gemini-embedding-001", "Gemini Embedding 001", 2048, 1, ("embedContent",), 3072),
    GeminiModel("text-embedding-004", "Text Embedding 004", 2048, 1, ("embedContent",), 768),
)
GEMINI_BY_NAME = {model.name: model for model in GEMINI_MODELS}


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    max_tokens: int | None
    stop: list[str]
    tools: list[ToolSpec]
    choice: ToolChoice
    thoughts: bool
    prompt_tokens: int
    last_text: str
    user_text: str | None


def _get(body: dict[str, Any], camel: str) -> Any:
    """A field by its JSON (camelCase) name or its proto (snake_case) name: Google accepts both."""
    if camel in body:
        return body[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return body.get(snake)


def _part_text(part: Any, *, counting: bool) -> str:
    if not isinstance(part, dict):
        return ""
    if isinstance(part.get("text"), str):
        return str(part["text"])
    call = _get(part, "functionCall")
    if isinstance(call, dict) and counting:
        return f"{call.get('name', '')} {orjson.dumps(call.get('args') or {}).decode()}"
    result = _get(part, "functionResponse")
    if isinstance(result, dict):
        response = result.get("response")
        if isinstance(response, dict) and len(response) == 1 and isinstance(next(iter(response.values())), str):
            return str(next(iter(response.values())))
        return orjson.dumps(response or {}).decode()
    return ""


def _content_text(content: Any, *, counting: bool = False) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return "\n".join(t for t in (_part_text(p, counting=counting) for p in parts) if t)


def _tools(body: dict[str, Any]) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise Invalid("Invalid value at 'tools' (type.googleapis.com/google.ai.generativelanguage.v1beta.Tool)")
    for position, tool in enumerate(tools):
        for declaration in (_get(tool, "functionDeclarations") or []) if isinstance(tool, dict) else []:
            name = declaration.get("name") if isinstance(declaration, dict) else None
            if not isinstance(name, str) or not name:
                raise Invalid(f"* GenerateContentRequest.tools[{position}].function_declarations: name is required")
            schema = declaration.get("parameters") or _get(declaration, "parametersJsonSchema") or {}
            specs.append(ToolSpec(name, _json_schema(schema) if isinstance(schema, dict) else {}))
    return specs


def _choice(body: dict[str, Any], tools: list[ToolSpec]) -> ToolChoice:
    config = _get(_get(body, "toolConfig") or {}, "functionCallingConfig") or {}
    mode = _MODES.get(str(config.get("mode", "AUTO")).upper())
    if mode is None:
        raise Invalid(f"Invalid value at 'tool_config.function_calling_config.mode' ({config.get('mode')!r})")
    allowed = _get(config, "allowedFunctionNames") or []
    name = allowed[0] if mode == "force" and isinstance(allowed, list) and len(allowed) == 1 else None
    if name is not None and name not in {t.name for t in tools}:
        raise Invalid(f"allowed_function_names: function {name!r} is not declared")
    return ToolChoice(mode, name)


def _json_schema(value: Any) -> Any:
    """Gemini's schema (OpenAPI subset: types such as "OBJECT", "STRING") as the JSON schema `synthesize` reads."""
    if isinstance(value, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _json_schema(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_schema(v) for v in value]
    return value


def parse_generate(body: dict[str, Any]) -> GenerateRequest:
    """Validate a generateContent body the way Google does (the parts the mock acts on)."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    system = _get(body, "systemInstruction")
    if system is not None:
        gemini_params.content(system)
    prompt = count_tokens(_content_text(system))
    for position, content in enumerate(contents):
        gemini_params.content(content, position)
        prompt += count_tokens(_content_text(content, counting=True))
    config = _get(body, "generationConfig")
    if config is None:
        config = {}
    else:
        gemini_params.generation_config(config)
    max_tokens = _get(config, "maxOutputTokens")
    if max_tokens is not None:
        max_tokens = int(float(max_tokens))
    stop = _get(config, "stopSequences") or []
    tools = _tools(body)
    last = contents[-1]
    answers_tool = any(isinstance(p, dict) and _get(p, "functionResponse") for p in last.get("parts") or ())
    text = _content_text(last)
    return GenerateRequest(
        max_tokens=max_tokens,
        stop=[s for s in stop if isinstance(s, str)],
        tools=tools,
        choice=_choice(body, tools),
        thoughts=bool(_get(_get(config, "thinkingConfig") or {}, "includeThoughts")),
        prompt_tokens=prompt,
        last_text=text,
        user_text=text if last.get("role", "user") == "user" and not answers_tool else None,
    )


class GeminiApi:
    """The Gemini routes. `dispatch` serves `POST /v1beta/models/{model}:{method}`."""

    def __init__(self, state: MockState) -> None:
        self.state = state

    async def _begin(self, request: Request, *, has_body: bool = True) -> Exchange | Response:
        return await begin(self.state, fmt.GeminiFormat(request.query_params.get("key")), request, has_body=has_body)

    async def dispatch(self, request: Request) -> Response:
        model, _, method = request.path_params["target"].rpartition(":")
        handler = {
            "generateContent": self._generate,
            "streamGenerateContent": self._generate,
            "countTokens": self._count,
            "embedContent": self._embed,
            "batchEmbedContents": self._embed,
        }.get(method)
        exchange = await self._begin(request)
        if not isinstance(exchange, Exchange):
            return exchange
        if handler is None or not model:
            return exchange.error(404, f"Method {method!r} is not found for models/{model}.")
        return handler(exchange, model, method, request.query_params.get("alt") == "sse")

    def _generate(self, exchange: Exchange, model: str, method: str, sse: bool) -> Response:
        try:
            req = parse_generate(exchange.body)
            if signs(model):
                check_signatures(exchange.body["contents"])
        except Invalid as problem:
            return exchange.invalid(problem)
        parts, finish, output, thoughts = self._answer(exchange, req)
        if signs(model):
            first_call = next((part for part in parts if "functionCall" in part), None)
            if first_call is not None:
                first_call["thoughtSignature"] = signature_for(first_call["functionCall"]["name"])
        cached = min(exchange.plan.cached_tokens, req.prompt_tokens)
        usage = fmt.usage_metadata(req.prompt_tokens, output, thoughts, cached)
        response_id = exchange.id("")
        if method == "generateContent":
            body = fmt.response(parts, finish, usage, model, response_id)
            return exchange.json(body, prompt_tokens=req.prompt_tokens, completion_tokens=output + thoughts)
        chunks = [fmt.response([part], None, None, model, response_id) for part in _pieces(parts, exchange.plan.chunks)]
        chunks[-1] = fmt.response(chunks[-1]["candidates"][0]["content"]["parts"], finish, usage, model, response_id)
        if sse:
            events = [fmt.sse(chunk) for chunk in chunks]
            return exchange.stream(events, prompt_tokens=req.prompt_tokens, completion_tokens=output + thoughts)
        return exchange.stream(
            fmt.json_array(chunks),
            prompt_tokens=req.prompt_tokens,
            completion_tokens=output + thoughts,
            content_type=b"application/json; charset=UTF-8",
        )

    def _answer(self, exchange: Exchange, req: GenerateRequest) -> tuple[list[dict[str, Any]], str, int, int]:
        """(parts, finishReason, candidate tokens, thought tokens) of the mock's answer."""
        parts: list[dict[str, Any]] = []
        thoughts = 0
        if req.thoughts:
            thought = f"Thinking about: {req.last_text}".rstrip()
            thoughts = count_tokens(thought)
            parts.append({"text": thought, "thought": True})
        picked = pick_tools(req.user_text, req.tools, req.choice)
        if picked:
            calls = [{"functionCall": {"name": t.name, "args": synthesize(t.schema)}} for t in picked]
            output = sum(
                count_tokens(c["functionCall"]["name"]) + count_tokens(orjson.dumps(c["functionCall"]["args"]).decode())
                for c in calls
            )
            return [*parts, *calls], "STOP", output, thoughts
        reply = compose_reply(
            echo(req.last_text), max_tokens=req.max_tokens, stop=req.stop, reply_tokens=exchange.plan.reply_tokens
        )
        parts.append({"text": reply.text})
        return parts, _FINISH[reply.finish], reply.tokens, thoughts

    def _count(self, exchange: Exchange, model: str, method: str, sse: bool) -> Response:
        body = exchange.body
        inner = _get(body, "generateContentRequest")
        try:
            req = parse_generate(inner if isinstance(inner, dict) else body)
        except Invalid as problem:
            return exchange.invalid(problem)
        details = [{"modality": "TEXT", "tokenCount": req.prompt_tokens}]
        return exchange.json({"totalTokens": req.prompt_tokens, "promptTokensDetails": details})

    def _embed(self, exchange: Exchange, model: str, method: str, sse: bool) -> Response:
        known = GEMINI_BY_NAME.get(model.removeprefix("models/"))
        native = known.dimensions if known is not None and known.dimensions else 768
        body = exchange.body
        requests = body.get("requests") if method == "batchEmbedContents" else [body]
        if not isinstance(requests, list) or not requests:
            return exchange.error(400, "* BatchEmbedContentsRequest.requests: requests is not specified")
        vectors = []
        tokens = 0
        for request in requests:
            text = _content_text(request.get("content") if isinstance(request, dict) else None)
            if not text:
                return exchange.error(400, "* EmbedContentRequest.content: content is not specified")
            size = _get(request, "outputDimensionality") or native
            if not isinstance(size, int) or not 1 <= size <= native:
                return exchange.error(400, f"output_dimensionality must be between 1 and {native}")
            tokens += count_tokens(text)
            vectors.append({"values": list(embedding_vector(text, size))})
        if method == "embedContent":
            return exchange.json({"embedding": vectors[0]}, prompt_tokens=tokens)
        return exchange.json({"embeddings": vectors}, prompt_tokens=tokens)

    async def list_models(self, request: Request) -> Response:
        exchange = await self._begin(request, has_body=False)
        if not isinstance(exchange, Exchange):
            return exchange
        raw_size, token = request.query_params.get("pageSize", "50"), request.query_params.get("pageToken", "0")
        if not raw_size.isdigit() or not token.isdigit():
            return exchange.error(400, "Invalid page_size or page_token.")
        start, size = int(token), max(1, min(int(raw_size) or 50, 1000))
        page = GEMINI_MODELS[start : start + size]
        body: dict[str, Any] = {"models": [model_object(m) for m in page]}
        if start + size < len(GEMINI_MODELS):
            body["nextPageToken"] = str(start + size)
        return exchange.json(body)

    async def retrieve_model(self, request: Request) -> Response:
        exchange = await self._begin(request, has_body=False)
        if not isinstance(exchange, Exchange):
            return exchange
        name = request.path_params["model"].removeprefix("models/")
        model = GEMINI_BY_NAME.get(name)
        if model is None:
            return exchange.error(404, f"models/{name} is not found for API version v1beta.")
        return exchange.json(model_object(model))


def _pieces(parts: list[dict[str, Any]], chunks: int | None) -> list[dict[str, Any]]:
    """Stream chunks: text split into token groups (the `chunks` option), each function call whole."""
    out: list[dict[str, Any]] = []
    for part in parts:
        if "text" not in part:
            out.append(part)
            continue
        pieces = group_pieces(token_pieces(part["text"]), chunks) or [""]
        out.extend({**part, "text": piece} for piece in pieces)
    return out


def model_object(model: GeminiModel) -> dict[str, Any]:
    return {
        "name": f"models/{model.name}",
        "version": "001",
        "displayName": model.display_name,
        "description": f"{model.display_name} (mock)",
        "inputTokenLimit": model.input_limit,
        "outputTokenLimit": model.output_limit,
        "supportedGenerationMethods": list(model.methods),
    }
