"""The bridge's /health tells the truth (issue 13: it said "ok" while PostgreSQL was down).

A real `manage.py run_bridge` process reaches PostgreSQL through a TCP forwarder the test can cut, and NATS
directly: cutting the database turns /health into a 503 naming it (and, the bridge being the leader, its failing
leader duty); restoring it brings back 200; stopping NATS is a 503 too.
"""

from __future__ import annotations

import socket
import sys
from contextlib import suppress
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.django_db import test_database_url

from .cluster import http, wait_until
from .nats_server import TcpForwarder, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


class _Cut(TcpForwarder):
    """stop() ends the forwarded connections as a stopped server does (FIN) and really stops listening (a bare
    close() does not wake the thread blocked in accept(), so the port kept accepting)."""

    def stop(self) -> None:
        for sock in [s for s in (self._listener, *self._sockets) if s is not None]:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        super().stop()


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{port}"))


def test_health_turns_503_with_reasons_while_postgres_or_nats_is_unreachable(processes, nats_server):
    database_port = urlsplit(test_database_url()).port or 5432
    database = _Cut(database_port).start()
    port = free_port()
    env = {
        "DATABASE_URL": _through(test_database_url(), database.port),
        "NATS_URL": nats_server.url,
        "DJANGO_SETTINGS_MODULE": "control_plane.config.settings",
        "BRIDGE_HEALTH_PORT": str(port),
        "BRIDGE_HEALTH_HOST": "127.0.0.1",
        "BRIDGE_POLL_INTERVAL_MS": "50",
    }
    url = f"http://127.0.0.1:{port}/health"
    processes([sys.executable, "manage.py", "run_bridge"], env, ready_url=url, timeout=60, name="bridge")

    def health() -> tuple[int, dict]:
        status, body, _ = http("GET", url, timeout=5)
        return status, body

    wait_until(lambda: health() == (200, health()[1]) and health()[1]["leader"], timeout=30, message="leader, ok")
    try:
        database.stop()

        def unhealthy_for(*words: str):
            status, body = health()
            reasons = " | ".join(body.get("reasons", []))
            return status == 503 and all(word in reasons for word in words) and body

        body = wait_until(
            lambda: unhealthy_for("PostgreSQL unreachable", "leader duty failed"), timeout=30, message="503 (db)"
        )
        assert body["status"] == "unhealthy" and body["database_reachable"] is False
        metrics = http("GET", f"http://127.0.0.1:{port}/metrics")[1]
        assert "fjordgate_bridge_healthy 0" in metrics and "fjordgate_bridge_leader_duty_failures " in metrics

        database = _Cut(database_port, port=database.port).start()
        wait_until(lambda: health()[0] == 200, timeout=30, message="healthy again once PostgreSQL is back")

        nats_server.stop()
        wait_until(lambda: unhealthy_for("NATS disconnected"), timeout=30, message="503 (nats)")
        nats_server.start()
        wait_until(lambda: health()[0] == 200, timeout=30, message="healthy again once NATS is back")
    finally:
        database.stop()
