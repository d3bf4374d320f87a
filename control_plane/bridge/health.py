"""`GET /health` on BRIDGE_HEALTH_HOST:BRIDGE_HEALTH_PORT: a tiny HTTP responder so the launcher and orchestrators
can probe us.

Plain asyncio streams rather than a web framework: one route, no dependencies, no thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable


class HealthServer:
    def __init__(self, port: int, status: Callable[[], dict], *, host: str = "127.0.0.1") -> None:
        self._host = host
        self._port = port
        self._status = status
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] == "/health":
                status = self._status()
                code = "200 OK" if status.get("nats_connected") else "503 Service Unavailable"
                body = json.dumps(status).encode()
            else:
                code, body = "404 Not Found", b'{"error": "not found"}'
            writer.write(
                f"HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
