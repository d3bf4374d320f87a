"""Reachability probes for PostgreSQL, NATS, Redis and HTTP, each bounded by a short timeout.

Why here and not in each process: the launcher checks a process's servers *before* it execs it, so a wrong
DATABASE_URL or a NATS that is down costs the operator one clear line instead of a stack trace from deep inside
Django, Celery or the edge. The probes speak each protocol just far enough to prove the server answers and
accepts our credentials; they never import the control plane or the edge.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = [
    "Unreachable",
    "check_http",
    "check_nats",
    "check_postgres",
    "check_redis",
    "redact_url",
]


class Unreachable(Exception):
    """A server did not answer, or refused us; the message says which and why, in one line."""


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`, fit for logs and error lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _one_line(text: object) -> str:
    """`text` (an exception or a reason) on one line: driver messages often span several."""
    return " ".join(str(text).split())


def check_postgres(url: str, timeout: float = 3.0) -> None:
    """Open (and close) one connection with `url`; raises `Unreachable` with libpq's reason."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=max(2, int(timeout)), autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise Unreachable(f"cannot connect to PostgreSQL at {redact_url(url)}: {_one_line(exc)}") from None


def check_redis(url: str, timeout: float = 3.0) -> None:
    """PING the server at `url` (credentials and DB number from the URL)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise Unreachable(f"cannot reach Redis at {redact_url(url)}: {_one_line(exc)}") from None
    finally:
        client.close()


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        data += chunk
        if len(data) > 1 << 20:
            raise ConnectionError("no protocol line from the server")
    return data


def check_nats(
    url: str,
    timeout: float = 3.0,
    *,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> None:
    """Prove a NATS server answers at one of `url`'s servers and accepts the credentials.

    Speaks the text protocol directly (INFO, CONNECT, PING -> PONG) so the check is synchronous and needs no
    event loop. Credentials come from the URL's userinfo or the explicit arguments (NATS_USER/NATS_PASSWORD/
    NATS_TOKEN). For tls:// and ws(s):// servers, and servers that demand TLS, it only checks that the server
    greets us: the full handshake is the client library's job.
    """
    reasons = []
    for server in [s.strip() for s in url.split(",") if s.strip()]:
        try:
            _check_one_nats(server, timeout, user=user, password=password, token=token)
            return
        except (OSError, ConnectionError, ValueError) as exc:
            reasons.append(f"{redact_url(server)}: {_one_line(exc) or type(exc).__name__}")
    raise Unreachable("cannot reach NATS at " + "; ".join(reasons))


def _check_one_nats(server: str, timeout: float, *, user: str | None, password: str | None, token: str | None) -> None:
    parts = urlsplit(server)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "wss" else 80 if parts.scheme == "ws" else 4222)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        if parts.scheme in ("ws", "wss"):
            return  # a websocket listener does not greet before the upgrade; the TCP connect is our proof
        greeting = _read_line(sock)
        if not greeting.startswith(b"INFO "):
            raise ConnectionError(f"not a NATS server (greeting {greeting[:40]!r})")
        info = json.loads(greeting[5:])
        if parts.scheme == "tls" or info.get("tls_required"):
            return
        options: dict[str, object] = {"verbose": False, "pedantic": False, "name": "fjordgate-probe", "lang": "python"}
        url_user = unquote(parts.username) if parts.username else None
        url_password = unquote(parts.password) if parts.password else None
        if url_user and url_password is None and not (user or password):
            options["auth_token"] = url_user
        elif url_user or user:
            options["user"] = url_user or user
            options["pass"] = url_password if url_password is not None else (password or "")
        elif token:
            options["auth_token"] = token
        sock.sendall(b"CONNECT " + json.dumps(options).encode() + b"\r\nPING\r\n")
        while True:
            line = _read_line(sock)
            if line.startswith(b"PONG"):
                return
            if line.startswith(b"-ERR"):
                raise ConnectionError(line[4:].decode(errors="replace").strip().strip("'"))
            # +OK, PING or INFO updates may arrive first; keep reading until PONG or an error.


# Health URLs are local; an http_proxy in the operator's environment must not intercept them.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def check_http(url: str, timeout: float = 2.0) -> None:
    """GET `url` and require a 2xx answer (health endpoints are deliberately public)."""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise Unreachable(f"{url} answered {response.status}")
    except urllib.error.HTTPError as exc:
        raise Unreachable(f"{url} answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"{url} is not answering: {_one_line(reason)}") from None
