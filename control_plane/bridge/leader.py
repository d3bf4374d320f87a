"""A leader lease in NATS KV, so only one of several bridges publishes config, budgets and reloads.

The lease is a key in bucket FJ_BRIDGE whose entries expire after `ttl_s`; the holder renews it with a
compare-and-set on the revision it wrote. When the holder dies its entry expires and another bridge's `create`
succeeds. Losing a renewal (another bridge took over after a pause) demotes us at once. A holder that stops
cleanly (a rolling restart) deletes its entry (`release`), so the next bridge takes over at its next attempt
(`ttl_s / 3`) instead of waiting for the entry to expire: config publishing pauses ~2 s instead of up to ~8 s.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError

log = logging.getLogger("fjordgate.bridge")

LEADER_BUCKET = "FJ_BRIDGE"
LEADER_KEY = "leader"


class LeaderLease:
    def __init__(self, js: JetStreamContext, bridge_id: str, *, ttl_s: float = 6.0) -> None:
        self._js = js
        self._bridge_id = bridge_id
        self._ttl_s = ttl_s
        self._revision: int | None = None
        self._kv: Any = None
        self.changed = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self._revision is not None

    async def run(self) -> None:
        self._kv = kv = await self._js.create_key_value(
            KeyValueConfig(bucket=LEADER_BUCKET, history=1, ttl=self._ttl_s, replicas=settings.NATS_REPLICAS)
        )
        while True:
            was_leader = self.is_leader
            try:
                if self._revision is None:
                    self._revision = await kv.create(LEADER_KEY, self._bridge_id.encode())
                else:
                    self._revision = await kv.update(LEADER_KEY, self._bridge_id.encode(), last=self._revision)
            except (KeyWrongLastSequenceError, NotFoundError):
                self._revision = None
            except Exception as exc:  # NATS down: keep our belief until the lease would have expired anyway
                if not isinstance(exc, asyncio.CancelledError):
                    log.debug("leader lease renewal failed: %s", exc)
                    self._revision = None
                else:
                    raise
            if self.is_leader != was_leader:
                log.info("bridge %s %s leader", self._bridge_id, "became" if self.is_leader else "is no longer")
                self.changed.set()
            await asyncio.sleep(self._ttl_s / 3)

    async def release(self, *, reachable: bool = True, timeout_s: float = 1.0) -> None:
        """Give the lease up (after `run` has stopped): delete our entry if it is still the one we wrote. Best
        effort: if NATS does not answer in time, the entry expires after `ttl_s` as it would for a dead holder.
        `reachable=False` (the connection is down) skips the attempt: it could only wait out `timeout_s`, and a
        bridge stopped together with its NATS server (a host shutting down, `fjordgate up` stopping) took that long."""
        revision, self._revision = self._revision, None
        if revision is None or self._kv is None:
            return
        if not reachable:
            log.info(
                "bridge %s left the leader lease to expire in %gs (NATS unreachable)", self._bridge_id, self._ttl_s
            )
            return
        try:
            await asyncio.wait_for(self._kv.delete(LEADER_KEY, last=revision), timeout_s)
            log.info("bridge %s gave up the leader lease", self._bridge_id)
        except Exception as exc:  # another bridge took over meanwhile, or NATS is gone: the entry expires
            log.info(
                "bridge %s could not release the leader lease (%s); it expires in %gs",
                self._bridge_id,
                exc,
                self._ttl_s,
            )
