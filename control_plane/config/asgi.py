"""ASGI entry point of the control plane's web server (`fjordgate web` runs it under uvicorn)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "control_plane.config.settings")
application = get_asgi_application()

# Studio plugins that receive events are loaded at start here too, as the bridge does: this process raises events
# (audit entries of admin and API writes) and serves chat sessions (see `control_plane.plugins.preload`).
from control_plane.plugins.preload import plugins_preload_start  # noqa: E402  (needs Django set up)

plugins_preload_start("web")
