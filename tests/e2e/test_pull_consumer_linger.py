"""The bridge's pull consumers against a real JetStream server: while traffic is low (a fetch takes one message),
what arrives within the linger after it is taken in one fetch (one transaction for telemetry); a fetch of several
messages never waits."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from control_plane.bridge.pull_consumer import PullConsumer
from control_plane.bridge.runner import ensure_up_stream

pytestmark = pytest.mark.timeout(60)

SUBJECT = "fj.up.ns.edge-1.payload"


class _Recorder(PullConsumer):
    what = "test messages"
    subject = "fj.up.*.*.payload"
    durable = "fj-test-linger"

    def __init__(self, js: Any, *, fetch_batch: int, linger_s: float) -> None:
        super().__init__(js, fetch_batch=fetch_batch, linger_s=linger_s)
        self.fetches: list[list[bytes]] = []
        self.handled = asyncio.Event()

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30)

    async def handle(self, messages: list[Any]) -> None:
        self.fetches.append([m.data for m in messages])
        for message in messages:
            await message.ack()
        self.handled.set()

    def received(self) -> int:
        return sum(len(fetch) for fetch in self.fetches)


async def _started(url: str, *, fetch_batch: int, linger_s: float) -> tuple[Any, _Recorder, asyncio.Task]:
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=5)
    await ensure_up_stream(js)
    consumer = _Recorder(js, fetch_batch=fetch_batch, linger_s=linger_s)
    return nc, consumer, asyncio.create_task(consumer.run())


async def _until(condition, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def _stop(nc: Any, consumer: _Recorder, task: asyncio.Task) -> None:
    consumer.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await nc.close()


@pytest.mark.parametrize(("linger_s", "one_fetch"), [(3.0, True), (0.0, False)])
async def test_messages_arriving_within_the_linger_after_a_fetch_are_taken_in_one(nats_server, linger_s, one_fetch):
    """Five messages published 40 ms apart, just after a fetch: one fetch with the linger, several without."""
    nc, consumer, task = await _started(nats_server.url, fetch_batch=64, linger_s=linger_s)
    try:
        await nc.jetstream().publish(SUBJECT, b"first")
        await asyncio.wait_for(consumer.handled.wait(), 10)
        for n in range(5):
            await nc.jetstream().publish(SUBJECT, b"%d" % n)
            await asyncio.sleep(0.04)
        await _until(lambda: consumer.received() == 6, 10)
        assert consumer.fetches[0] == [b"first"]
        assert (len(consumer.fetches[1:]) == 1) == one_fetch, consumer.fetches
        assert [data for fetch in consumer.fetches[1:] for data in fetch] == [b"%d" % n for n in range(5)]
    finally:
        await _stop(nc, consumer, task)


async def test_a_fetch_of_several_messages_does_not_wait_for_the_linger(nats_server):
    """Under load (a backlog of 30 messages, fetches of 4) the consumer fetches back to back: with a linger of
    10 s, the backlog is taken within the test's 5 s only if no fetch of several messages waits."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream(timeout=5)
    await ensure_up_stream(js)
    for n in range(30):
        await js.publish(SUBJECT, b"%d" % n)
    consumer = _Recorder(js, fetch_batch=4, linger_s=10.0)
    task = asyncio.create_task(consumer.run())
    try:
        await _until(lambda: consumer.received() == 30, 5)
        assert [len(fetch) for fetch in consumer.fetches] == [4] * 7 + [2]
    finally:
        await _stop(nc, consumer, task)
