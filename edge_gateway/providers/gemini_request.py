"""A Gemini `generateContent` body as a Chat Completions body (`gemini_inbound` sends it to a non-Gemini LLM).

    systemInstruction                      -> a system message (text parts)
    contents (role user / model / function) -> user / assistant messages; text, inlineData and fileData image
                                              parts -> text / image_url parts (inlineData as a data: URL);
                                              inlineData PDFs -> file parts
    functionCall parts                     -> assistant tool_calls (the part's id, else a made-up one)
    functionResponse parts                 -> tool messages answering the call of that id (else of that name),
                                              before the rest of that user turn
    tools.functionDeclarations, toolConfig -> tools (schema types lower-cased), tool_choice (AUTO auto, ANY
                                              required or the one allowed function, NONE none)
    generationConfig                       -> max_tokens, temperature, top_p, stop, n, seed, penalties,
                                              response_format (responseMimeType application/json + schema)

`thought` parts the client sends back, `topK`, `thinkingConfig` and `safetySettings` have no chat counterpart
and are dropped; Google's built-in tools (`googleSearch`, `codeExecution`, `urlContext`) and `cachedContent`,
which the answer would silently go without, are a 400, as are values beyond the LLM's vendor's range
(`vendor_ranges`: a `temperature` above Anthropic's 1, more `stopSequences` than OpenAI's 4). Every field read or dropped is checked for the type
Google's API gives it as the walk reaches it (no second pass): a wrong one is Google's 400 naming the field's
path (`field_errors`), as Google would answer, never a 200 that ignored it nor a Python error.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from ..errors import GatewayError
from .documents import file_part
from .field_errors import google_invalid, google_refused, is_base64, is_integer, is_number
from .vendor_ranges import VendorRange, stops_beyond, temperature_beyond

__all__ = ["gemini_to_chat_request"]


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)


_GENERATION = (
    ("maxOutputTokens", "max_tokens", "TYPE_INT32"),
    ("temperature", "temperature", "TYPE_FLOAT"),
    ("topP", "top_p", "TYPE_FLOAT"),
    ("candidateCount", "n", "TYPE_INT32"),
    ("seed", "seed", "TYPE_INT32"),
    ("presencePenalty", "presence_penalty", "TYPE_FLOAT"),
    ("frequencyPenalty", "frequency_penalty", "TYPE_FLOAT"),
)
_SNAKE = {
    camel: _snake(camel)
    for camel in (
        *(source for source, _, _ in _GENERATION),
        "systemInstruction",
        "generationConfig",
        "toolConfig",
        "safetySettings",
        "cachedContent",
        "functionResponse",
        "functionCall",
        "inlineData",
        "fileData",
        "mimeType",
        "fileUri",
        "functionDeclarations",
        "parametersJsonSchema",
        "functionCallingConfig",
        "allowedFunctionNames",
        "stopSequences",
        "responseMimeType",
        "responseJsonSchema",
        "responseSchema",
        "topK",
        "thinkingConfig",
    )
}
"""Each field's proto name, worked out once: the translation looks fields up by both names (`_get`), and an
error names the field as Google does, by its proto name."""
_MODES = frozenset({"AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"})
_USER_ROLES = frozenset({"user", "function", ""})


def _get(body: dict[str, Any], camel: str) -> Any:
    """A field by its JSON name or its proto (snake_case) name: Google accepts both, so the edge does too."""
    value = body.get(camel)
    return value if value is not None else body.get(_SNAKE[camel])


def _object(value: Any, path: str, message: str) -> dict[str, Any]:
    """`value` when it is a JSON object, else Google's 400 naming `path` (`message`: the proto message expected)."""
    if not isinstance(value, dict):
        raise google_invalid(path, message, value)
    return value


def _string(value: Any, path: str) -> str:
    """`value` when it is a string, "" when absent (null), else Google's 400 naming `path`."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    raise google_invalid(path, "TYPE_STRING", value)


def _name(value: Any, path: str) -> str:
    """A function's name: a non-empty string (chat tools and calls need one; Google requires it too)."""
    if isinstance(value, str) and value:
        return value
    if value is None or value == "":
        raise google_refused(path, "Name cannot be empty.")
    raise google_invalid(path, "TYPE_STRING", value)


def _schema(value: Any) -> Any:
    """Gemini's schema (OpenAPI subset, upper-case types) as JSON schema."""
    if isinstance(value, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _schema(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_schema(v) for v in value]
    return value


def _part_path(at: int, index: int) -> str:
    """A part's path as Google names it (`at` -1: a part of `systemInstruction`), built only for an error."""
    return f"system_instruction.parts[{index}]" if at < 0 else f"contents[{at}].parts[{index}]"


def _media_part(data: Any, inline: bool, at: int, index: int) -> dict[str, Any]:
    """An image (inline or by URI) as an `image_url` part, an inline PDF as a `file` part; other media are 400."""
    field = "inline_data" if inline else "file_data"
    path = _part_path(at, index)  # parts with media are few, and large: the path costs nothing here
    data = _object(data, f"{path}.{field}", "Blob" if inline else "FileData")
    mime = _get(data, "mimeType")
    if not isinstance(mime, str):
        raise google_invalid(f"{path}.{field}.mime_type", "TYPE_STRING", mime)
    if inline:
        encoded = data.get("data")
        if not isinstance(encoded, str) or not is_base64(encoded):
            raise google_invalid(f"{path}.{field}.data", "TYPE_BYTES", encoded)
        if mime == "application/pdf":
            return file_part(mime, encoded)
    if not mime.startswith("image/"):
        raise google_refused(f"{path}.{field}.mime_type", f"media of type {mime!r} cannot be sent to this model")
    if inline:
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{encoded}"}}
    uri = _get(data, "fileUri")
    if not isinstance(uri, str) or not uri:
        raise google_invalid(f"{path}.{field}.file_uri", "TYPE_STRING", uri)
    return {"type": "image_url", "image_url": {"url": uri}}


def _result_text(response: Any) -> str:
    if isinstance(response, dict) and len(response) == 1:
        only = next(iter(response.values()))
        if isinstance(only, str):
            return only
    return orjson.dumps(response if response is not None else {}).decode()


def _thought(part: dict[str, Any], at: int, index: int) -> bool:
    thought = part.get("thought")
    if thought is None or isinstance(thought, bool):
        return bool(thought)
    raise google_invalid(f"{_part_path(at, index)}.thought", "TYPE_BOOL", thought)


def _text(part: dict[str, Any], at: int, index: int) -> str | None:
    text = part.get("text")
    if text is None or isinstance(text, str):
        return text
    raise google_invalid(f"{_part_path(at, index)}.text", "TYPE_STRING", text)


class _Turns:
    """Builds the chat messages, remembering tool-call ids so that function responses answer the right call."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.pending: dict[str, list[str]] = {}

    def user(self, parts: list[Any], at: int) -> None:
        tools: list[dict[str, Any]] = []
        content: list[dict[str, Any]] = []
        for index, part in enumerate(parts):
            if not isinstance(part, dict):
                raise google_invalid(_part_path(at, index), "Part", part)
            result = _get(part, "functionResponse")
            if result is not None:
                tools.append(self._answer(result, at, index))
            else:
                piece = _content(part, at, index)
                if piece is not None:
                    content.append(piece)
        self.messages += tools
        if content:
            self.messages.append({"role": "user", "content": content})

    def _answer(self, result: Any, at: int, index: int) -> dict[str, Any]:
        """A `functionResponse` as the tool message answering its call (by id, else the earliest of its name)."""
        path = f"{_part_path(at, index)}.function_response"  # a part of its own kind, as rare as a tool's answer
        result = _object(result, path, "FunctionResponse")
        name = _string(result.get("name"), f"{path}.name")
        given = result.get("id")
        if given is not None and not isinstance(given, str):
            raise google_invalid(f"{path}.id", "TYPE_STRING", given)
        response = result.get("response")
        if response is not None and not isinstance(response, dict):
            raise google_invalid(f"{path}.response", "Struct", response)
        ids = self.pending.get(name) or []
        call_id = given or (ids.pop(0) if ids else f"call_{name}")
        return {"role": "tool", "tool_call_id": call_id, "content": _result_text(response)}

    def model(self, parts: list[Any], at: int) -> None:
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        for index, part in enumerate(parts):
            if not isinstance(part, dict):
                raise google_invalid(_part_path(at, index), "Part", part)
            if _thought(part, at, index):
                continue
            call = _get(part, "functionCall")
            if call is not None:
                calls.append(self._call(call, at, index))
                continue
            said = _text(part, at, index)
            if said is not None:
                text.append(said)
            # other parts of the model's (executableCode, inlineData, ...) have no chat counterpart: dropped
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
        if calls:
            message["tool_calls"] = calls
        self.messages.append(message)

    def _call(self, call: Any, at: int, index: int) -> dict[str, Any]:
        """A `functionCall` part as a chat tool call; its id is remembered for the response that answers it."""
        path = f"{_part_path(at, index)}.function_call"  # as rare as a tool call
        call = _object(call, path, "FunctionCall")
        name = _name(call.get("name"), f"{path}.name")
        given = call.get("id")
        if given is not None and not isinstance(given, str):
            raise google_invalid(f"{path}.id", "TYPE_STRING", given)
        args = call.get("args")
        if args is not None and not isinstance(args, dict):
            raise google_invalid(f"{path}.args", "Struct", args)
        call_id = given or f"call_{uuid.uuid4().hex[:24]}"
        self.pending.setdefault(name, []).append(call_id)
        arguments = orjson.dumps(args or {}).decode()
        return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _content(part: dict[str, Any], at: int, index: int) -> dict[str, Any] | None:
    """A user part as a chat content part (None for a thought); 400 for what chat cannot carry."""
    text = _text(part, at, index)
    if text is not None:
        return None if _thought(part, at, index) else {"type": "text", "text": text}
    inline = _get(part, "inlineData")
    if inline is not None:
        return _media_part(inline, True, at, index)
    linked = _get(part, "fileData")
    if linked is not None:
        return _media_part(linked, False, at, index)
    raise google_refused(_part_path(at, index), f"a part with fields {sorted(part)} cannot be sent to this model")


def _system(system: Any) -> str:
    """The text of `systemInstruction` (a Content of text parts)."""
    system = _object(system, "system_instruction", "Content")
    _string(system.get("role"), "system_instruction.role")  # no chat counterpart: dropped
    parts = system.get("parts")
    if parts is None:
        return ""
    if not isinstance(parts, list):
        raise google_invalid("system_instruction.parts", "Part", parts)
    text: list[str] = []
    for index, part in enumerate(parts):
        if not isinstance(part, dict):
            raise google_invalid(_part_path(-1, index), "Part", part)
        said = _text(part, -1, index)
        if said is None:
            raise google_refused(f"system_instruction.parts[{index}]", "only text can be sent to this model here")
        text.append(said)
    return "".join(text)


def _declarations(tools: Any) -> list[dict[str, Any]]:
    """`tools[].functionDeclarations` as chat tools. Google's built-in tools (`googleSearch`, `codeExecution`,
    `urlContext`, ...) have no counterpart at another vendor: a 400 naming the tool, as the Responses dialect
    answers for its `web_search`, rather than an answer made without the search the client asked for."""
    if not isinstance(tools, list):
        raise google_invalid("tools", "Tool", tools)
    out = []
    for at, tool in enumerate(tools):
        declarations = _get(_object(tool, f"tools[{at}]", "Tool"), "functionDeclarations")
        if len(tool) > (declarations is not None):
            raise _built_in_tool(tool, at)
        if declarations is None:
            continue
        if not isinstance(declarations, list):
            raise google_invalid(f"tools[{at}].function_declarations", "FunctionDeclaration", declarations)
        for index, declaration in enumerate(declarations):
            path = f"tools[{at}].function_declarations[{index}]"
            declaration = _object(declaration, path, "FunctionDeclaration")
            name = _name(declaration.get("name"), f"{path}.name")
            description = _string(declaration.get("description"), f"{path}.description")
            schema = declaration.get("parameters")
            if schema is not None and not isinstance(schema, dict):
                raise google_invalid(f"{path}.parameters", "Schema", schema)
            if not schema:
                schema = _get(declaration, "parametersJsonSchema")
                if schema is not None and not isinstance(schema, dict):
                    raise google_invalid(f"{path}.parameters_json_schema", "Value", schema)
            parameters = _schema(schema) if schema else {"type": "object", "properties": {}}
            function = {"name": name, "description": description, "parameters": parameters}
            out.append({"type": "function", "function": function})
    return out


def _built_in_tool(tool: dict[str, Any], at: int) -> GatewayError:
    name = next(key for key in tool if key not in ("functionDeclarations", "function_declarations"))
    return google_refused(
        f"tools[{at}].{_snake(name)}",
        f"the built-in tool '{name}' is not supported by this model's API (only function declarations are).",
    )


def _tool_choice(config: Any, out: dict[str, Any]) -> None:
    """`toolConfig.functionCallingConfig` as `tool_choice` (set only when there are tools to choose from)."""
    calling = _get(_object(config, "tool_config", "ToolConfig"), "functionCallingConfig")
    if calling is None:
        return
    calling = _object(calling, "tool_config.function_calling_config", "FunctionCallingConfig")
    mode = calling.get("mode") or "AUTO"
    if not isinstance(mode, str) or mode.upper() not in _MODES:
        raise google_invalid("tool_config.function_calling_config.mode", "TYPE_ENUM", mode)
    allowed = _get(calling, "allowedFunctionNames")
    if allowed is not None and not (isinstance(allowed, list) and all(isinstance(n, str) for n in allowed)):
        raise google_invalid("tool_config.function_calling_config.allowed_function_names", "TYPE_STRING", allowed)
    if "tools" not in out:
        return
    mode = mode.upper()
    if mode == "NONE":
        out["tool_choice"] = "none"
    elif mode == "ANY" and allowed and len(allowed) == 1:
        out["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}}
    elif mode == "ANY":
        out["tool_choice"] = "required"


def _generation(config: Any, out: dict[str, Any], vendor: VendorRange | None) -> None:
    """`generationConfig`; a `temperature` or more `stopSequences` than `vendor` (the LLM's) takes is Google's
    400 naming the field (Google takes 0 to 2 and 5 sequences), never a value clamped or another vendor's 400."""
    config = _object(config, "generation_config", "GenerationConfig")
    for source, target, kind in _GENERATION:
        value = _get(config, source)
        if value is not None:
            if not (is_integer(value) if kind == "TYPE_INT32" else is_number(value)):
                raise google_invalid(f"generation_config.{_SNAKE[source]}", kind, value)
            out[target] = value
    temperature = out.get("temperature")
    if vendor is not None and temperature is not None and temperature > vendor.max_temperature:
        raise google_refused("generation_config.temperature", temperature_beyond(vendor, temperature) + ".")
    top_k = _get(config, "topK")
    if top_k is not None and not is_integer(top_k):  # no chat counterpart: dropped
        raise google_invalid("generation_config.top_k", "TYPE_INT32", top_k)
    thinking = _get(config, "thinkingConfig")
    if thinking is not None:  # no chat counterpart: dropped
        _object(thinking, "generation_config.thinking_config", "ThinkingConfig")
    stop = _get(config, "stopSequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise google_invalid("generation_config.stop_sequences", "TYPE_STRING", stop)
        if vendor is not None and len(stop) > vendor.max_stops:
            raise google_refused("generation_config.stop_sequences", stops_beyond(vendor, len(stop)) + ".")
        if stop:
            out["stop"] = stop
    json_schema = _get(config, "responseJsonSchema")
    if json_schema is not None and not isinstance(json_schema, dict):
        raise google_invalid("generation_config.response_json_schema", "Value", json_schema)
    schema = _get(config, "responseSchema")
    if schema is not None and not isinstance(schema, dict):
        raise google_invalid("generation_config.response_schema", "Schema", schema)
    mime = _get(config, "responseMimeType")
    if mime is not None and _string(mime, "generation_config.response_mime_type") == "application/json":
        schema = json_schema or schema
        if schema:
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": _schema(schema)},
            }
        else:
            out["response_format"] = {"type": "json_object"}


def _safety(settings: Any) -> None:
    """`safetySettings`: no chat counterpart (dropped), but checked as Google would (a list of category and
    threshold names)."""
    if not isinstance(settings, list):
        raise google_invalid("safety_settings", "SafetySetting", settings)
    for index, setting in enumerate(settings):
        setting = _object(setting, f"safety_settings[{index}]", "SafetySetting")
        for field in ("category", "threshold"):
            value = setting.get(field)
            if value is not None and not isinstance(value, str):
                raise google_invalid(f"safety_settings[{index}].{field}", "TYPE_ENUM", value)


def gemini_to_chat_request(
    data: dict[str, Any], model: str, stream: bool, vendor: VendorRange | None = None
) -> dict[str, Any]:
    """A Gemini `generateContent` body as a Chat Completions body (intake saw a non-empty `contents` array), for
    an LLM of `vendor`'s ranges (`vendor_ranges`; None: not checked)."""
    turns = _Turns()
    system = _get(data, "systemInstruction")
    if system is not None:
        text = _system(system)
        if text:
            turns.messages.append({"role": "system", "content": text})
    contents = data.get("contents")
    if not isinstance(contents, list):
        raise google_invalid("contents", "Content", contents)
    for at, content in enumerate(contents):
        parts = _object(content, f"contents[{at}]", "Content").get("parts")
        if not isinstance(parts, list):
            raise google_invalid(f"contents[{at}].parts", "Part", parts)
        role = content.get("role")
        if role == "model":
            turns.model(parts, at)
        elif role is None or (isinstance(role, str) and role in _USER_ROLES):
            turns.user(parts, at)
        else:
            raise google_refused(f"contents[{at}].role", "Please use a valid role: user, model.")
    out: dict[str, Any] = {"model": model, "messages": turns.messages}
    tools = data.get("tools")
    if tools is not None:
        declared = _declarations(tools)
        if declared:
            out["tools"] = declared
    config = _get(data, "toolConfig")
    if config is not None:
        _tool_choice(config, out)
    config = _get(data, "generationConfig")
    if config is not None:
        _generation(config, out, vendor)
    settings = _get(data, "safetySettings")
    if settings is not None:
        _safety(settings)
    cached = _get(data, "cachedContent")
    if cached is not None:  # the context cached at Google: another vendor cannot read it
        _string(cached, "cached_content")
        raise google_refused("cached_content", "cached content is not supported by this model's API.")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out
