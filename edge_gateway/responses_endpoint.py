"""`GET` / `DELETE /v1/responses/{response_id}` and `GET .../input_items`: the responses the edge stored
(`edge_gateway.response_store`).

Authenticated by the app key (as `/v1/models`); an id that is unknown, expired, or another app's is a 404 in
OpenAI's shape, so a caller cannot tell another app's ids from made-up ones.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .auth import authenticate_key, client_credential, find_credential
from .config_store import ConfigStore
from .errors import GatewayError, error_response
from .response_items import input_items_page, parse_items_query
from .response_store import ResponseStore

__all__ = ["StoredResponsesEndpoint"]


class StoredResponsesEndpoint:
    """`GET` / `DELETE /v1/responses/{response_id}` and its `input_items`: the caller's app key; 404 for unknown or
    another app's ids."""

    def __init__(self, store: ConfigStore, responses: ResponseStore) -> None:
        self.store = store
        self.responses = responses

    async def handle(self, request: Request) -> Response:
        found = await self._entry(request)
        if isinstance(found, Response):
            return found
        app_id, response_id, entry = found
        if request.method == "DELETE":
            await self.responses.delete(app_id, response_id)
            return _json(200, {"id": response_id, "object": "response.deleted", "deleted": True})
        return _json(200, entry["response"])

    async def input_items(self, request: Request) -> Response:
        """`GET /v1/responses/{response_id}/input_items` (`response_items`): authenticated and found first, as
        the response itself, then the query checked."""
        found = await self._entry(request)
        if isinstance(found, Response):
            return found
        _, response_id, entry = found
        params = request.query_params
        try:
            query = parse_items_query(params, [*params.getlist("include"), *params.getlist("include[]")])
            return _json(200, input_items_page(response_id, entry, query))
        except GatewayError as err:
            return _error(err)

    async def _entry(self, request: Request) -> tuple[int, str, dict[str, Any]] | Response:
        """The caller's app, the path's response id and its stored entry; else the error answer."""
        cfg = self.store.current
        if cfg is None:
            return _error(GatewayError(503, "this edge has no configuration loaded yet", type="service_unavailable"))
        credential, _ = client_credential(request.headers)
        try:
            app, _ = authenticate_key(cfg, credential, find_credential(cfg, credential))
        except GatewayError as err:
            return _error(err)
        response_id = request.path_params["response_id"]
        entry = await self.responses.load(app.id, response_id)
        if entry is None:
            message = f"Response with id '{response_id}' not found."
            return _error(GatewayError.not_found(message, code="response_not_found"))
        return app.id, response_id, entry


def _json(status: int, payload: Any) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _error(err: GatewayError) -> Response:
    return error_response(err.status_code, err.message, err.type, err.code, err.param, err.headers)
