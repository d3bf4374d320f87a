"""Connecting to NATS with the credentials from settings, retrying for ever (NATS may start after us)."""

from __future__ import annotations

import logging

import nats
from django.conf import settings
from nats.aio.client import Client

log = logging.getLogger("fjordgate.bridge")


def connect_options() -> dict:
    options: dict = {
        "servers": [url.strip() for url in settings.NATS_URL.split(",")],
        "name": "fjordgate-bridge",
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 2,
        "allow_reconnect": True,
    }
    if settings.NATS_CREDS:
        options["user_credentials"] = settings.NATS_CREDS
    elif settings.NATS_TOKEN:
        options["token"] = settings.NATS_TOKEN
    elif settings.NATS_USER:
        options["user"] = settings.NATS_USER
        options["password"] = settings.NATS_PASSWORD or ""
    return options


async def nats_connect() -> Client:
    async def disconnected() -> None:
        log.warning("bridge disconnected from NATS; reconnecting")

    async def reconnected() -> None:
        log.info("bridge reconnected to NATS")

    async def error(exc: Exception) -> None:
        log.warning("NATS error: %s", exc)

    return await nats.connect(
        **connect_options(),
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
