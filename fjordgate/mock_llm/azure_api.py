"""Azure OpenAI: the OpenAI routes under `/openai/deployments/{deployment}/...?api-version=...`.

What differs from OpenAI, as Azure does it:
- the key comes in an `api-key` header (an Entra `Authorization: Bearer` token is accepted too); a wrong or
  missing one is 401 `{"error": {"code": "401", "message": "Access denied due to invalid subscription key..."}}`;
- `api-version` is required (400 `MissingApiVersionParameter` without it);
- the deployment names the model: a body needs no `model`, answers carry the deployment as `model`;
- content filtering: answers carry `prompt_filter_results` and per-choice `content_filter_results`, a stream
  starts with a chunk whose `choices` is empty and holds `prompt_filter_results`; a last user message containing
  `trigger content filter` is refused with 400 `content_filter` (the prompt was filtered), one containing
  `filter the answer` ends with finish reason `content_filter` and no content.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .exchange import MockState
from .openai_api import OpenAIApi
from .responses import EventStream, RawResponse

_JSON = [(b"content-type", b"application/json")]
_SAFE = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}
_PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": _SAFE}]
_FILTERED = {**_SAFE, "violence": {"filtered": True, "severity": "high"}}
PROMPT_TRIGGER = "trigger content filter"
ANSWER_TRIGGER = "filter the answer"


class AzureApi:
    def __init__(self, state: MockState) -> None:
        self.state = state
        # The OpenAI routes do the rest with the key already checked here (Azure's header is not OpenAI's); the
        # copy shares the log, counters and fault state with the app's.
        inner = copy.copy(state)
        inner.settings = replace(state.settings, require_key=None)
        self.openai = OpenAIApi(inner)

    async def chat_completions(self, request: Request) -> Response:
        return await self._call(request, self.openai.chat_completions, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._call(request, self.openai.completions, chat=False)

    async def embeddings(self, request: Request) -> Response:
        return await self._call(request, self.openai.embeddings, chat=False)

    async def _call(
        self, request: Request, endpoint: Callable[[Request], Awaitable[Response]], *, chat: bool
    ) -> Response:
        if not request.query_params.get("api-version"):
            message = "The api-version query parameter (?api-version=) is required for all requests."
            return _error(400, "MissingApiVersionParameter", message)
        refused = self._auth(request)
        if refused is not None:
            return refused
        deployment = request.path_params["deployment"]
        raw = await request.body()
        _default_model(request, raw, deployment)
        text = _last_user_text(raw) if chat else ""
        if PROMPT_TRIGGER in text:
            return _content_filter_error()
        response = await endpoint(request)
        if response.status_code != 200 or not chat:
            return response
        return _annotate(response, deployment, filter_answer=ANSWER_TRIGGER in text)

    def _auth(self, request: Request) -> Response | None:
        """Azure's key check: `api-key`, or an Entra token as `Authorization: Bearer`."""
        require = self.state.settings.require_key
        key = request.headers.get("api-key")
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if require is not None and require not in (key, bearer):
            message = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                "valid key for an active subscription and use a correct regional API endpoint for your resource."
            )
            return _error(401, "401", message)
        return None


def _default_model(request: Request, raw: bytes, deployment: str) -> None:
    """Azure needs no `model` in the body (the deployment is the model): the OpenAI routes get the deployment."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    if isinstance(body, dict) and not body.get("model"):
        request._body = orjson.dumps({**body, "model": deployment})  # Starlette's cached body, read again inside


def _error(status: int, code: str, message: str, extra: dict[str, Any] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, **(extra or {})}}
    return RawResponse(status, orjson.dumps(body), [*_JSON, (b"apim-request-id", b"mock-azure")])


def _content_filter_error() -> Response:
    message = (
        "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
        "Please modify your prompt and retry."
    )
    inner = {"code": "ResponsibleAIPolicyViolation", "content_filter_result": _FILTERED}
    return _error(400, "content_filter", message, {"param": "prompt", "status": 400, "innererror": inner})


def _last_user_text(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
        messages = body.get("messages") or []
        content = messages[-1].get("content") if messages[-1].get("role") == "user" else ""
    except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
        return ""
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _annotate(response: Response, deployment: str, *, filter_answer: bool) -> Response:
    """Azure's content-filter annotations on a chat answer or stream; the deployment as the model."""
    if isinstance(response, EventStream):
        events = []
        for event in response.events:
            events.append(_annotate_chunk(event, deployment, filter_answer))
        first = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": _PROMPT_FILTER,
        }
        response.events = [b"data: " + orjson.dumps(first) + b"\n\n", *events]
        return response
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:  # the `malformed` fault: leave it broken
        return response
    body["model"] = deployment
    body["prompt_filter_results"] = _PROMPT_FILTER
    for choice in body.get("choices") or ():
        choice["content_filter_results"] = _FILTERED if filter_answer else _SAFE
        if filter_answer:
            choice["finish_reason"] = "content_filter"
            choice["message"]["content"] = None
    headers = [h for h in response.raw_headers if h[0] != b"content-length"]
    return RawResponse(200, orjson.dumps(body), headers)


def _annotate_chunk(event: bytes, deployment: str, filter_answer: bool) -> bytes:
    if not event.startswith(b"data: {"):
        return event
    try:
        chunk = orjson.loads(event[6:])
    except orjson.JSONDecodeError:
        return event
    chunk["model"] = deployment
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if filter_answer and delta.get("content"):
            delta["content"] = ""
        if choice.get("finish_reason") is not None:
            choice["content_filter_results"] = _FILTERED if filter_answer else _SAFE
            if filter_answer:
                choice["finish_reason"] = "content_filter"
        elif delta.get("content") is not None:
            choice["content_filter_results"] = _SAFE
    return b"data: " + orjson.dumps(chunk) + b"\n\n"
