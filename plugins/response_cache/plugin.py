"""Exact-match response cache: a repeated request is answered from the edge's KV without calling the vendor.

Key: SHA-256 over the app id and the request body with the streaming fields removed, so a streamed and a
non-streamed request for the same completion share one entry. A hit short-circuits in post-auth (a returned
`ShortCircuit`, no upstream call, no fallback): as a full response, or replayed as SSE chunks when the request
streams. What is stored is always the complete `chat.completion` JSON; a streamed answer is assembled from
its chunks at stream end. Only 200 answers are stored, never errors. Entries expire after `ttl_s`.
Responses API calls (`/v1/responses`) are not cached: their answers and streams are not `chat.completion`s
(a streamed one would have been stored as an empty completion).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson

from shared_sdk import (
    BasePlugin,
    Context,
    EnrichedRequest,
    PluginResponse,
    ResponseWriteRequest,
    ResponseWriteResponse,
    ShortCircuit,
    StreamCompleteRequest,
    StreamCompleteResponse,
    UpstreamResponse,
)

NAME = "response-cache"
HIT = "response_cache.hit"
KEY = "response_cache.key"

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ttl_s": {"type": "number", "exclusiveMinimum": 0, "default": 300},
        "max_entry_bytes": {"type": "integer", "minimum": 1024, "default": 1048576},
    },
    "additionalProperties": False,
}
_IGNORED = ("stream", "stream_options", "user")
_NOT_CACHED_PATHS = frozenset({"/v1/responses"})


def cache_key(app_id: int | None, body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or "messages" not in data:
        return None
    for field in _IGNORED:
        data.pop(field, None)
    canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return "resp:" + hashlib.sha256(str(app_id).encode() + b"\0" + canonical).hexdigest()


def assemble(accumulated: bytes) -> bytes | None:
    """The `chat.completion` a stream of `chat.completion.chunk` events amounts to (text answers only)."""
    content: list[str] = []
    finish = "stop"
    head: dict[str, Any] = {}
    usage = None
    for line in accumulated.split(b"\n"):
        if not line.startswith(b"data: {"):
            continue
        try:
            chunk = orjson.loads(line[6:])
        except orjson.JSONDecodeError:
            continue
        if "error" in chunk:
            return None
        head = head or chunk
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("tool_calls"):
                return None  # tool-call streams are not cached
            content.append(delta.get("content") or "")
            finish = choice.get("finish_reason") or finish
    if not head:
        return None
    body = {
        "id": head.get("id", ""),
        "object": "chat.completion",
        "created": head.get("created", int(time.time())),
        "model": head.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(content)},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
    }
    if usage:
        body["usage"] = usage
    return orjson.dumps(body)


def to_chunks(completion: bytes) -> list[bytes]:
    """Replay a stored `chat.completion` as SSE chunks: role, content, finish, [DONE]."""
    data = orjson.loads(completion)
    base = {
        "id": data.get("id", ""),
        "object": "chat.completion.chunk",
        "created": data.get("created", 0),
        "model": data.get("model", ""),
    }
    choice = (data.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content") or ""
    events = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}]},
    ]
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


class ResponseCache(BasePlugin):
    name = NAME
    version = "1.0.1"
    description = "Answers repeated identical requests from the edge's store (exact match, TTL)."

    def get_config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        self.ttl_s = float(config.get("ttl_s", 300))
        self.max_entry_bytes = int(config.get("max_entry_bytes", 1048576))

    async def handle_post_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse:
        if req.path in _NOT_CACHED_PATHS:
            return PluginResponse()
        key = cache_key(ctx.app_id, req.body)
        if key is None:
            return PluginResponse()
        cached = await ctx.services.kv.read(key)  # type: ignore[union-attr]
        if cached is None:
            return PluginResponse(context_updates={KEY: key})
        updates = {HIT: True, KEY: key}
        headers = {"x-fjordgate-cache": "hit"}
        if req.stream:
            return PluginResponse(
                context_updates=updates,
                short_circuit=ShortCircuit(stream_chunks=to_chunks(cached), stream_headers=headers),
            )
        return PluginResponse(
            context_updates=updates,
            short_circuit=ShortCircuit(
                response=UpstreamResponse(
                    status_code=200, headers={"content-type": "application/json", **headers}, body=cached
                )
            ),
        )

    async def on_before_write(self, ctx: Context, req: ResponseWriteRequest) -> ResponseWriteResponse:
        key = ctx.metadata.get(KEY)
        if req.is_stream_chunk or ctx.metadata.get(HIT) or not key:
            return ResponseWriteResponse()
        if req.error is None and req.status_code == 200 and 0 < len(req.body) <= self.max_entry_bytes:
            await ctx.services.kv.write(key, req.body, ttl_s=self.ttl_s)  # type: ignore[union-attr]
        return ResponseWriteResponse()

    async def on_stream_complete(self, ctx: Context, req: StreamCompleteRequest) -> StreamCompleteResponse:
        key = ctx.metadata.get(KEY)
        if ctx.metadata.get(HIT) or not key or req.status_code != 200:
            return StreamCompleteResponse()
        completion = assemble(req.accumulated_response)
        if completion is None or len(completion) > self.max_entry_bytes:
            return StreamCompleteResponse()
        await ctx.services.kv.write(key, completion, ttl_s=self.ttl_s)  # type: ignore[union-attr]
        return StreamCompleteResponse(handled=True, cached=True)


def create_plugin() -> ResponseCache:
    return ResponseCache()
