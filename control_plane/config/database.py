"""DATABASE_URL to Django's DATABASES entry; PostgreSQL only, since the control plane relies on its locking."""

from __future__ import annotations

import dj_database_url


def database_settings(url: str) -> dj_database_url.DBConfig:
    config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    config["ENGINE"] = "django.db.backends.postgresql"
    return config
