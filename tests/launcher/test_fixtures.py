"""The session fixtures hand out real servers, pytest-django's database lives on them, and they clean up."""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from fjordgate.embedded import ServerStartError, free_port, nats_plan, postgres_plan, redis_plan, run_server
from fjordgate.postgres_home import scratch_dir
from tests.support.processes import find_processes


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A scratch directory the account PostgreSQL runs under can reach (we may run as root), so the data of
    the servers started here is deleted with it."""
    path = scratch_dir("fjordgate-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_postgres_url_accepts_connections_and_writes(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        table = f"fixture_probe_{uuid.uuid4().hex[:8]}"
        conn.execute(f"CREATE TEMP TABLE {table} (value text)")
        conn.execute(f"INSERT INTO {table} VALUES ('kept')")
        assert conn.execute(f"SELECT value FROM {table}").fetchone() == ("kept",)
        assert conn.execute("SHOW server_version_num").fetchone()[0] >= "150000"


@pytest.mark.django_db
def test_django_test_database_lives_on_postgres_url(postgres_url: str) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    expected = urlsplit(postgres_url)
    settings = connection.settings_dict
    assert connection.vendor == "postgresql"
    assert settings["NAME"].startswith("test_")
    assert (settings["HOST"] or "localhost", int(settings["PORT"] or 5432)) == (
        expected.hostname or "localhost",
        expected.port or 5432,
    )
    user = get_user_model().objects.create_user("fixture-check", password="not-used-anywhere")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), count(*) FROM auth_user WHERE id = %s", [user.pk])
        database, count = cursor.fetchone()
    assert (database, count) == (settings["NAME"], 1)


def test_nats_url_has_jetstream_and_authenticates(nats_url: str) -> None:
    import nats

    async def roundtrip() -> bytes:
        client = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=0)
        try:
            js = client.jetstream()
            stream = f"FIXTURE_{uuid.uuid4().hex[:8].upper()}"
            await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
            await js.publish(f"{stream.lower()}.probe", b"kept")
            message = await js.get_last_msg(stream, f"{stream.lower()}.probe")
            await js.delete_stream(stream)
            return message.data
        finally:
            await client.close()

    assert asyncio.run(roundtrip()) == b"kept"


def test_redis_url_accepts_commands(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    key = f"fixture-probe-{uuid.uuid4().hex}"
    try:
        client.set(key, "kept", ex=60)
        assert client.get(key) == b"kept"
    finally:
        client.delete(key)
        client.close()


def test_embedded_nats_rejects_wrong_credentials(server_dir: Path) -> None:
    import nats
    from nats.errors import Error as NatsError

    port = free_port()
    with run_server(nats_plan(server_dir, port, password="right-password"), server_dir / "nats.log"):

        async def connect_with_wrong_password() -> None:
            client = await nats.connect(
                f"nats://fjordgate:wrong-password@127.0.0.1:{port}",
                connect_timeout=3,
                max_reconnect_attempts=0,
                allow_reconnect=False,
            )
            await client.close()

        with pytest.raises((NatsError, OSError)):
            asyncio.run(connect_with_wrong_password())


@pytest.mark.parametrize("kind", ["postgres", "nats", "redis"])
def test_embedded_server_stops_and_leaves_no_process(kind: str, server_dir: Path, monkeypatch) -> None:
    marker = uuid.uuid4().hex
    monkeypatch.setenv("FJORDGATE_TEST_MARK", marker)  # inherited by the server: finds it even as an orphan
    port = free_port()
    plans = {
        "postgres": lambda: postgres_plan(server_dir / "pg", port, durable=False),
        "nats": lambda: nats_plan(server_dir / "nats", port),
        "redis": lambda: redis_plan(server_dir / "redis", port, durable=False),
    }
    with run_server(plans[kind](), server_dir / f"{kind}.log") as server:
        assert _listening(port)
        assert find_processes(("FJORDGATE_TEST_MARK", marker), cwd_under=server_dir)
        server.plan.check()
    assert not _listening(port)
    assert find_processes(("FJORDGATE_TEST_MARK", marker), cwd_under=server_dir) == []


def test_embedded_postgres_keeps_data_across_restarts(server_dir: Path) -> None:
    data_dir = server_dir / "pg"
    with run_server(postgres_plan(data_dir, free_port()), server_dir / "pg.log") as first:
        with psycopg.connect(first.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (value text)")
            conn.execute("INSERT INTO kept VALUES ('yesterday')")
    with run_server(postgres_plan(data_dir, free_port()), server_dir / "pg.log") as second:
        with psycopg.connect(second.url) as conn:
            assert conn.execute("SELECT value FROM kept").fetchone() == ("yesterday",)


def test_server_that_cannot_start_is_reported_with_its_log(server_dir: Path) -> None:
    with socket.socket() as occupied:
        occupied.bind(("127.0.0.1", 0))
        occupied.listen()
        port = occupied.getsockname()[1]
        with pytest.raises(ServerStartError) as failure:
            with run_server(redis_plan(server_dir, port, durable=False), server_dir / "redis.log", timeout=10):
                pass
    message = str(failure.value)
    assert "redis exited before it accepted connections" in message
    assert "Address already in use" in message or "bind" in message.lower()
