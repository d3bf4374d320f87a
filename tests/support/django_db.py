"""The URL of the database pytest-django created, for processes a test starts (bridge, workers, edges' control
plane), so they read and write what the test process sees."""

from __future__ import annotations

from urllib.parse import quote

from django.db import connections

__all__ = ["test_database_url"]


def test_database_url() -> str:
    settings = connections["default"].settings_dict
    user = quote(settings.get("USER") or "postgres")
    password = f":{quote(settings['PASSWORD'])}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or "5432"
    return f"postgresql://{user}{password}@{host}:{port}/{settings['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test, despite its name
