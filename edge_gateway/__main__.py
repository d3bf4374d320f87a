"""`python -m edge_gateway`: validate the environment, then serve with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import logging

from fjordgate.env import exit_on_config_error, fail

from .settings import load_settings


def main() -> None:
    with exit_on_config_error():
        settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    import uvicorn

    from .app import create_app
    from .config_store import ConfigRejected
    from .server import server_config

    try:
        app = create_app(settings)
    except ConfigRejected as exc:
        fail(f"configuration error: {exc}")
    server = uvicorn.Server(server_config(app, settings))
    server.run()
    if not server.started:
        fail("edge did not start (see the error above)")


if __name__ == "__main__":
    main()
