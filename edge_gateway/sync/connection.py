"""The edge's NATS connection: credentials from the environment, reconnect for ever, first connect retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

import nats
from nats.aio.client import Client

from fjordgate.env import env_str

log = logging.getLogger("fjordgate.edge.sync")


def nats_auth_options(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """NATS_CREDS (a .creds file), NATS_TOKEN, or NATS_USER + NATS_PASSWORD, in that order of preference."""
    creds = env_str("NATS_CREDS", environ=environ)
    if creds:
        return {"user_credentials": creds}
    token = env_str("NATS_TOKEN", environ=environ)
    if token:
        return {"token": token}
    user = env_str("NATS_USER", environ=environ)
    if user:
        return {"user": user, "password": env_str("NATS_PASSWORD", "", environ=environ) or ""}
    return {}


async def connect_forever(
    url: str,
    *,
    name: str,
    on_connected: Callable[[Client], Awaitable[None]],
    on_state: Callable[[bool], None] | None = None,
    retry_s: float = 1.0,
    auth: dict[str, str] | None = None,
    inbox_prefix: str = "_INBOX",
) -> Client:
    """Connect (retrying while NATS is down, so an edge can start without it) and report state changes.

    `inbox_prefix`: the edge's replies (JetStream acks, KV reads, watch deliveries) arrive under
    `_INBOX.<edge id>.>`, so deploy/nats/nats.conf can let an edge subscribe to its own inboxes only: with
    `_INBOX.>` it could read the replies the bridge gets, i.e. every namespace's config.
    """

    async def disconnected() -> None:
        log.warning("edge disconnected from NATS; serving from the applied config, spooling telemetry")
        if on_state:
            on_state(False)

    async def reconnected() -> None:
        log.info("edge reconnected to NATS")
        if on_state:
            on_state(True)

    async def error(exc: Exception) -> None:
        log.debug("NATS error: %s", exc)

    while True:
        try:
            nc = await nats.connect(
                servers=[u.strip() for u in url.split(",")],
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
                inbox_prefix=inbox_prefix,
                **(auth if auth is not None else nats_auth_options()),
            )
        except (OSError, nats.errors.NoServersError, nats.errors.TimeoutError) as exc:
            log.debug("NATS at %s not reachable: %s", url, exc)
            await asyncio.sleep(retry_s)
            continue
        if on_state:
            on_state(True)
        await on_connected(nc)
        return nc
