"""`fjordgate up` as a newcomer uses it: start, everything healthy, the printed examples work, Ctrl-C stops it
all, and the next `up` keeps yesterday's data; a child that dies is reported and takes the stack down cleanly.

One test runs the whole story (two `up` runs on one state directory), because the second run is only
meaningful after the first; each run costs a full stack start on a small CI machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from fjordgate.embedded import free_port
from tests.support.processes import ProcessHandle, find_processes, fjordgate_argv, start_process, wait_for_http

BANNER = "Fjordgate is up"
START_TIMEOUT = 240.0
# What test_settings put into this process's environment must not leak into the stack: `up` makes its own.
_NOT_INHERITED = (
    "DATABASE_URL",
    "NATS_URL",
    "REDIS_URL",
    "DJANGO_SECRET_KEY",
    "FJORDGATE_SECRET_KEY",
    "FJORDGATE_EDGE_SECRET",
    "FJORDGATE_ADMIN_PASSWORD",
    "DJANGO_SETTINGS_MODULE",
    "NATS_USER",
    "NATS_PASSWORD",
    "NATS_TOKEN",
)


class Stack:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.marker = uuid.uuid4().hex
        self.ports = {
            name: free_port()
            for name in (
                "FJORDGATE_WEB_PORT",
                "BRIDGE_HEALTH_PORT",
                "EDGE_PORT",
                "FJORDGATE_MOCK_LLM_PORT",
                "FJORDGATE_POSTGRES_PORT",
                "FJORDGATE_NATS_PORT",
                "FJORDGATE_REDIS_PORT",
            )
        }
        self.handles: list[ProcessHandle] = []
        self.env: dict[str, str | None] = {name: None for name in _NOT_INHERITED}
        self.env.update({name: str(port) for name, port in self.ports.items()})
        self.env.update(
            {
                "FJORDGATE_STATE_DIR": str(state),
                "FJORDGATE_TEST_MARK": self.marker,
                "FJORDGATE_STOP_TIMEOUT": "10",
                "NO_COLOR": "1",
            }
        )

    def url(self, port_name: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[port_name]}{path}"

    def up(self) -> ProcessHandle:
        handle = self.start(fjordgate_argv("up", "--edges", "1"), name="fjordgate-up")
        try:
            handle.wait_for_output(BANNER, timeout=START_TIMEOUT)
        except AssertionError:
            handle.stop()
            raise
        return handle

    def start(self, argv: list[str], name: str) -> ProcessHandle:
        handle = start_process(argv, env=self.env, name=name)
        self.handles.append(handle)
        return handle

    def leftovers(self) -> list[int]:
        return find_processes(("FJORDGATE_TEST_MARK", self.marker), cwd_under=self.state)

    def ports_in_use(self) -> list[str]:
        busy = []
        for name, port in self.ports.items():
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    busy.append(name)
        return busy

    def secrets(self) -> dict[str, str]:
        return json.loads((self.state / "secrets.json").read_text())

    def redis_client(self) -> redis.Redis:
        password = self.secrets()["redis_password"]
        return redis.Redis(host="127.0.0.1", port=self.ports["FJORDGATE_REDIS_PORT"], password=password)

    def nats_url(self) -> str:
        return f"nats://fjordgate:{self.secrets()['nats_password']}@127.0.0.1:{self.ports['FJORDGATE_NATS_PORT']}"


@pytest.fixture
def stack() -> Iterator[Stack]:
    state = Path(tempfile.mkdtemp(prefix="fjordgate-test-up-"))
    stack = Stack(state)
    try:
        yield stack
    finally:
        for handle in stack.handles:
            handle.discard()
        for pid in stack.leftovers():  # only reached when an assertion already failed
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(state, ignore_errors=True)


def admin_login(base_url: str, user: str, password: str) -> bool:
    """Log into the Django admin like a browser; True when it lets us in."""
    with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client:
        client.get("/admin/login/").raise_for_status()
        answer = client.post(
            "/admin/login/?next=/admin/",
            data={
                "username": user,
                "password": password,
                "next": "/admin/",
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
        )
        if answer.status_code != 302 or answer.headers["location"] != "/admin/":
            return False
        return "Fjordgate administration" in client.get("/admin/").text


def completion_through_edge(stack: Stack, banner: str) -> str:
    """Run the banner's curl example (URL and key as printed) and return the assistant's reply."""
    match = re.search(r"curl (\S+) -H 'Authorization: Bearer (\S+)'", banner)
    assert match, banner
    url, key = match.groups()
    assert url == stack.url("EDGE_PORT", "/v1/chat/completions")
    answer = httpx.post(
        url,
        headers={"Authorization": f"Bearer {key}"},
        trust_env=False,
        timeout=30,
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": "Hello"}]},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["choices"][0]["message"]["content"]


async def jetstream_write(url: str, stream: str) -> None:
    import nats

    client = await nats.connect(url, connect_timeout=5)
    try:
        js = client.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        await js.publish(f"{stream.lower()}.note", b"written by the first run")
    finally:
        await client.close()


async def jetstream_read(url: str, stream: str) -> bytes:
    import nats

    client = await nats.connect(url, connect_timeout=5)
    try:
        return (await client.jetstream().get_last_msg(stream, f"{stream.lower()}.note")).data
    finally:
        await client.close()


def test_up_twice_keeps_data_stops_clean_and_reports_a_dead_child(stack: Stack) -> None:
    # --- first run: everything starts and is healthy -------------------------------------------------------
    first = stack.up()
    banner = first.output()
    password = re.search(r"user admin, password (\S+)\s+\(shown once", banner)
    assert password, banner
    for port_name, path in [
        ("FJORDGATE_WEB_PORT", "/health"),
        ("BRIDGE_HEALTH_PORT", "/health"),
        ("FJORDGATE_MOCK_LLM_PORT", "/health"),
        ("EDGE_PORT", "/health"),
        ("EDGE_PORT", "/ready"),
    ]:
        wait_for_http(stack.url(port_name, path), timeout=5, handle=first)
    assert completion_through_edge(stack, banner)
    assert re.search(r"Portal\s+(\S+)", banner).group(1) == stack.url("FJORDGATE_WEB_PORT", "/portal/")
    wait_for_http(stack.url("FJORDGATE_WEB_PORT", "/portal/login/"), timeout=5, handle=first)
    assert admin_login(stack.url("FJORDGATE_WEB_PORT"), "admin", password.group(1))
    assert not admin_login(stack.url("FJORDGATE_WEB_PORT"), "admin", password.group(1) + "-wrong")

    # A second stack on the same data is refused with one line, and does not disturb the first.
    clash = stack.start(fjordgate_argv("up"), name="second-up")
    assert clash.wait(60) == 2
    assert "already using" in clash.output() and len(clash.output().strip().splitlines()) == 1

    stack.redis_client().set("launcher-test", "from the first run")
    asyncio.run(jetstream_write(stack.nats_url(), "LAUNCHER_TEST"))
    secrets_before = stack.secrets()

    # --- Ctrl-C: everything stops, nothing is left behind ---------------------------------------------------
    first.send_signal(signal.SIGINT)
    assert first.wait(90) == 0, first.tail()
    assert first.output().rstrip().endswith("fjordgate  | stopped")
    assert stack.leftovers() == []
    assert stack.ports_in_use() == []

    # --- second run: same data, same secrets, password not shown again ---------------------------------------
    second = stack.up()
    banner = second.output()
    assert "shown once" not in banner and password.group(1) not in banner
    assert "as printed on first start" in banner
    assert stack.secrets() == secrets_before
    assert admin_login(stack.url("FJORDGATE_WEB_PORT"), "admin", password.group(1))
    assert completion_through_edge(stack, banner)
    assert stack.redis_client().get("launcher-test") == b"from the first run"
    assert asyncio.run(jetstream_read(stack.nats_url(), "LAUNCHER_TEST")) == b"written by the first run"

    # --- a child dies: reported by name with its exit, and the rest is stopped ----------------------------------
    web = [
        pid
        for pid in stack.leftovers()
        if b"control_plane.config.asgi:application" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(web) == 1
    os.kill(web[0], signal.SIGKILL)
    assert second.wait(90) == 1, second.tail()
    output = second.output()
    assert f"web (pid {web[0]}) stopped unexpectedly, killed by SIGKILL" in output
    assert "stopped after a failure" in output
    assert stack.leftovers() == []
    assert stack.ports_in_use() == []
