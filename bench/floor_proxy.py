"""The floor: the thinnest Starlette pass-through (one static key check, forward, relay; SSE streamed).

`bench_edge.py` runs it next to the edge, under the same uvicorn settings (uvloop + httptools, log level
warning, no access log), so "added latency" and "throughput per core" of the edge read as ratios against what
this stack costs with no features at all.

`--client aiohttp` (default) uses the HTTP client the edge uses (`edge_gateway/upstream.py`), as the shared
yardstick's own floor does (`/work/shared/bench/examples/min_starlette_proxy.py`). `--client httpx` is the
previous floor: its pool scans every keep-alive connection on each request, which made it cost ~2-5 ms CPU per
request under 32 concurrent connections here, ~10x the yardstick's reference, so ratios against it flattered
any gateway.

    python bench/floor_proxy.py --port 4100 --upstream http://127.0.0.1:9101/v1 --key sk-floor [--client httpx]
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def build_app(upstream: str, key: str, client_kind: str = "aiohttp") -> Starlette:
    url = upstream.rstrip("/") + "/chat/completions"
    forward = {"content-type": "application/json", "authorization": "Bearer sk-upstream"}
    state: dict[str, Any] = {}

    async def chat_httpx(request: Request) -> Response:
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

    async def chat_aiohttp(request: Request) -> Response:
        if request.headers.get("authorization", "") != f"Bearer {key}":
            return JSONResponse({"error": {"message": "invalid key"}}, status_code=401)
        body = await request.body()
        session = state["client"]
        reply = await session.post(url, data=body, headers=forward)
        if b'"stream":true' not in body and b'"stream": true' not in body:
            content = await reply.read()
            reply.release()
            return Response(content, status_code=reply.status, media_type="application/json")

        async def relay():
            try:
                async for piece in reply.content.iter_any():
                    yield piece
            finally:
                reply.release()

        return StreamingResponse(relay(), status_code=reply.status, media_type="text/event-stream")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if client_kind == "httpx":
            import httpx

            state["client"] = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200), timeout=60
            )
        else:
            import aiohttp

            state["client"] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1000),
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=60),
            )
        yield
        await state["client"].aclose() if client_kind == "httpx" else await state["client"].close()

    chat = chat_httpx if client_kind == "httpx" else chat_aiohttp
    return Starlette(
        routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/health", health)], lifespan=lifespan
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4100)
    parser.add_argument("--upstream", default="http://127.0.0.1:9101/v1")
    parser.add_argument("--key", default="sk-floor")
    parser.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp", help="upstream HTTP client")
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.upstream, args.key, args.client),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
