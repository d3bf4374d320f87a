"""The bridge's health server listens where BRIDGE_HEALTH_HOST says, and on every interface when it is unset.

A real `manage.py run_bridge` process against a NATS server of its own (a bridge on the session's shared NATS
would take telemetry off other tests' streams). 127.0.0.2 is a second loopback address on Linux: a server bound
to it does not answer on 127.0.0.1, while one bound to 0.0.0.0 answers on both.
"""

from __future__ import annotations

import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fjordgate.embedded import free_port, nats_plan, run_server
from tests.support.django_db import test_database_url

TOLD = "127.0.0.2"
OTHER = "127.0.0.1"


@pytest.fixture
def private_nats_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="fj-bridge-health-nats-") as workdir:
        with run_server(nats_plan(Path(workdir), free_port()), Path(workdir) / "nats.log") as server:
            yield server.url


def _start_bridge(processes, nats_url: str, port: int, host: str | None, ready_host: str):
    env = {
        "DATABASE_URL": test_database_url(),
        "NATS_URL": nats_url,
        "NATS_USER": None,
        "NATS_PASSWORD": None,
        "NATS_TOKEN": None,
        "NATS_CREDS": None,
        "DJANGO_SETTINGS_MODULE": "control_plane.config.settings",
        "BRIDGE_HEALTH_PORT": str(port),
        "BRIDGE_HEALTH_HOST": host,  # None removes it: the default applies
    }
    return processes(
        [sys.executable, "manage.py", "run_bridge"],
        env,
        ready_url=f"http://{ready_host}:{port}/health",
        timeout=60,
        name="bridge",
    )


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except ConnectionRefusedError:
        return False


def test_health_server_listens_only_on_the_host_it_is_told(transactional_db, processes, private_nats_url):
    port = free_port()
    bridge = _start_bridge(processes, private_nats_url, port, TOLD, TOLD)
    assert not _answers(OTHER, port), f"the health server also listens on {OTHER}"
    bridge.wait_for_output(f"health on {TOLD}:{port}")  # and says where, for the operator reading its log


def test_health_server_listens_on_every_interface_by_default(transactional_db, processes, private_nats_url):
    port = free_port()
    _start_bridge(processes, private_nats_url, port, None, OTHER)
    assert _answers(TOLD, port)
