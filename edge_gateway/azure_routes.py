"""Azure OpenAI's routes: code written against Azure OpenAI points at the edge unchanged.

Two families, each served by the pipeline exactly as its OpenAI twin (same plugins, governance, accounting, and
errors in OpenAI's shape, which is Azure's too):

- the deployment API, what the `openai` SDK's `AzureOpenAI` client calls:
  `POST /openai/deployments/{deployment}/chat/completions` (and `/completions`, `/embeddings`, `/responses`),
  plus the paths it calls outside a deployment, `POST /openai/responses` and `GET /openai/models`.
  The deployment names the model: it is written into the body's `model` before any hook sees the body
  (`intake.decode_call`), replacing a different one there, since Azure ignores the body's model too.
- Azure's v1 API (`openai.OpenAI(base_url=<edge>/openai/v1)`): OpenAI's own paths under `/openai/v1`.

On the deployment API `?api-version=` is required, as Azure requires it (before the key is checked, as the
mock LLM's Azure does): a missing or empty one is 400 `MissingApiVersionParameter` in OpenAI's shape, so code that
works here works at Azure too. Any value is taken and ignored: the edge serves one API surface whatever the
version. The v1 API needs none (Azure's neither). Azure's `api-key` header carries the key (`auth.client_credential`).

Why these go through the Starlette router and not `app._HotRoutes`: the deployment is a path parameter, and the
hot front's exact-path lookup stays one dict probe for the OpenAI paths the benchmark gate measures.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route, request_response

from .endpoints import ModelEndpoint, send_gateway_error
from .errors import GatewayError
from .pipeline import Pipeline

__all__ = ["DeploymentEndpoint", "Versioned", "azure_routes", "has_api_version"]

_DEPLOYMENT_KINDS = {
    "chat/completions": "chat",
    "completions": "completions",
    "embeddings": "embeddings",
    "responses": "responses",
}
"""The operations under `/openai/deployments/{deployment}/`, with the pipeline's kind of each."""


_MISSING_VERSION = GatewayError.bad_request(
    "The api-version query parameter (?api-version=) is required for all requests.",
    param="api-version",
    code="MissingApiVersionParameter",
)


def has_api_version(query: bytes) -> bool:
    """True when the query string holds a non-empty `api-version` parameter (its value is not read further)."""
    return any(
        name == b"api-version" and value for name, _, value in (pair.partition(b"=") for pair in query.split(b"&"))
    )


class Versioned:
    """An endpoint of Azure's deployment API: 400 `MissingApiVersionParameter` without `?api-version=`."""

    def __init__(self, endpoint: Any) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not has_api_version(scope.get("query_string", b"")):
            await send_gateway_error(send, _MISSING_VERSION)
            return
        await self.endpoint(scope, receive, send)


class DeploymentEndpoint:
    """`POST /openai/deployments/{deployment}/<operation>`: the pipeline's `kind`, the deployment as the model."""

    def __init__(self, pipeline: Pipeline, kind: str) -> None:
        self.pipeline = pipeline
        self.kind = kind

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        deployment = scope.get("path_params", {}).get("deployment", "")
        if not deployment:  # `/openai/deployments//chat/completions`: no deployment, no route (as Azure)
            error = GatewayError.not_found(f"no route for POST {scope['path']}", code="route_not_found")
            await send_gateway_error(send, error)
            return
        await self.pipeline.serve(scope, receive, send, self.kind, "", deployment)


def azure_routes(pipeline: Pipeline, counted: Any, llm_endpoints: dict[str, Any], stored: Any) -> list[Route]:
    """The Azure routes. `counted` wraps an endpoint in the in-flight count; `llm_endpoints` are the OpenAI routes'
    own endpoints by kind (chat, completions, embeddings, responses, models), shared with the v1 family; `stored`
    the stored responses' endpoint (`responses_endpoint`)."""
    routes = [
        # `{deployment:path}`: a model name may hold `/` (`llm-slug/model`), which the SDK sends as `%2F`.
        Route(
            f"/openai/deployments/{{deployment:path}}/{operation}",
            Versioned(counted(DeploymentEndpoint(pipeline, kind))),
            methods=["POST"],
        )
        for operation, kind in _DEPLOYMENT_KINDS.items()
    ]
    v1 = [
        Route(f"/openai/v1/{operation}", llm_endpoints[kind], methods=["POST"])
        for operation, kind in _DEPLOYMENT_KINDS.items()
    ]
    return [
        *routes,
        Route("/openai/responses", Versioned(llm_endpoints["responses"]), methods=["POST"]),
        Route("/openai/responses/{response_id}", Versioned(request_response(stored.handle)), methods=["GET", "DELETE"]),
        Route(
            "/openai/responses/{response_id}/input_items",
            Versioned(request_response(stored.input_items)),
            methods=["GET"],
        ),
        Route("/openai/models", Versioned(llm_endpoints["models"]), methods=["GET"]),
        *v1,
        Route("/openai/v1/responses/{response_id}", stored.handle, methods=["GET", "DELETE"]),
        Route("/openai/v1/responses/{response_id}/input_items", stored.input_items, methods=["GET"]),
        Route("/openai/v1/models", llm_endpoints["models"], methods=["GET"]),
        Route("/openai/v1/models/{model_id:path}", ModelEndpoint(pipeline), methods=["GET"]),
    ]
