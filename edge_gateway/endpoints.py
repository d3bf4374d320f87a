"""Plain ASGI endpoints: the LLM routes (handed to the pipeline), plugin endpoints, health, readiness, metrics."""

from __future__ import annotations

import hmac
from typing import Any

from shared_sdk import Context, EndpointRequest, EnrichedRequest, PluginCallError, PluginError, Runtime

from .auth import accept_caller, client_credential, find_credential, plugin_auth
from .config_store import CompiledConfig, ConfigStore
from .deployments import open_breakers
from .errors import GatewayError, error_body, gemini_error
from .exchange import Rejected
from .intake import read_body
from .metrics import CONTENT_TYPE_LATEST, EdgeMetrics
from .pipeline import Pipeline
from .response_headers import content_length, final_status, response_headers

__all__ = [
    "BearerGuard",
    "GeminiEndpoint",
    "Health",
    "LLMEndpoint",
    "MetricsEndpoint",
    "ModelEndpoint",
    "NativeEndpoint",
    "PluginEndpoint",
    "Ready",
]

_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key")
"""The caller's key (`auth.client_credential`): never shown to a plugin's endpoint or its auth hook."""


async def _send(
    send: Any,
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), *(headers or []), *content_length(status, body)],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_gateway_error(send: Any, error: GatewayError) -> None:
    await _send(
        send,
        error.status_code,
        error_body(error.message, error.type, error.code, error.param),
        headers=[(k.encode(), v.encode()) for k, v in error.headers.items()],
    )


class LLMEndpoint:
    """`POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/responses`, `GET /v1/models`."""

    def __init__(self, pipeline: Pipeline, kind: str) -> None:
        self.pipeline = pipeline
        self.kind = kind

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.pipeline.serve(scope, receive, send, self.kind)


class ModelEndpoint:
    """`GET /v1/models/{model_id}`: one model the caller's app may use (OpenAI's or Anthropic's shape)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        model_id = scope.get("path_params", {}).get("model_id", "")
        await self.pipeline.serve(scope, receive, send, "model", "", model_id)


_GEMINI_METHODS = {
    "generateContent": "gemini",
    "streamGenerateContent": "gemini_stream",
    "countTokens": "gemini_count",
    "embedContent": "gemini_embed",
    "batchEmbedContents": "gemini_batch_embed",
}


class GeminiEndpoint:
    """`POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`, `:countTokens`, `:embedContent`,
    `:batchEmbedContents`: Gemini-format
    clients (the `google-genai` SDK), to any vendor (`providers.gemini_inbound`).

    Streams are answered as server-sent events only (`alt=sse`, what Google's SDKs ask for); a call without it
    expects one JSON array and gets a clear 400 instead of a framing it cannot read."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        model, _, method = scope.get("path_params", {}).get("target", "").rpartition(":")
        kind = _GEMINI_METHODS.get(method)
        if kind is None or not model:
            status, body = gemini_error(404, f"method {method!r} is not served for Gemini models here")
            await _send(send, status, body)
            return
        if kind == "gemini_stream" and b"alt=sse" not in scope.get("query_string", b""):
            message = "this gateway streams Gemini responses as server-sent events only: add ?alt=sse"
            status, body = gemini_error(400, message)
            await _send(send, status, body)
            return
        await self.pipeline.serve(scope, receive, send, kind, "", model.removeprefix("models/"))


class NativeEndpoint:
    """`/llm/call/{llm_slug}/{path}`: the vendor's own API, with the edge's auth, policy and accounting."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        params = scope.get("path_params", {})
        await self.pipeline.serve(scope, receive, send, "native", params.get("llm_slug", ""), params.get("path", ""))


class Health:
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await _send(send, 200, b'{"status":"ok"}')


class Ready:
    """200 once a config is loaded (with its version and checksum), 503 before."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        import orjson

        cfg = self.store.current
        if cfg is None:
            await _send(send, 503, b'{"status":"waiting for config"}')
            return
        await _send(
            send,
            200,
            orjson.dumps(
                {
                    "status": "ready",
                    "namespace": cfg.snapshot.namespace,
                    "version": cfg.version,
                    "checksum": cfg.checksum,
                    "open_breakers": open_breakers(cfg.llms_by_id.values()),
                    "plugins_not_loaded": cfg.plugins_not_loaded,
                }
            ),
        )


class MetricsEndpoint:
    def __init__(self, metrics: EdgeMetrics) -> None:
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await _send(send, 200, self.metrics.render(), CONTENT_TYPE_LATEST.encode())


class BearerGuard:
    """An endpoint behind a fixed bearer token (`EDGE_METRICS_TOKEN` for /metrics); 401 without it."""

    def __init__(self, endpoint: Any, token: str) -> None:
        self.endpoint = endpoint
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        given = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        if hmac.compare_digest(given, self._expected):
            await self.endpoint(scope, receive, send)
            return
        body = b'{"error":{"message":"this endpoint needs its bearer token","type":"authentication_error"}}'
        await _send(send, 401, body, headers=[(b"www-authenticate", b'Bearer realm="metrics"')])


def _match(registrations: list[Any], path: str, method: str) -> tuple[Any | None, bool]:
    """(registration, path_known): the registration serving `path` for `method`."""
    known = False
    for reg in registrations:
        pattern = reg.path if reg.path.startswith("/") else f"/{reg.path}"
        if pattern.endswith("/*"):
            hit = path == pattern[:-2] or path.startswith(pattern[:-1])
        else:
            hit = path == pattern
        if hit:
            known = True
            if method in (m.upper() for m in reg.methods):
                return reg, True
    return None, known


class PluginEndpoint:
    """`/plugins/{slug}/{path}`: a gateway plugin's custom endpoints (`CustomEndpointHandler`)."""

    def __init__(self, store: ConfigStore, max_body_bytes: int, edge_id: str) -> None:
        self.store = store
        self.max_body_bytes = max_body_bytes
        self.edge_id = edge_id

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await self._serve(scope, receive, send)
        except GatewayError as err:
            await send_gateway_error(send, err)
        except Rejected as refused:
            await send_gateway_error(send, _as_gateway_error(refused.error))

    def _find(self, scope: dict[str, Any]) -> tuple[CompiledConfig, Any, Any, str, str]:
        """(config, plugin handle, registration, slug, relative path) serving this request; 404 / 405."""
        cfg = self.store.current
        params = scope.get("path_params", {})
        slug = params.get("slug", "")
        relative = "/" + params.get("path", "")
        registrations = cfg.endpoints.get(slug) if cfg is not None else None
        handle = cfg.plugins.get(slug) if cfg is not None else None
        if cfg is None or not registrations or handle is None:
            raise GatewayError.not_found(f"no plugin endpoints for {slug!r}", code="not_found")
        reg, known = _match(registrations, relative, scope["method"])
        if reg is None:
            if known:
                raise GatewayError(405, f"method {scope['method']} not allowed here", code="method_not_allowed")
            raise GatewayError.not_found(f"plugin {slug!r} has no endpoint {relative!r}", code="not_found")
        return cfg, handle, reg, slug, relative

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        cfg, handle, reg, slug, relative = self._find(scope)
        with (
            cfg
        ):  # its plugins (auth, the endpoint's) are not stopped under the call by a config change (`ConfigStore`)
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            body = await read_body(receive, self.max_body_bytes, headers.get("content-length"))
            ctx = Context(runtime=Runtime.GATEWAY, edge_id=self.edge_id, namespace=cfg.snapshot.namespace)
            app = None
            user = None
            client = scope.get("client")
            if reg.require_auth:
                app, user = await _endpoint_caller(cfg, ctx, scope, headers, body)
                ctx.app, ctx.user = app, user
            request = EndpointRequest(
                method=scope["method"],
                path=scope["path"],
                relative_path=relative,
                path_segments=[s for s in relative.split("/") if s],
                headers={k: v for k, v in headers.items() if k not in _CREDENTIAL_HEADERS},
                body=body,
                query_string=scope.get("query_string", b"").decode("latin-1"),
                remote_addr=client[0] if client else "",
                host=headers.get("host", ""),
                authenticated=app is not None,
                app=app,
                user=user,
            )
            await _relay_endpoint(send, handle, ctx, request, reg.stream_response, slug)


async def _endpoint_caller(
    cfg: CompiledConfig, ctx: Context, scope: dict[str, Any], headers: dict[str, str], body: bytes
) -> tuple[Any, Any]:
    """(App, User) messages of a custom endpoint's caller: the namespace's auth plugins, else the app key (as for
    the LLM routes: a plugin that declines the credential leaves it to the app key; `Rejected` otherwise)."""
    credential, auth_type = client_credential(headers)
    hooks = cfg.global_chain.hooks
    outcome = await plugin_auth(hooks, ctx, credential, auth_type, _endpoint_request(ctx, scope, headers, body))
    compiled_app, user_id, claims = accept_caller(cfg, outcome, credential, find_credential(cfg, credential))
    if claims is not None:
        ctx.metadata.setdefault("auth_claims", claims)
    return compiled_app.message, cfg.user_messages.get(user_id) if user_id is not None else None


def _endpoint_request(ctx: Context, scope: dict[str, Any], headers: dict[str, str], body: bytes) -> EnrichedRequest:
    """The request as auth plugins see it (credentials redacted, as on the LLM routes)."""
    client = scope.get("client")
    return EnrichedRequest(
        method=scope["method"],
        path=scope["path"],
        headers={k: ("[redacted]" if k in _CREDENTIAL_HEADERS else v) for k, v in headers.items()},
        body=body,
        remote_addr=client[0] if client else "",
        query_string=scope.get("query_string", b"").decode("latin-1"),
        context=ctx.info(),
    )


def _as_gateway_error(error: GatewayError | PluginError) -> GatewayError:
    if isinstance(error, GatewayError):
        return error
    return GatewayError(error.status_code, error.message, type=error.type, code=error.code, headers=dict(error.headers))


def _head(chunk: Any) -> list[tuple[bytes, bytes]]:
    """The first chunk's headers as ASGI wants them (`response_headers`: the body is relayed as the plugin streams
    it, so the server frames it); JSON unless the plugin named a content type."""
    out = response_headers(chunk.headers)
    if not any(k == b"content-type" for k, _ in out):
        out.append((b"content-type", b"application/json"))
    return out


async def _relay_endpoint(
    send: Any, handle: Any, ctx: Context, request: EndpointRequest, stream: bool, slug: str
) -> None:
    """The plugin's answer, streamed (`stream_response`) or its first chunk; 204 when it sent nothing."""
    started = False
    try:
        async for chunk in handle.stream("handle_endpoint_request", ctx, request):
            if not started:
                if not final_status(chunk.status_code):
                    raise GatewayError(
                        502,
                        f"plugin '{slug}' endpoint answered with HTTP status {chunk.status_code}, which is not a "
                        "final status (200-599)",
                        type="plugin_error",
                        code="plugin_invalid_status",
                    )
                started = True
                await send({"type": "http.response.start", "status": chunk.status_code, "headers": _head(chunk)})
            if chunk.body:
                await send({"type": "http.response.body", "body": chunk.body, "more_body": True})
            if chunk.done or not stream:
                break
    except PluginCallError as err:
        if not started:
            raise GatewayError(
                502, f"plugin '{slug}' endpoint failed ({err.kind})", type="plugin_error", code=f"plugin_{err.kind}"
            ) from None
    if not started:
        await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
