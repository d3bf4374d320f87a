"""A leader lease in NATS KV, so only one of several bridges publishes config, budgets and reloads.

The lease is a key in bucket FJ_BRIDGE whose entries expire after `ttl_s`; the holder renews it with a
compare-and-set on the revision it wrote. When the holder dies its entry expires and another bridge's `create`
succeeds. Losing a renewal (another bridge took over after a pause) demotes us at once.
"""

from __future__ import annotations

import asyncio
import logging

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
        self.changed = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self._revision is not None

    async def run(self) -> None:
        kv = await self._js.create_key_value(
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
