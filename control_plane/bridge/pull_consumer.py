"""The loop every durable JetStream pull consumer of the bridge runs: subscribe, fetch, handle, stop between fetches.

Why stop between fetches: a fetch that is cancelled leaves its pull request open on the server until it expires
(the fetch timeout, 1 s) or the connection closes, and what the server sends it meanwhile waits, unacknowledged,
for the consumer's ack wait (30 s for telemetry) to be sent again; so does a fetch's batch whose commit was under
way when it was cancelled. `stop()` instead lets the fetch in progress end, its messages be handled (committed,
acknowledged), and the subscription go. The bridge's runner calls it on stop and cancels what has not finished
after `CONSUMER_GRACE_S`.

`linger_s`: after a fetch that took a single message, the next one waits until this long after the last began, so
that it takes what arrived meanwhile in one go. Every fetch of the telemetry consumer is one transaction with fixed
costs (the identity lookups, three bulk inserts, the commit, the budget figures it marks for recomputation); one
edge at low traffic publishes a small batch every 50 ms, and storing each alone cost the bridge and PostgreSQL more
than the records themselves. A fetch that took several messages goes straight on: with more traffic, or more edges,
the fixed costs are shared already, and a wait would only add to the ingest lag.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from contextlib import suppress
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from shared_sdk.sync_protocol import UP_STREAM

log = logging.getLogger("fjordgate.bridge")

FETCH_TIMEOUT_S = 1.0


class PullConsumer(ABC):
    """Subclasses name the subject, durable and config, and handle each fetch's messages in `handle`."""

    what = "messages"
    subject = ""
    durable = ""

    def __init__(self, js: JetStreamContext, *, fetch_batch: int, linger_s: float = 0.0) -> None:
        self._js = js
        self._fetch_batch = fetch_batch
        self._linger_s = linger_s
        self._stopping = False

    @abstractmethod
    def consumer_config(self) -> ConsumerConfig:
        """The durable consumer's settings (ack policy, ack wait, pending bound)."""

    @abstractmethod
    async def handle(self, messages: list[Any]) -> None:
        """Decode, store and acknowledge (or terminate) one fetch's messages."""

    def stop(self) -> None:
        """Stop once the fetch in progress is handled (at most its timeout plus one commit; see the module)."""
        self._stopping = True

    async def run(self) -> None:
        while not self._stopping:
            try:
                subscription = await self._js.pull_subscribe(
                    self.subject, durable=self.durable, stream=UP_STREAM, config=self.consumer_config()
                )
                await self._consume(subscription)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s consumer interrupted (%s); resubscribing", self.what, exc)
                await asyncio.sleep(1)

    async def _consume(self, subscription: Any) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            began = loop.time()
            try:
                messages = await subscription.fetch(self._fetch_batch, timeout=FETCH_TIMEOUT_S)
            except TimeoutError:  # nats.errors.TimeoutError or a bare one from fetch()
                continue
            await self.handle(messages)
            if self._linger_s and len(messages) == 1:
                await asyncio.sleep(max(0.0, began + self._linger_s - loop.time()))
        with suppress(Exception):
            await subscription.unsubscribe()
