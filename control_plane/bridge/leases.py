"""Quota leases for the edges: `fj.up.<ns>.<edge>.lease` requests, answered from the PostgreSQL ledger.

Core NATS request/reply in the bridges' queue group, so one bridge answers each request; the ledger's row locks
(`control_plane.budgets.leasing`) keep any number of bridges consistent. The edge's identity comes from the
subject, which NATS permissions pin to the edge's own (deploy/nats/nats.conf); a body naming another edge is
refused; a worker of a multi-worker edge holds its own leases as `<edge>/<worker>`, which only that edge's
subject may name (`lease_holder_of`). Each request is handled in its own task, so a slow transaction does not hold up other edges.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg

from control_plane.budgets.leasing import budget_lease_grant, rate_lease_grant
from shared_sdk.sync_protocol import (
    BRIDGE_QUEUE_GROUP,
    LeaseReply,
    LeaseRequest,
    decode,
    encode,
    lease_holder_of,
)

from .db import run_db_leases
from .identity import up_identity

log = logging.getLogger("fjordgate.bridge")

MAX_ASKS = 1000
"""Budgets per request (an edge asks for the few budgets one request touches, renewals for those it holds)."""


class LeaseResponder:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._tasks: set[asyncio.Task] = set()
        self.answered = 0

    async def start(self) -> None:
        await self._nc.subscribe("fj.up.*.*.lease", queue=BRIDGE_QUEUE_GROUP, cb=self._on_request)

    async def _on_request(self, message: Msg) -> None:
        task = asyncio.create_task(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: Msg) -> None:
        reply = LeaseReply()
        try:
            identity = up_identity(message.subject, "lease")
            namespace = identity.namespace
            request = decode(message.data, LeaseRequest)
            edge_id = lease_holder_of(identity.edge_id, request.edge_id)  # the edge or one of its workers
            if len(request.asks) + len(request.rates) > MAX_ASKS:
                raise ValueError(f"at most {MAX_ASKS} budgets and rate limits per lease request")
            if request.asks:
                reply.grants = await run_db_leases(
                    budget_lease_grant, edge_id=edge_id, namespace=namespace, asks=request.asks
                )
            if request.rates:
                reply.rates = await run_db_leases(
                    rate_lease_grant, edge_id=edge_id, namespace=namespace, asks=request.rates
                )
        except Exception as exc:
            log.warning("lease request on %s failed: %s", message.subject, exc)
            reply.error = str(exc) or type(exc).__name__
        if message.reply:
            try:
                await message.respond(encode(reply))
                self.answered += 1
            except Exception as exc:
                log.debug("lease reply not sent: %s", exc)
