"""Fixtures of the schedules tests: the broker URL, and real Celery workers and beats on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.django_db import test_database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def broker_url(request) -> str:
    """The project's `redis_url` fixture (embedded Redis when REDIS_URL is unset) when present, else REDIS_URL."""
    try:
        return request.getfixturevalue("redis_url")
    except pytest.FixtureLookupError:
        url = os.environ.get("REDIS_URL")
        if not url:
            pytest.fail("Set REDIS_URL (or provide the redis_url fixture) for the real-broker schedules tests.")
        return url


class CeleryProcesses:
    """Worker and beat processes started for a test; output goes to files shown when a test fails."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = self.workdir / f"{name}.log"
        argv = [sys.executable, "-m", "celery", "-A", "control_plane.config.celery", *args]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append((name, proc, log))
        return proc

    def worker(self, name: str, concurrency: int = 3) -> subprocess.Popen:
        return self._start(
            name,
            [
                "worker",
                "--pool=prefork",
                f"--concurrency={concurrency}",
                f"--hostname={name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
            ],
        )

    def beat(self, name: str) -> subprocess.Popen:
        return self._start(
            name, ["beat", f"--schedule={self.workdir / (name + '.db')}", "--pidfile=", "--loglevel=DEBUG"]
        )

    def log(self, name: str) -> str:
        for proc_name, _, path in self.procs:
            if proc_name == name:
                return path.read_text(errors="replace")
        raise KeyError(name)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for name, proc, _ in self.procs:
            marker = "ready." if "worker" in name else "beat: Starting"
            while marker not in self.log(name):
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-4000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} not ready within {timeout}s:\n{self.log(name)[-4000:]}")
                time.sleep(0.2)

    def alive(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc, _ in self.procs}

    def stop(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, proc, _ in self.procs:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture(scope="module")
def celery_processes(broker_url, django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[CeleryProcesses]:
    """Factory of worker/beat processes pointed at the test database and broker; all killed at module end."""
    import redis

    redis.Redis.from_url(broker_url).flushdb()  # no stale messages from an earlier run
    with django_db_blocker.unblock():
        database_url = test_database_url()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "control_plane.config.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": broker_url,
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production"),
        "FJORDGATE_SECRET_KEY": os.environ.get("FJORDGATE_SECRET_KEY", ""),
        "FJORDGATE_EDGE_SECRET": os.environ.get("FJORDGATE_EDGE_SECRET", ""),
        "FJORDGATE_SCHEDULE_TICK_SECONDS": "0.5",
        "FJORDGATE_SCHEDULE_LOG_TICKS": "1",  # the tests count each beat's dispatch lines
        "PYTHONPATH": str(ROOT),
    }
    processes = CeleryProcesses(tmp_path_factory.mktemp("celery"), env)
    try:
        yield processes
    finally:
        processes.stop()
