"""`python -m edge_gateway`: validate the environment, then serve with uvicorn (uvloop + httptools).

With `EDGE_WORKERS` > 1 this process becomes the supervisor of that many workers (`workers.py`); a worker
(`EDGE_WORKER_INDEX` set by the supervisor) serves on its own SO_REUSEPORT socket of the edge's port.
"""

from __future__ import annotations

import logging
import sys

from fjordgate.env import exit_on_config_error, fail

from .settings import EdgeSettings, load_settings


def main() -> None:
    with exit_on_config_error():
        settings = load_settings()
    prefix = f"[worker {settings.worker}] " if settings.worker else ""
    logging.basicConfig(
        level=settings.log_level.upper(), format=f"%(asctime)s %(levelname)s %(name)s {prefix}%(message)s"
    )
    if settings.workers > 1 and not settings.worker:
        from .workers import Supervisor

        sys.exit(Supervisor(settings).run())
    serve(settings)


def serve(settings: EdgeSettings) -> None:
    """One edge process: the whole edge (workers == 1) or one worker of it."""
    import uvicorn

    from .app import create_app
    from .config_store import ConfigRejected
    from .server import server_config

    try:
        app = create_app(settings)
    except ConfigRejected as exc:
        fail(f"configuration error: {exc}")
    server = uvicorn.Server(server_config(app, settings))
    if settings.worker:
        from .workers import reuseport_socket

        try:
            sock = reuseport_socket(settings.host, settings.port)
        except OSError as exc:
            fail(f"worker {settings.worker} cannot listen on {settings.host}:{settings.port}: {exc}", code=1)
        server.run(sockets=[sock])
    else:
        server.run()
    if not server.started:
        fail("edge did not start (see the error above)")


if __name__ == "__main__":
    main()
