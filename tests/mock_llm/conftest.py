"""Real HTTP: the mock runs under uvicorn in a subprocess, started exactly as operators start it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

KEY = "sk-vendor-test-key"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class MockServer:
    url: str
    process: subprocess.Popen[bytes]

    def openai(self, **options: object) -> openai.OpenAI:
        options.setdefault("max_retries", 0)
        options.setdefault("api_key", KEY)
        return openai.OpenAI(base_url=f"{self.url}/v1", **options)  # type: ignore[arg-type]

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_mock(*flags: str) -> MockServer:
    port = _free_port()
    command = [sys.executable, "-m", "fjordgate.mock_llm", "--port", str(port), *flags]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mock exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                return MockServer(url, process)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("mock did not become healthy within 20 s")


def stop_mock(server: MockServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockServer]:
    server = start_mock("--require-key", KEY)
    yield server
    stop_mock(server)


@pytest.fixture
def mock(mock_server: MockServer) -> MockServer:
    """The shared server with its log, counters and fail_times counts cleared."""
    httpx.post(f"{mock_server.url}/_mock/reset", timeout=5).raise_for_status()
    return mock_server


@pytest.fixture
def client(mock: MockServer) -> Iterator[openai.OpenAI]:
    with mock.openai() as sdk:
        yield sdk


@pytest.fixture
def http(mock: MockServer) -> Iterator[httpx.Client]:
    with mock.http() as session:
        yield session
