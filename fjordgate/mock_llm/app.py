"""The mock upstream as one Starlette app: vendor routes, `/health`, and the `/_mock/*` inspection routes.

`/_mock/*` is deliberately unauthenticated (it is how tests look inside the double) and is not itself recorded.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .anthropic_api import ANTHROPIC, AnthropicApi
from .azure_api import AzureApi
from .bedrock_api import BedrockApi
from .exchange import MockState
from .gemini_api import GeminiApi
from .gemini_format import error_document
from .openai_api import OPENAI, OpenAIApi
from .openai_responses_api import OpenAIResponsesApi
from .responses import CYCLE_KEY, RawResponse
from .settings import MockSettings
from .vertex_api import VertexApi

_JSON = [(b"content-type", b"application/json")]
_HEALTH = orjson.dumps({"status": "ok"})
_DEFAULT_LIMIT = 50


class MockApp(Starlette):
    """Starlette plus one step: keep the server's request cycle reachable, so faults can break the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[CYCLE_KEY] = getattr(send, "__self__", None)
        await super().__call__(scope, receive, send)


def create_app(settings: MockSettings) -> Starlette:
    """Build the mock upstream; `app.state.mock` is its MockState (request log, counters, fault counters)."""
    state = MockState(settings)
    openai = OpenAIApi(state)
    anthropic = AnthropicApi(state)
    responses = OpenAIResponsesApi(state)
    azure = AzureApi(state)
    bedrock = BedrockApi(state)
    gemini = GeminiApi(state)
    vertex = VertexApi(state)

    async def list_models(request: Request) -> Response:
        if "x-goog-api-key" in request.headers:
            return await gemini.list_models(request)
        api = anthropic if "anthropic-version" in request.headers else openai
        return await api.list_models(request)

    async def retrieve_model(request: Request) -> Response:
        if "x-goog-api-key" in request.headers:
            return await gemini.retrieve_model(request)
        api = anthropic if "anthropic-version" in request.headers else openai
        return await api.retrieve_model(request)

    async def health(request: Request) -> Response:
        return RawResponse(200, _HEALTH, _JSON)

    async def recent_requests(request: Request) -> Response:
        raw_limit = request.query_params.get("limit", str(_DEFAULT_LIMIT))
        if not raw_limit.isdigit():
            return _json(400, {"error": f"limit must be a non-negative integer, got {raw_limit!r}"})
        entries = state.recorder.recent(int(raw_limit), request.query_params.get("path"))
        return _json(200, {"data": entries})

    async def stats(request: Request) -> Response:
        return _json(200, state.recorder.stats(state.fail_counter.seen))

    async def reset(request: Request) -> Response:
        state.reset()
        return _json(200, {"status": "reset"})

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/chat/completions", openai.chat_completions, methods=["POST"]),
        Route("/v1/completions", openai.completions, methods=["POST"]),
        Route("/v1/embeddings", openai.embeddings, methods=["POST"]),
        Route("/v1/responses", responses.create, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
        Route("/v1/messages", anthropic.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", anthropic.count_tokens, methods=["POST"]),
        Route("/openai/deployments/{deployment}/chat/completions", azure.chat_completions, methods=["POST"]),
        Route("/openai/deployments/{deployment}/completions", azure.completions, methods=["POST"]),
        Route("/openai/deployments/{deployment}/embeddings", azure.embeddings, methods=["POST"]),
        Route("/model/{model:path}/converse", bedrock.converse, methods=["POST"]),
        Route("/model/{model:path}/converse-stream", bedrock.converse_stream, methods=["POST"]),
        Route("/v1beta/models", gemini.list_models, methods=["GET"]),
        Route("/v1beta/models/{model:path}", gemini.retrieve_model, methods=["GET"]),
        Route("/v1beta/models/{target:path}", gemini.dispatch, methods=["POST"]),
        Route("/v1/models/{target:path}", gemini.dispatch, methods=["POST"]),
        Route(
            "/v1/projects/{project}/locations/{region}/publishers/google/models/{target:path}",
            vertex.dispatch,
            methods=["POST"],
        ),
        Route("/token", vertex.token, methods=["POST"]),
        Route("/_mock/requests", recent_requests, methods=["GET"]),
        Route("/_mock/stats", stats, methods=["GET"]),
        Route("/_mock/reset", reset, methods=["POST"]),
    ]
    app = MockApp(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.mock = state
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods, answered in the vendor's error shape as the real APIs do."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"Invalid URL ({request.method} {request.url.path})"
    if status == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}"
    return _vendor_error(request, status, message)


async def _server_error(request: Request, exc: Exception) -> Response:
    return _vendor_error(request, 500, "The mock upstream failed unexpectedly; see its log.")


def _vendor_error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith(("/v1beta/", "/v1/projects/")) or "x-goog-api-key" in request.headers:
        return RawResponse(status, error_document(status, message), _JSON)
    vendor = ANTHROPIC if "anthropic-version" in request.headers else OPENAI
    body = vendor.error_body(status, message, request_id="req_mock_error", param=None, code=None)
    return RawResponse(status, body, _JSON)


def _json(status: int, payload: Any) -> Response:
    return RawResponse(status, orjson.dumps(payload, default=str), _JSON)
