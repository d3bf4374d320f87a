"""Fixtures every test in the repository may use: real PostgreSQL, NATS (JetStream) and Redis, and processes.

Loaded for the whole tree by the root `conftest.py` (`pytest_plugins`), so tests under `control_plane/`,
`edge_gateway/`, `plugins/` and `tests/` share one set of servers and one test database per test process:
`make test` runs two (pytest-xdist, `TEST_WORKERS`), each with its own servers and its own `test_<name>_gw<N>`.

Each server fixture returns a URL. When DATABASE_URL / NATS_URL / REDIS_URL is set, that server is used (a
developer's local services, CI service containers); otherwise an embedded server starts on a free port in a
temporary directory (the same code `fjordgate up` uses, see fjordgate/embedded.py) and is stopped and deleted
at the end of the session. Servers start lazily: a run that needs no database never starts PostgreSQL.

pytest-django's test database is created on `postgres_url`: `control_plane.config.test_settings` leaves a
placeholder database when DATABASE_URL is unset, and `django_db_modify_db_settings` below points it at the
embedded server before pytest-django creates `test_<name>`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fjordgate.embedded import ServerPlan, free_port, nats_plan, postgres_plan, redis_plan, run_server
from fjordgate.postgres_home import scratch_dir
from tests.support.processes import ProcessHandle, start_process


@contextmanager
def _embedded(name: str, plan_for: Callable[[Path], ServerPlan]) -> Iterator[str]:
    # PostgreSQL's data goes where its (maybe unprivileged) account can reach it: see fjordgate/postgres_home.py.
    prefix = f"fjordgate-test-{name}-"
    workdir = scratch_dir(prefix) if name == "postgres" else Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with run_server(plan_for(workdir), workdir / f"{name}.log") as server:
            yield server.url
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL (DATABASE_URL, or an embedded server; fsync off, since test data is disposable)."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    with _embedded("postgres", lambda d: postgres_plan(d / "data", free_port(), durable=False)) as url:
        yield url


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """A NATS URL with JetStream (NATS_URL, or an embedded server whose credentials are in the URL)."""
    if os.environ.get("NATS_URL"):
        yield os.environ["NATS_URL"]
        return
    with _embedded("nats", lambda d: nats_plan(d, free_port())) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis URL (REDIS_URL, or an embedded redis-server with a password, no persistence)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with _embedded("redis", lambda d: redis_plan(d, free_port(), durable=False)) as url:
        yield url


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request: pytest.FixtureRequest, postgres_url: str) -> None:
    """Point Django's default database at `postgres_url` before pytest-django creates the test database.

    Updates the settings dict in place: Django's connection handler shares that dict, so the change holds
    even if something touched `django.db.connections` before this fixture ran. When DATABASE_URL is set,
    test_settings already built the entry from it and nothing changes.
    """
    if not os.environ.get("DATABASE_URL"):
        import dj_database_url
        from django.conf import settings

        parsed = dj_database_url.parse(postgres_url)
        settings.DATABASES["default"].update(
            {key: parsed[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT") if key in parsed}
        )
    # Keep pytest-django's per-worker suffix (xdist, tox) working: it must apply after the name is final.
    request.getfixturevalue("django_db_modify_db_settings_parallel_suffix")


@pytest.fixture
def processes() -> Iterator[Callable[..., ProcessHandle]]:
    """`start_process` whose processes are all stopped (process group, no orphans) and their captured output
    deleted when the test ends."""
    started: list[ProcessHandle] = []

    def start(*args, **kwargs) -> ProcessHandle:
        handle = start_process(*args, **kwargs)
        started.append(handle)
        return handle

    yield start
    # All are told to stop first, then waited for: a teardown costs its slowest shutdown, not the sum of them.
    for handle in reversed(started):
        handle.terminate()
    for handle in reversed(started):
        handle.discard(terminated=True)
