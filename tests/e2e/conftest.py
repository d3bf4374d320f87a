import pytest

from .nats_server import NatsServer


@pytest.fixture
def nats_server():
    """A private JetStream server per test (the failure tests stop and restart it)."""
    server = NatsServer().start()
    yield server
    server.cleanup()
