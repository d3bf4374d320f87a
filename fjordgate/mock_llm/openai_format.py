"""OpenAI's wire format: error documents, usage blocks, response bodies and pre-encoded stream chunks.

Shapes follow api.openai.com as the stock `openai` SDK parses them: errors are `{"error": {message, type, param,
code}}`; streams are `data: {chunk}\\n\\n` lines ending with `data: [DONE]`; with `stream_options.include_usage`
every chunk carries `"usage": null` and a last chunk with `"choices": []` carries the usage.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from starlette.datastructures import Headers

DONE = b"data: [DONE]\n\n"
FINGERPRINT = "fp_fjordgate_mock"
_KEY_PAGE = "https://platform.openai.com/account/api-keys"
_MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth "
    f"(i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from {_KEY_PAGE}."
)
_INVALID_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library "
    "correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)
SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
_FAULT_MESSAGES = {
    429: "Rate limit reached for requests (mock upstream fault). Please try again later.",
    500: SERVER_ERROR,
    502: "Bad gateway (mock upstream fault).",
    503: "The server is overloaded or not ready yet (mock upstream fault).",
    504: "Gateway timeout (mock upstream fault).",
}


class OpenAIFormat:
    """The `VendorFormat` of api.openai.com."""

    request_id_header = b"x-request-id"

    def reject(self, headers: Headers, require_key: str | None) -> tuple[int, str, str | None] | None:
        if require_key is None:
            return None
        authorization = headers.get("authorization")
        if not authorization:
            return 401, _MISSING_KEY, None
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or key.strip() != require_key:
            return (
                401,
                f"Incorrect API key provided: {_mask(key.strip())}. You can find your API key at {_KEY_PAGE}.",
                "invalid_api_key",
            )
        return None

    def error_body(self, status: int, message: str, *, request_id: str, param: str | None, code: str | None) -> bytes:
        kind = "invalid_request_error"
        if status == 429:
            kind, code = "requests", code or "rate_limit_exceeded"
        elif status >= 500:
            kind = "server_error"
        return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})

    def stream_error(self, request_id: str) -> bytes:
        error = {"message": SERVER_ERROR, "type": "server_error", "param": None, "code": None}
        return b"data: " + orjson.dumps({"error": error}) + b"\n\n"

    def invalid_json_message(self) -> str:
        return _INVALID_JSON

    def fault_message(self, status: int) -> str:
        return _FAULT_MESSAGES.get(status) or f"{_phrase(status)} (mock upstream fault, HTTP {status})."


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> dict[str, Any]:
    """A chat/completions usage block with the detail objects current models return."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": min(cached_tokens, prompt_tokens), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat_choice(index: int, content: str | None, tool_calls: list[dict[str, Any]], finish: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}


def chat_completion(
    completion_id: str, created: int, model: str, choices: list[dict[str, Any]], usage_block: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_block,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def text_completion(
    completion_id: str, created: int, model: str, choices: list[dict[str, Any]], usage_block: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": choices,
        "usage": usage_block,
    }


class ChunkEncoder:
    """Encodes one stream's chunks from a prefix and suffix built once, so a content delta costs one dumps.

    `kind` is "chat.completion.chunk" (deltas) or "text_completion" (legacy `text` pieces).
    """

    def __init__(self, completion_id: str, kind: str, created: int, model: str, *, include_usage: bool) -> None:
        head = {"id": completion_id, "object": kind, "created": created, "model": model}
        head_bytes = orjson.dumps(head)[:-1]
        fingerprint = b',"system_fingerprint":' + orjson.dumps(FINGERPRINT)
        self.prefix = b"data: " + head_bytes + fingerprint + b',"choices":['
        self.suffix = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"
        self.chat = kind == "chat.completion.chunk"

    def choice(self, choice: dict[str, Any]) -> bytes:
        return self.prefix + orjson.dumps(choice) + self.suffix

    def delta(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self.choice({"index": index, "delta": delta, "logprobs": None, "finish_reason": finish})

    def content(self, index: int, piece: str) -> bytes:
        """A content delta (chat) or text piece (legacy), the hot path of every stream."""
        key = b'{"index":%d,"delta":{"content":' % index if self.chat else b'{"index":%d,"text":' % index
        tail = b'},"logprobs":null,"finish_reason":null}' if self.chat else b',"logprobs":null,"finish_reason":null}'
        return self.prefix + key + orjson.dumps(piece) + tail + self.suffix

    def text_finish(self, index: int, finish: str) -> bytes:
        return self.choice({"text": "", "index": index, "logprobs": None, "finish_reason": finish})

    def usage(self, usage_block: dict[str, Any]) -> bytes:
        return self.prefix + b'],"usage":' + orjson.dumps(usage_block) + b"}\n\n"


def _mask(key: str) -> str:
    return f"{key[:3]}{'*' * 8}{key[-4:]}" if len(key) > 8 else "*" * len(key)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
