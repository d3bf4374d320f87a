"""Project configuration: settings, URLs, ASGI entry point and the Celery application."""
