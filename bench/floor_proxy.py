"""The floor: the thinnest Starlette + httpx pass-through (one static key check, forward, relay; SSE streamed).

`bench_edge.py` runs it next to the edge, under the same uvicorn settings, so "added latency" and "throughput
per core" of the edge read as ratios against what this stack costs with no features at all.

    python bench/floor_proxy.py --port 4100 --upstream http://127.0.0.1:9101/v1 --key sk-floor
"""

from __future__ import annotations

import argparse
import contextlib

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def build_app(upstream: str, key: str) -> Starlette:
    url = upstream.rstrip("/") + "/chat/completions"
    forward = {"content-type": "application/json", "authorization": "Bearer sk-upstream"}
    state: dict[str, httpx.AsyncClient] = {}

    async def chat(request: Request) -> Response:
        if request.headers.get("authorization", "") != f"Bearer {key}":
            return JSONResponse({"error": {"message": "invalid key"}}, status_code=401)
        body = await request.body()
        client = state["client"]
        if b'"stream":true' not in body and b'"stream": true' not in body:
            reply = await client.post(url, content=body, headers=forward)
            return Response(reply.content, status_code=reply.status_code, media_type="application/json")
        reply = await client.send(client.build_request("POST", url, content=body, headers=forward), stream=True)

        async def relay():
            try:
                async for piece in reply.aiter_raw():
                    yield piece
            finally:
                await reply.aclose()

        return StreamingResponse(relay(), status_code=reply.status_code, media_type="text/event-stream")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        state["client"] = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200), timeout=60
        )
        yield
        await state["client"].aclose()

    return Starlette(
        routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/health", health)], lifespan=lifespan
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4100)
    parser.add_argument("--upstream", default="http://127.0.0.1:9101/v1")
    parser.add_argument("--key", default="sk-floor")
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.upstream, args.key), host=args.host, port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
