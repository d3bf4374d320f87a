"""Settings of the running control plane: everything in `base`, and the database from DATABASE_URL (required)."""

from fjordgate.env import env_url

from .base import *  # noqa: F403
from .database import database_settings

DATABASES = {"default": database_settings(env_url("DATABASE_URL", ("postgres", "postgresql"), required=True))}
