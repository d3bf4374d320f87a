"""`GET /health` and `GET /metrics` on BRIDGE_HEALTH_HOST:BRIDGE_HEALTH_PORT, so the launcher, orchestrators and
Prometheus can probe us.

/health answers 503 with the reasons while the bridge cannot do its job: NATS disconnected, PostgreSQL
unreachable (probed every few seconds on the bridge's database thread), or the leader's duties (publishing
config, reloads, stale edges) failing several times in a row. Before issue 13 it said "ok" through all but the
first, while one bad outbox row froze every namespace. /metrics is the same counters in Prometheus' text format.

Plain asyncio streams rather than a web framework: two routes, no dependencies, no thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from django.db import connection

from .db import run_db

log = logging.getLogger("fjordgate.bridge")

LEADER_FAILURES_UNHEALTHY = 3
"""Consecutive failed leader passes (about one second apart) before /health turns 503."""


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


class HealthWatch:
    """The bridge's own view of what it depends on, kept in memory so /health never waits for the database."""

    def __init__(self, *, probe_interval_s: float = 2.0, probe_timeout_s: float = 5.0) -> None:
        self._probe_interval_s = probe_interval_s
        self._probe_timeout_s = probe_timeout_s
        self.leader_failures = 0
        """Consecutive failed leader passes; 0 after a good one."""
        self.leader_failures_total = 0
        self.last_leader_error = ""
        self.database_error: str | None = None

    def leader_duty_failed(self, exc: BaseException) -> None:
        self.leader_failures += 1
        self.leader_failures_total += 1
        self.last_leader_error = f"{type(exc).__name__}: {exc}"[:500]

    def leader_duty_succeeded(self) -> None:
        self.leader_failures = 0

    def problems(self, *, nats_connected: bool) -> list[str]:
        reasons = []
        if not nats_connected:
            reasons.append("NATS disconnected")
        if self.database_error is not None:
            reasons.append(f"PostgreSQL unreachable: {self.database_error}")
        if self.leader_failures >= LEADER_FAILURES_UNHEALTHY:
            reasons.append(f"leader duty failed {self.leader_failures} times in a row: {self.last_leader_error}")
        return reasons

    async def watch_database(self) -> None:
        while True:
            try:
                await asyncio.wait_for(run_db(_database_ping), self._probe_timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.database_error is None:
                    log.warning("PostgreSQL unreachable: %s", exc)
                self.database_error = f"{type(exc).__name__}: {exc}".strip()[:300] or "no answer"
            else:
                if self.database_error is not None:
                    log.info("PostgreSQL reachable again")
                self.database_error = None
            await asyncio.sleep(self._probe_interval_s)


def prometheus_text(status: dict) -> str:
    """Numbers and booleans of the status as `fjordgate_bridge_<name>` samples (counters end in their name)."""
    lines = []
    for name, value in status.items():
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int | float):
            lines.append(f"fjordgate_bridge_{name} {value}")
    lines.append(f"fjordgate_bridge_healthy {int(status.get('status') == 'ok')}")
    return "\n".join(lines) + "\n"


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
            path = parts[1].split("?")[0] if len(parts) >= 2 and parts[0] == "GET" else ""
            content_type = "application/json"
            if path == "/health":
                status = self._status()
                code = "200 OK" if status.get("status") == "ok" else "503 Service Unavailable"
                body = json.dumps(status).encode()
            elif path == "/metrics":
                code, content_type = "200 OK", "text/plain; version=0.0.4"
                body = prometheus_text(self._status()).encode()
            else:
                code, body = "404 Not Found", b'{"error": "not found"}'
            writer.write(
                f"HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
