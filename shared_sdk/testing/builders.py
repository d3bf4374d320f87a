"""Short constructors for contexts and messages, so a plugin test states only what matters to it."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from ..context import Context, Services
from ..messages import (
    LLM,
    App,
    EnrichedRequest,
    ResponseWriteRequest,
    Runtime,
    User,
)
from .services import make_services

__all__ = ["chat_body", "make_context", "make_request", "make_response"]


def make_context(
    runtime: Runtime | str = Runtime.GATEWAY,
    *,
    app: App | None = None,
    user: User | None = None,
    llm: LLM | None = None,
    services: Services | None = None,
    plugin_slug: str = "test-plugin",
    request_id: str | None = None,
    **fields: Any,
) -> Context:
    """A context with in-memory services for `runtime` (pass `services=` to share them between calls)."""
    runtime = Runtime(runtime)
    return Context(
        runtime=runtime,
        request_id=request_id or uuid.uuid4().hex,
        app=app,
        user=user,
        llm=llm,
        plugin_slug=plugin_slug,
        services=services if services is not None else make_services(runtime, plugin_slug),
        **fields,
    )


def chat_body(content: str = "Hello", *, model: str = "gpt-4o-mini", stream: bool = False, **extra: Any) -> bytes:
    """An OpenAI chat-completions request body with one user message."""
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream, **extra}
    return msgspec.json.encode(body)


def make_request(
    content: str | None = "Hello",
    *,
    body: bytes | None = None,
    model: str = "gpt-4o-mini",
    stream: bool = False,
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
    method: str = "POST",
    app_id: int | None = None,
    user_id: int | None = None,
    **fields: Any,
) -> EnrichedRequest:
    """An enriched chat request; `content` builds the body unless `body` is given."""
    if body is None:
        body = chat_body(content or "", model=model, stream=stream)
    return EnrichedRequest(
        method=method,
        path=path,
        headers={"content-type": "application/json", **(headers or {})},
        body=body,
        model=model,
        stream=stream,
        app_id=app_id,
        user_id=user_id,
        authenticated=app_id is not None,
        request_id=fields.pop("request_id", uuid.uuid4().hex),
        **fields,
    )


def make_response(
    content: str = "Hi!",
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    model: str = "gpt-4o-mini",
) -> ResponseWriteRequest:
    """A complete chat-completions response as response hooks see it."""
    if body is None:
        body = msgspec.json.encode(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )
    return ResponseWriteRequest(
        status_code=status_code, headers={"content-type": "application/json", **(headers or {})}, body=body
    )
