"""`fjordgate <process>`: a bad configuration costs one line and a non-zero exit; a good one becomes the process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from cryptography.fernet import Fernet

from fjordgate.embedded import free_port, nats_plan, run_server
from tests.support.processes import ROOT, fjordgate_argv

GOOD_SECRETS = {
    "DJANGO_SECRET_KEY": "launcher-test-secret",
    "FJORDGATE_SECRET_KEY": Fernet.generate_key().decode(),
    "FJORDGATE_EDGE_SECRET": Fernet.generate_key().decode(),
}
# Everything a test sets explicitly, including what test_settings put into this process's environment.
_CLEARED = (
    "DATABASE_URL",
    "NATS_URL",
    "REDIS_URL",
    "NATS_USER",
    "NATS_PASSWORD",
    "NATS_TOKEN",
    "EDGE_SNAPSHOT_FILE",
    "DJANGO_SECRET_KEY",
    "FJORDGATE_SECRET_KEY",
    "FJORDGATE_EDGE_SECRET",
    "DJANGO_SETTINGS_MODULE",
)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    full_env.update(env)
    return subprocess.run(fjordgate_argv(*args), env=full_env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def assert_one_line_failure(result: subprocess.CompletedProcess, *expected: str) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def unused_url(scheme: str, path: str = "") -> str:
    return f"{scheme}://127.0.0.1:{free_port()}{path}"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@pytest.mark.parametrize("command", ["web", "worker", "beat", "bridge"])
def test_unreachable_database_is_one_line(command: str) -> None:
    env = dict(GOOD_SECRETS, DATABASE_URL=unused_url("postgresql", "/fjordgate"))
    line = assert_one_line_failure(run_cli(command, env=env), "DATABASE_URL", "cannot connect to PostgreSQL")
    assert line.startswith("fjordgate: configuration error:")


def test_database_url_of_another_engine_is_rejected_before_connecting() -> None:
    env = dict(GOOD_SECRETS, DATABASE_URL="mysql://root@127.0.0.1/fjordgate")
    assert_one_line_failure(run_cli("web", env=env), "DATABASE_URL", "scheme must be one of postgres, postgresql")


def test_missing_database_is_named(postgres_url: str) -> None:
    env = dict(GOOD_SECRETS, DATABASE_URL=with_database(postgres_url, "no_such_database_here"))
    assert_one_line_failure(run_cli("worker", env=env), "DATABASE_URL", 'database "no_such_database_here"')


@pytest.mark.parametrize("command", ["bridge", "edge"])
def test_unreachable_nats_is_one_line(command: str, postgres_url: str) -> None:
    env = dict(GOOD_SECRETS, DATABASE_URL=postgres_url, NATS_URL=unused_url("nats"))
    assert_one_line_failure(run_cli(command, env=env), "NATS_URL", "cannot reach NATS", "Connection refused")


@pytest.fixture
def nats_with_password() -> Iterator[str]:
    workdir = Path(tempfile.mkdtemp(prefix="fjordgate-test-nats-"))
    try:
        with run_server(nats_plan(workdir, free_port(), password="the-right-one"), workdir / "nats.log") as server:
            yield server.url
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_nats_with_wrong_password_is_one_line(nats_with_password: str, postgres_url: str) -> None:
    wrong = nats_with_password.replace("the-right-one", "a-wrong-one")
    env = dict(GOOD_SECRETS, DATABASE_URL=postgres_url, NATS_URL=wrong)
    line = assert_one_line_failure(run_cli("bridge", env=env), "NATS_URL", "Authorization Violation")
    assert "a-wrong-one" not in line  # credentials never reach logs


def test_edge_without_any_config_source_is_one_line() -> None:
    assert_one_line_failure(run_cli("edge", env={}), "NATS_URL", "EDGE_SNAPSHOT_FILE")


@pytest.mark.parametrize("command", ["web", "worker", "beat"])
def test_unreachable_redis_is_one_line(command: str, postgres_url: str) -> None:
    env = dict(GOOD_SECRETS, DATABASE_URL=postgres_url, REDIS_URL=unused_url("redis", "/0"))
    assert_one_line_failure(run_cli(command, env=env), "REDIS_URL", "cannot reach Redis")


def test_missing_secret_key_is_named(postgres_url: str) -> None:
    env = {k: v for k, v in GOOD_SECRETS.items() if k != "DJANGO_SECRET_KEY"}
    env["DATABASE_URL"] = postgres_url
    assert_one_line_failure(run_cli("web", env=env), "DJANGO_SECRET_KEY", "is required")


def test_malformed_fernet_key_is_named(postgres_url: str) -> None:
    env = dict(GOOD_SECRETS, DATABASE_URL=postgres_url, FJORDGATE_SECRET_KEY="not-a-fernet-key")
    assert_one_line_failure(run_cli("web", env=env), "FJORDGATE_SECRET_KEY", "Fernet")


def test_up_with_unreachable_database_is_one_line_and_starts_nothing() -> None:
    state = Path(tempfile.mkdtemp(prefix="fjordgate-test-up-"))
    try:
        env = {"FJORDGATE_STATE_DIR": str(state), "DATABASE_URL": unused_url("postgresql", "/fjordgate")}
        # free ports, not the defaults: a `make up` on this machine holds 8000 (its port check comes first)
        ports = ("FJORDGATE_WEB_PORT", "BRIDGE_HEALTH_PORT", "EDGE_PORT", "FJORDGATE_MOCK_LLM_PORT")
        env.update({variable: str(free_port()) for variable in (*ports, "FJORDGATE_NATS_PORT", "FJORDGATE_REDIS_PORT")})
        assert_one_line_failure(run_cli("up", env=env), "DATABASE_URL", "cannot connect to PostgreSQL")
        assert not (state / "postgres").exists()
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_web_execs_uvicorn_and_stops_on_sigterm(postgres_url: str, redis_url: str, processes) -> None:
    port = free_port()
    env = dict(GOOD_SECRETS, DATABASE_URL=postgres_url, REDIS_URL=redis_url, FJORDGATE_WEB_PORT=str(port))
    web = processes(fjordgate_argv("web"), env=env, ready_url=f"http://127.0.0.1:{port}/health", timeout=60)
    # The launcher replaced itself: the pid we started is uvicorn, so signals reach it directly.
    cmdline = Path(f"/proc/{web.pid}/cmdline").read_bytes().split(b"\0")
    assert b"uvicorn" in cmdline and b"control_plane.config.asgi:application" in cmdline
    os.kill(web.pid, signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal so its parent sees how it ended.
    assert web.wait(30) in (0, -signal.SIGTERM)
    assert "Finished server process" in web.output()
    assert not Path(f"/proc/{web.pid}").exists()


def test_mock_llm_subcommand_serves_health(processes) -> None:
    port = free_port()
    mock = processes(fjordgate_argv("mock-llm", "--port", str(port)), ready_url=f"http://127.0.0.1:{port}/health")
    assert b"fjordgate.mock_llm" in Path(f"/proc/{mock.pid}/cmdline").read_bytes()


def test_up_refuses_a_busy_port_in_one_line() -> None:
    state = Path(tempfile.mkdtemp(prefix="fjordgate-test-up-"))
    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            env = {"FJORDGATE_STATE_DIR": str(state), "FJORDGATE_WEB_PORT": str(busy.getsockname()[1])}
            assert_one_line_failure(run_cli("up", env=env), "FJORDGATE_WEB_PORT", "already in use")
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.parametrize("workers", ["0", "257"])
def test_edge_workers_out_of_range_is_one_line(workers: str) -> None:
    env = {"EDGE_SNAPSHOT_FILE": str(ROOT / "pyproject.toml")}
    assert_one_line_failure(run_cli("edge", "--no-preflight", "--workers", workers, env=env), "EDGE_WORKERS")
