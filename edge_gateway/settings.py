"""The edge's settings, read once at start-up through `fjordgate.env` (the only environment reader).

Why a frozen dataclass instead of module globals: the app factory takes one `EdgeSettings`, so tests build
an edge with any settings without touching the environment, and a bad value stops `python -m edge_gateway`
with one line naming the variable before anything listens.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fjordgate.env import ConfigError, env_bool, env_float, env_int, env_list, env_str, env_url
from shared_sdk.host.sources import DEFAULT_COMMAND_DIRS, DEFAULT_IMPORT_ROOTS, PluginSources

__all__ = ["EdgeSettings", "load_settings", "parse_origins"]


@dataclass(frozen=True, kw_only=True, slots=True)
class EdgeSettings:
    namespace: str = ""
    edge_id: str = field(default_factory=socket.gethostname)
    host: str = "127.0.0.1"
    port: int = 8080
    state_dir: str = ".fjordgate/edge"
    snapshot_file: str | None = None
    nats_url: str | None = None
    edge_secret: str | None = None
    """Comma-separated Fernet keys (newest first) that decrypt vendor keys inside snapshots."""
    max_body_bytes: int = 4 * 1024 * 1024
    log_bodies: bool = False
    """Ship a proxy log with the request/response bodies of each request to the control plane (off by default:
    bodies may hold personal data; without them a proxy log repeats the analytics record, and none is shipped)."""
    telemetry_queue_size: int = 10_000
    telemetry_batch_size: int = 200
    telemetry_flush_interval_s: float = 1.0
    retry_initial_backoff_s: float = 0.5
    retry_max_backoff_s: float = 5.0
    log_level: str = "info"
    upstream_client: str = "h1"
    """h1 (default: `edge_gateway.upstream_h1`) or aiohttp (`edge_gateway.upstream`)."""
    header_timeout_s: float = 10.0
    """A client must send a request's head (request line + headers) within this (slow-loris bound)."""
    body_timeout_s: float = 30.0
    """... and its body within this after the head."""
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_connections: int = 4096
    """Open client connections per edge process; the next one gets 503 and is closed."""
    upstream_deadline_s: float = 600.0
    """An upstream attempt's overall bound, from connecting to the last byte (streams included)."""
    responses_ttl_s: float = 30 * 24 * 3600.0
    """How long the edge keeps a response it created, for `previous_response_id` (`response_store.py`)."""
    responses_max_bytes: int = 1024**3
    """All stored responses together; the oldest are deleted past it (housekeeping, every minute)."""
    breaker_failures: int = 3
    """Failed upstream calls in a row that open an LLM's circuit breaker on this edge (`deployments.py`)."""
    breaker_cooldown_s: float = 30.0
    """How long an open breaker sends its LLM nothing, unless the LLM sets its own `breaker_cooldown_s`."""
    plugin_import_roots: tuple[str, ...] = DEFAULT_IMPORT_ROOTS
    """Module prefixes a snapshot's plugin import path may name (installed entry points are always allowed)."""
    plugin_command_dirs: tuple[str, ...] = DEFAULT_COMMAND_DIRS
    """Directories whose programs a snapshot's isolated plugin command may run (none by default)."""
    metrics_token: str | None = None
    """`EDGE_METRICS_TOKEN`: when set, `GET /metrics` answers only `Authorization: Bearer <token>` (401 otherwise).
    Unset, /metrics is public, as Prometheus endpoints usually are on a scrape network: its labels name the
    namespace's apps, LLMs and models and their request rates, so set it where the edge's port faces clients."""
    otel_endpoint: str | None = None
    """An OTLP/HTTP collector (`EDGE_OTEL_ENDPOINT`, e.g. http://collector:4318): traces are exported there
    (`edge_gateway/tracing.py`). Unset: no tracing at all, and the OpenTelemetry SDK is never imported."""
    otel_sample_ratio: float = 0.01
    """The share of new traces sampled (`EDGE_OTEL_SAMPLE_RATIO`, 0..1); a caller's sampled `traceparent` is
    always followed (parent-based)."""
    cors_allow_origins: tuple[str, ...] = ()
    """`EDGE_CORS_ALLOW_ORIGINS`: the origins whose pages may call the edge from a browser (exact origins, or `*`
    for any); empty: no CORS (`cors.py`)."""
    workers: int = 1
    """Worker processes serving this edge's port (`EDGE_WORKERS`, default: the cores this process may use); 1 is
    one process that binds the port itself, more is a supervisor and workers on a SO_REUSEPORT socket
    (`edge_gateway/workers.py`)."""
    worker: str = ""
    """This process's worker index ("0", "1", ...) when a supervisor started it, "" for a single-process edge.
    Set by the supervisor (`EDGE_WORKER_INDEX`), never by an operator; `state_dir` is then the worker's own."""

    @property
    def edge_state_dir(self) -> str:
        """The edge's own state directory: `state_dir` itself, or for a worker its parent (what all of the edge's
        workers share: their metrics, the stored responses)."""
        return os.path.dirname(self.state_dir) if self.worker else self.state_dir

    def plugin_sources(self) -> PluginSources:
        """What this edge loads from a snapshot, whatever the snapshot says (docs/plugins/host.md)."""
        return PluginSources(import_roots=self.plugin_import_roots, command_dirs=self.plugin_command_dirs)


MAX_WORKERS = 256
_WORKER_EDGE_ID_MAX = 59
"""Lease holders are `<edge id>/<worker>` in 64-character ledger columns: 59 + '/' + up to 3 digits + spare."""


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity, which `taskset` and container cpusets narrow)."""
    return max(1, len(os.sched_getaffinity(0)))


def _worker_settings(env: Mapping[str, str], edge_id: str, state_dir: str) -> tuple[int, str, str]:
    """(workers, worker index, state dir): a worker's state lives in `<EDGE_STATE_DIR>/<index>`."""
    workers = env_int("EDGE_WORKERS", default_workers(), minimum=1, maximum=MAX_WORKERS, environ=env)
    index = env_str("EDGE_WORKER_INDEX", environ=env)
    if workers > 1 and len(edge_id) > _WORKER_EDGE_ID_MAX:
        raise ConfigError("EDGE_ID", f"at most {_WORKER_EDGE_ID_MAX} characters with EDGE_WORKERS > 1")
    if index is None:
        return workers, "", state_dir
    if not index.isdigit() or int(index) >= workers:
        raise ConfigError("EDGE_WORKER_INDEX", f"must be 0..{workers - 1} (set by the supervisor), got {index!r}")
    return workers, str(int(index)), os.path.join(state_dir, str(int(index)))


def load_settings(environ: Mapping[str, str] | None = None) -> EdgeSettings:
    """Validate every EDGE_* variable; raises `ConfigError` naming the first bad one."""
    env = os.environ if environ is None else environ
    snapshot_file = env_str("EDGE_SNAPSHOT_FILE", environ=env)
    nats_url = env_url("NATS_URL", ("nats", "tls", "ws", "wss"), environ=env)
    if snapshot_file is None and nats_url is None:
        raise ConfigError("EDGE_SNAPSHOT_FILE", "set EDGE_SNAPSHOT_FILE (run from a snapshot file) or NATS_URL (sync)")
    if snapshot_file is not None and not os.path.isfile(snapshot_file):
        raise ConfigError("EDGE_SNAPSHOT_FILE", f"no such file: {snapshot_file!r}")
    secret = env_str("FJORDGATE_EDGE_SECRET", environ=env)
    if secret is not None:
        _check_fernet_keys(secret)
    log_level = (env_str("EDGE_LOG_LEVEL", "info", environ=env) or "info").lower()
    if log_level not in {"critical", "error", "warning", "info", "debug"}:
        raise ConfigError("EDGE_LOG_LEVEL", f"must be one of critical/error/warning/info/debug, got {log_level!r}")
    upstream_client = (env_str("EDGE_UPSTREAM_CLIENT", "h1", environ=env) or "h1").lower()
    if upstream_client not in {"h1", "aiohttp"}:
        raise ConfigError("EDGE_UPSTREAM_CLIENT", f"must be h1 or aiohttp, got {upstream_client!r}")
    import_roots = tuple(env_list("FJORDGATE_PLUGIN_IMPORT_ROOTS", list(DEFAULT_IMPORT_ROOTS), environ=env))
    command_dirs = tuple(env_list("FJORDGATE_PLUGIN_COMMAND_DIRS", list(DEFAULT_COMMAND_DIRS), environ=env))
    _check_plugin_sources(import_roots, command_dirs)
    edge_id = env_str("EDGE_ID", socket.gethostname(), environ=env) or socket.gethostname()
    state_dir = env_str("EDGE_STATE_DIR", ".fjordgate/edge", environ=env) or ".fjordgate/edge"
    workers, worker, state_dir = _worker_settings(env, edge_id, state_dir)
    return EdgeSettings(
        namespace=env_str("EDGE_NAMESPACE", "", environ=env) or "",
        edge_id=edge_id,
        host=env_str("EDGE_HOST", "127.0.0.1", environ=env) or "127.0.0.1",
        port=env_int("EDGE_PORT", 8080, minimum=1, maximum=65535, environ=env),
        state_dir=state_dir,
        workers=workers,
        worker=worker,
        snapshot_file=snapshot_file,
        nats_url=nats_url,
        edge_secret=secret,
        max_body_bytes=env_int("EDGE_MAX_BODY_BYTES", 4 * 1024 * 1024, minimum=1024, environ=env),
        log_bodies=env_bool("EDGE_LOG_BODIES", False, environ=env),
        telemetry_queue_size=env_int("EDGE_TELEMETRY_QUEUE_SIZE", 10_000, minimum=10, environ=env),
        telemetry_batch_size=env_int("EDGE_TELEMETRY_BATCH_SIZE", 200, minimum=1, environ=env),
        telemetry_flush_interval_s=env_float("EDGE_TELEMETRY_FLUSH_INTERVAL_S", 1.0, minimum=0.01, environ=env),
        retry_initial_backoff_s=env_float("EDGE_RETRY_INITIAL_BACKOFF_S", 0.5, minimum=0.0, environ=env),
        retry_max_backoff_s=env_float("EDGE_RETRY_MAX_BACKOFF_S", 5.0, minimum=0.0, environ=env),
        log_level=log_level,
        upstream_client=upstream_client,
        header_timeout_s=env_float("EDGE_HEADER_TIMEOUT_S", 10.0, minimum=0.1, environ=env),
        body_timeout_s=env_float("EDGE_BODY_TIMEOUT_S", 30.0, minimum=0.1, environ=env),
        max_header_bytes=env_int("EDGE_MAX_HEADER_BYTES", 64 * 1024, minimum=1024, environ=env),
        max_headers=env_int("EDGE_MAX_HEADERS", 100, minimum=8, environ=env),
        max_connections=env_int("EDGE_MAX_CONNECTIONS", 4096, minimum=1, environ=env),
        upstream_deadline_s=env_float("EDGE_UPSTREAM_DEADLINE_S", 600.0, minimum=1.0, environ=env),
        plugin_import_roots=import_roots,
        plugin_command_dirs=command_dirs,
        breaker_failures=env_int("EDGE_BREAKER_FAILURES", 3, minimum=1, maximum=1000, environ=env),
        breaker_cooldown_s=env_float("EDGE_BREAKER_COOLDOWN_S", 30.0, minimum=0.1, environ=env),
        responses_ttl_s=env_float("EDGE_RESPONSES_TTL_S", 30 * 24 * 3600.0, minimum=1.0, environ=env),
        metrics_token=_metrics_token(env),
        otel_endpoint=env_url("EDGE_OTEL_ENDPOINT", ("http", "https"), environ=env),
        otel_sample_ratio=_sample_ratio(env),
        cors_allow_origins=_cors_origins(env),
        responses_max_bytes=env_int("EDGE_RESPONSES_MAX_BYTES", 1024**3, minimum=1024 * 1024, environ=env),
    )


def _metrics_token(env: Mapping[str, str]) -> str | None:
    token = env_str("EDGE_METRICS_TOKEN", "", environ=env) or ""
    if not token:
        return None
    if len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigError("EDGE_METRICS_TOKEN", "must be at least 16 printable ASCII characters without spaces")
    return token


def _cors_origins(env: Mapping[str, str]) -> tuple[str, ...]:
    try:
        return parse_origins(env_str("EDGE_CORS_ALLOW_ORIGINS", "", environ=env) or "")
    except ValueError as exc:
        raise ConfigError("EDGE_CORS_ALLOW_ORIGINS", str(exc)) from None


def parse_origins(value: str) -> tuple[str, ...]:
    """The allowed origins of `EDGE_CORS_ALLOW_ORIGINS` (comma-separated): `("*",)`, or exact origins as browsers
    send them (`scheme://host[:port]`, lower case, no default port). ValueError naming the first bad one."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if items == ["*"]:
        return ("*",)
    origins = []
    for item in items:
        if item == "*":
            raise ValueError("'*' allows every origin and cannot be combined with others")
        origins.append(_origin(item))
    return tuple(dict.fromkeys(origins))


def _origin(item: str) -> str:
    """One origin in the form a browser sends in `Origin`; ValueError when `item` is not one."""
    bad = f"{item[:100]!r} is not an origin such as https://app.example.com or http://localhost:3000"
    if not item.isascii() or any(c.isspace() or c in "*\\" for c in item):
        raise ValueError(bad)
    try:
        parts = urlsplit(item)
        port = parts.port
    except ValueError:
        raise ValueError(bad) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password or port == 0:
        raise ValueError(bad)
    if parts.path or parts.query or parts.fragment or item.endswith(("?", "#")):
        raise ValueError(bad + " (no path, not even '/')")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def _sample_ratio(env: Mapping[str, str]) -> float:
    ratio = env_float("EDGE_OTEL_SAMPLE_RATIO", 0.01, minimum=0.0, environ=env)
    if ratio > 1.0:
        raise ConfigError("EDGE_OTEL_SAMPLE_RATIO", f"must be between 0 and 1, got {ratio}")
    return ratio


def _check_plugin_sources(import_roots: tuple[str, ...], command_dirs: tuple[str, ...]) -> None:
    try:
        PluginSources(import_roots=import_roots)
    except ValueError as exc:
        raise ConfigError("FJORDGATE_PLUGIN_IMPORT_ROOTS", str(exc)) from None
    try:
        PluginSources(command_dirs=command_dirs)
    except ValueError as exc:
        raise ConfigError("FJORDGATE_PLUGIN_COMMAND_DIRS", str(exc)) from None


def _check_fernet_keys(value: str) -> None:
    from cryptography.fernet import Fernet

    for key in value.split(","):
        try:
            Fernet(key.strip())
        except ValueError:
            raise ConfigError(
                "FJORDGATE_EDGE_SECRET", "must be Fernet keys (url-safe base64, 32 bytes), comma-separated"
            ) from None
