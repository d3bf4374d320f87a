"""Start-up checks each `fjordgate` subcommand runs before it execs its process.

A process that starts half-configured fails later and far from the cause (a Celery worker that cannot reach
its broker retries forever; a web server with a wrong DATABASE_URL answers 500s). So each subcommand first
validates the variables it needs, then proves the servers it needs answer, each within a short timeout, and
stops with one line naming the variable when something is wrong.
"""

from __future__ import annotations

from collections.abc import Callable

from .env import ConfigError, env_bool, env_float, env_header_name, env_int, env_str, env_url
from .probes import Unreachable, check_nats, check_postgres, check_redis

__all__ = [
    "DATABASE_SCHEMES",
    "NATS_SCHEMES",
    "REDIS_SCHEMES",
    "check_control_plane",
    "check_edge",
    "fernet_keys",
]

DATABASE_SCHEMES = ("postgres", "postgresql")
NATS_SCHEMES = ("nats", "tls", "ws", "wss")
REDIS_SCHEMES = ("redis", "rediss", "unix")
NATS_DEFAULT = "nats://127.0.0.1:4222"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"


def fernet_keys(name: str, *, required: bool) -> list[str]:
    """Comma-separated Fernet keys (newest first), each checked, so a typo is caught before data is encrypted."""
    from cryptography.fernet import Fernet

    raw = env_str(name, required=required)
    if raw is None:
        return []
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise ConfigError(
                name,
                "must be Fernet keys (url-safe base64 of 32 bytes), comma-separated; "
                "make one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`",
            ) from None
    return keys


def _timeout() -> float:
    return env_float("FJORDGATE_CHECK_TIMEOUT", 3.0, minimum=0.1)


def _reach(variable: str, probe: Callable[[], None]) -> None:
    try:
        probe()
    except Unreachable as exc:
        raise ConfigError(variable, str(exc)) from None


def _nats_probe(url: str, timeout: float) -> Callable[[], None]:
    return lambda: check_nats(
        url, timeout, user=env_str("NATS_USER"), password=env_str("NATS_PASSWORD"), token=env_str("NATS_TOKEN")
    )


def check_control_plane(*, needs_redis: bool, needs_nats: bool) -> None:
    """What every control-plane process (web, bridge, worker, beat) needs; raises `ConfigError`."""
    env_str("DJANGO_SECRET_KEY", required=True)
    database_url = env_url("DATABASE_URL", DATABASE_SCHEMES, required=True)
    fernet_keys("FJORDGATE_SECRET_KEY", required=True)
    fernet_keys("FJORDGATE_EDGE_SECRET", required=True)
    redis_url = env_url("REDIS_URL", REDIS_SCHEMES, REDIS_DEFAULT)
    nats_url = env_url("NATS_URL", NATS_SCHEMES, NATS_DEFAULT)
    _check_https()
    timeout = _timeout()
    _reach("DATABASE_URL", lambda: check_postgres(database_url, timeout))
    if needs_redis:
        _reach("REDIS_URL", lambda: check_redis(redis_url, timeout))
    if needs_nats:
        _reach("NATS_URL", _nats_probe(nats_url, timeout))


def _check_https() -> None:
    """The HTTPS variables the control plane's settings read (`control_plane/config/https.py`), so a bad one is
    this one line instead of a traceback from inside the web server."""
    env_url("FJORDGATE_PUBLIC_URL", ("http", "https"))
    env_header_name("FJORDGATE_PROXY_SSL_HEADER")
    env_int("FJORDGATE_HSTS_SECONDS", 0, minimum=0, maximum=2 * 10**8)
    for flag in ("FJORDGATE_SECURE_COOKIES", "FJORDGATE_HSTS_INCLUDE_SUBDOMAINS", "FJORDGATE_HSTS_PRELOAD"):
        env_bool(flag, False)
    env_bool("FJORDGATE_SSL_REDIRECT", False)


def check_edge() -> None:
    """The edge validates its own EDGE_* settings on import; here we prove its NATS answers, when it has one."""
    fernet_keys("FJORDGATE_EDGE_SECRET", required=False)
    nats_url = env_url("NATS_URL", NATS_SCHEMES)
    if nats_url is None and env_str("EDGE_SNAPSHOT_FILE") is None:
        raise ConfigError("NATS_URL", "is required unless EDGE_SNAPSHOT_FILE is set (an edge needs a config source)")
    if nats_url is not None:
        _reach("NATS_URL", _nats_probe(nats_url, _timeout()))
