"""The `fjordgate` command: one subcommand per process, plus `up` (the whole stack) and `plugin new`.

Each process subcommand validates its configuration and proves its servers answer (see `preflight`), then
*replaces itself* with the real process (`os.execv`): no wrapper stays in between, so signals from a terminal,
Docker or Kubernetes reach uvicorn, Celery or the edge directly, and the exit code is the process's own.
The launcher never imports the control plane or the edge (an import-linter contract); it only names them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .env import env_int, env_str, exit_on_config_error
from .preflight import check_control_plane, check_edge

__all__ = ["main", "build_parser"]

CONTROL_PLANE_SETTINGS = "control_plane.config.settings"
ASGI_APP = "control_plane.config.asgi:application"
CELERY_APP = "control_plane.config.celery"
MANAGE_PY = Path(__file__).resolve().parent.parent / "manage.py"


def _exec(argv: list[str]) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def django_command(*args: str) -> list[str]:
    """`python manage.py ...` from a source checkout; `python -m django ...` when installed without one."""
    if MANAGE_PY.exists():
        return _python(str(MANAGE_PY), *args)
    return _python("-m", "django", *args)


def _control_plane(args: argparse.Namespace, *, needs_redis: bool, needs_nats: bool) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", CONTROL_PLANE_SETTINGS)
    if args.no_preflight:
        return
    with exit_on_config_error():
        check_control_plane(needs_redis=needs_redis, needs_nats=needs_nats)


def cmd_web(args: argparse.Namespace) -> NoReturn:
    with exit_on_config_error():
        host = args.host or env_str("FJORDGATE_WEB_HOST", "127.0.0.1")
        port = args.port or env_int("FJORDGATE_WEB_PORT", 8000, minimum=1, maximum=65535)
        workers = args.workers or env_int("FJORDGATE_WEB_WORKERS", 1, minimum=1)
    # The web server enqueues Celery tasks (schedules run on demand), so it needs Redis as well as PostgreSQL.
    _control_plane(args, needs_redis=True, needs_nats=False)
    _exec(
        _python(
            "-m",
            "uvicorn",
            ASGI_APP,
            "--host",
            str(host),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--lifespan",
            "off",
            *args.extra,
        )
    )


def cmd_bridge(args: argparse.Namespace) -> NoReturn:
    _control_plane(args, needs_redis=False, needs_nats=True)
    _exec(django_command("run_bridge", *args.extra))


def cmd_worker(args: argparse.Namespace) -> NoReturn:
    with exit_on_config_error():
        concurrency = args.concurrency or env_int("FJORDGATE_WORKER_CONCURRENCY", 2, minimum=1)
    _control_plane(args, needs_redis=True, needs_nats=False)
    _exec(
        _python(
            "-m",
            "celery",
            "-A",
            CELERY_APP,
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(concurrency),
            *args.extra,
        )
    )


def cmd_beat(args: argparse.Namespace) -> NoReturn:
    with exit_on_config_error():
        state_dir = Path(env_str("FJORDGATE_STATE_DIR", ".fjordgate") or ".fjordgate")
    _control_plane(args, needs_redis=True, needs_nats=False)
    state_dir.mkdir(parents=True, exist_ok=True)
    # Beat's own bookkeeping (last run of each entry) lives in the state dir, not the current directory.
    _exec(
        _python(
            "-m",
            "celery",
            "-A",
            CELERY_APP,
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(state_dir / "celerybeat-schedule"),
            *args.extra,
        )
    )


def cmd_edge(args: argparse.Namespace) -> NoReturn:
    if args.host:
        os.environ["EDGE_HOST"] = args.host
    if args.port:
        os.environ["EDGE_PORT"] = str(args.port)
    if args.workers is not None:
        os.environ["EDGE_WORKERS"] = str(args.workers)
    with exit_on_config_error():
        env_int("EDGE_PORT", 8080, minimum=1, maximum=65535)
        env_int("EDGE_WORKERS", 1, minimum=1, maximum=256)
        if not args.no_preflight:
            check_edge()
    _exec(_python("-m", "edge_gateway", *args.extra))


def cmd_mock_llm(args: argparse.Namespace) -> NoReturn:
    with exit_on_config_error():
        host = args.host or env_str("FJORDGATE_MOCK_LLM_HOST", "127.0.0.1")
        port = args.port or env_int("FJORDGATE_MOCK_LLM_PORT", 8070, minimum=1, maximum=65535)
    _exec(_python("-m", "fjordgate.mock_llm", "--host", str(host), "--port", str(port), *args.extra))


def cmd_up(args: argparse.Namespace) -> int:
    from .up import run_up

    return run_up(edges=args.edges, demo=not args.no_demo)


def cmd_plugin_new(args: argparse.Namespace) -> NoReturn:
    _exec(_python("-m", "shared_sdk.scaffold", args.name, "--dest", args.dest))


def _extra(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("extra", nargs="*", metavar="-- ARG", help=f"passed on to {what} (put them after --)")


def _preflight(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the start-up checks of variables and servers (`fjordgate up` passes it: it has just checked "
        "them, and each check costs a Python start-up on every child)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fjordgate",
        description="Start Fjordgate's processes. Each subcommand checks its configuration (environment "
        "variables, see README.md) and the servers it needs before it starts.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    web = sub.add_parser("web", help="the control plane's web server (Django admin + API under uvicorn)")
    web.add_argument("--host", help="listen address (FJORDGATE_WEB_HOST, default 127.0.0.1)")
    web.add_argument("--port", type=int, help="listen port (FJORDGATE_WEB_PORT, default 8000)")
    web.add_argument("--workers", type=int, help="uvicorn worker processes (FJORDGATE_WEB_WORKERS, default 1)")
    _extra(web, "uvicorn")
    _preflight(web)
    web.set_defaults(handler=cmd_web)

    bridge = sub.add_parser("bridge", help="the control plane's NATS process (config down, telemetry up)")
    _extra(bridge, "`manage.py run_bridge`")
    _preflight(bridge)
    bridge.set_defaults(handler=cmd_bridge)

    worker = sub.add_parser("worker", help="the Celery worker (schedules, periodic jobs)")
    worker.add_argument("--concurrency", type=int, help="pool size (FJORDGATE_WORKER_CONCURRENCY, default 2)")
    _extra(worker, "`celery worker`")
    _preflight(worker)
    worker.set_defaults(handler=cmd_worker)

    beat = sub.add_parser("beat", help="the Celery beat scheduler (run exactly one)")
    _extra(beat, "`celery beat`")
    _preflight(beat)
    beat.set_defaults(handler=cmd_beat)

    edge = sub.add_parser("edge", help="an edge gateway (EDGE_NAMESPACE, EDGE_ID, NATS_URL, ...)")
    edge.add_argument("--host", help="listen address (EDGE_HOST, default 127.0.0.1)")
    edge.add_argument("--port", type=int, help="listen port (EDGE_PORT, default 8080)")
    edge.add_argument(
        "--workers",
        type=int,
        help="worker processes sharing the port with SO_REUSEPORT (EDGE_WORKERS, default: the cores this process "
        "may use; 1: one process)",
    )
    _extra(edge, "`python -m edge_gateway`")
    _preflight(edge)
    edge.set_defaults(handler=cmd_edge)

    mock = sub.add_parser("mock-llm", help="the mock LLM upstream (OpenAI and Anthropic shapes)")
    mock.add_argument("--host", help="listen address (FJORDGATE_MOCK_LLM_HOST, default 127.0.0.1)")
    mock.add_argument("--port", type=int, help="listen port (FJORDGATE_MOCK_LLM_PORT, default 8070)")
    _extra(mock, "`python -m fjordgate.mock_llm`")
    mock.set_defaults(handler=cmd_mock_llm)

    up = sub.add_parser("up", help="the whole system on this machine, embedded servers when no URLs are set")
    up.add_argument("--edges", type=int, default=1, help="how many edges to start (default 1)")
    up.add_argument("--no-demo", action="store_true", help="do not seed the demo namespace, LLM, app and key")
    up.set_defaults(handler=cmd_up)

    plugin = sub.add_parser("plugin", help="plugin tools")
    plugin_sub = plugin.add_subparsers(dest="plugin_command", required=True, metavar="COMMAND")
    new = plugin_sub.add_parser("new", help="scaffold a plugin package (code, tests, README, CHANGELOG)")
    new.add_argument("name", help="the plugin's name, lower-case with dashes, e.g. pii-guard")
    new.add_argument("--dest", default=".", help="folder to create the plugin in (default: current folder)")
    new.set_defaults(handler=cmd_plugin_new)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "edges", 0) < 0:
        build_parser().error("--edges must be 0 or more")
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
