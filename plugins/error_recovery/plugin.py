"""Error recovery: when the upstream fails, answer with a configured fallback message instead of an error.

A response hook: it sees the error (`ResponseWriteRequest.error`) and, when its status is one of
`statuses`, replaces it with a normal `chat.completion` (status 200) whose content is `message`, marked
with `x-fjordgate-recovered: <original status>`. Errors the gateway raised for policy (401/402/403/429) are not
in the default list, so limits stay limits.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from shared_sdk import BasePlugin, Context, ResponseWriteRequest, ResponseWriteResponse

NAME = "error-recovery"

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "default": "The assistant is temporarily unavailable. Please try again."},
        "statuses": {"type": "array", "items": {"type": "integer"}, "default": [500, 502, 503, 504]},
    },
    "additionalProperties": False,
}


class ErrorRecovery(BasePlugin):
    name = NAME
    version = "1.0.0"
    description = "Turns upstream failures into a configured fallback answer."

    def get_config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        self.message = config.get("message", CONFIG_SCHEMA["properties"]["message"]["default"])
        self.statuses = frozenset(config.get("statuses", [500, 502, 503, 504]))

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        if req.is_stream_chunk or req.error is None or req.error.status_code not in self.statuses:
            return ResponseWriteResponse()
        model = ctx.llm.default_model if ctx.llm is not None else ""
        body = {
            "id": f"chatcmpl-recovered-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.message},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
        return ResponseWriteResponse(
            modified=True,
            status_code=200,
            body=orjson.dumps(body),
            headers={"content-type": "application/json", "x-fjordgate-recovered": str(req.error.status_code)},
        )


def create_plugin() -> ErrorRecovery:
    return ErrorRecovery()
