"""ASGI entry point of the control plane's web server (`fjordgate web` runs it under uvicorn)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "control_plane.config.settings")
application = get_asgi_application()
