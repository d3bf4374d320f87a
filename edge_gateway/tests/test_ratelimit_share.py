"""Rate-limit windows shared across the edges of a namespace: peers' counts merge into the right fixed minute,
stale ones are dropped, each increment is reported once, and over real NATS an edge counts its peers' reports
but never its own or another namespace's."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from edge_gateway.ratelimit import RateLimiter
from edge_gateway.sync.ratelimit_share import MAX_KEYS_PER_REPORT, RateLimitShare
from shared_sdk.sync_protocol import RateLimitReport, decode, namespace_up_subject

pytestmark = [pytest.mark.timeout(60)]

MINUTE = 1_000_020.0  # a fixed minute starts here (a multiple of 60)
KEY = "app:3:rpm"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _limiter(now: float = MINUTE + 15) -> tuple[RateLimiter, Clock]:
    clock = Clock(now)
    return RateLimiter(clock=clock), clock


def test_peer_counts_for_the_current_minute_fill_this_edges_window():
    limiter, _ = _limiter()
    limiter.add(KEY, 2)
    assert limiter.add_remote(MINUTE, {KEY: 7})
    assert limiter.check(KEY, 10) == 0.0  # 2 local + 7 remote + 1 fits
    limiter.add(KEY, 1)
    wait = limiter.check(KEY, 10)
    # full for the rest of the minute, then the ten it counted slide out: one of them 6 s after the turn
    assert wait == pytest.approx(45.0 + 6.0)
    assert limiter.check("app:4:rpm", 10) == 0.0, "another key is not affected"


def test_peer_counts_for_the_previous_minute_slide_out_like_local_ones():
    limiter, clock = _limiter(MINUTE + 30)  # half of the previous minute still overlaps the last 60 s
    assert limiter.add_remote(MINUTE - 60, {KEY: 10})
    assert limiter.check(KEY, 6) == 0.0  # 10 * 0.5 + 1 <= 6
    assert limiter.check(KEY, 5) > 0  # 10 * 0.5 + 1 > 5
    assert limiter.check(KEY, 5) == pytest.approx(6.0)  # 10 * (1 - (30 + t)/60) + 1 <= 5  ->  t = 6
    clock.now = MINUTE + 60
    assert limiter.check(KEY, 1) == 0.0, "a minute later those counts are two minutes old"


def test_stale_reports_are_dropped_and_a_minute_ahead_counts_now():
    limiter, _ = _limiter()
    assert not limiter.add_remote(MINUTE - 120, {KEY: 100})
    assert limiter.check(KEY, 1) == 0.0
    assert limiter.add_remote(MINUTE + 60, {KEY: 1}), "a peer whose clock is a little ahead"
    assert limiter.check(KEY, 1) > 0


def test_increments_are_taken_once_per_minute_and_peers_counts_are_not_echoed():
    limiter, clock = _limiter()
    limiter.start_sharing()
    assert limiter.take_increments() == []
    limiter.add(KEY, 2)
    limiter.add("user:3:9:tpm", 40)
    limiter.add_remote(MINUTE, {KEY: 5, "app:8:rpm": 1})
    assert limiter.take_increments() == [(MINUTE, {KEY: 2, "user:3:9:tpm": 40})]
    assert limiter.take_increments() == [], "each increment is reported once"
    limiter.add(KEY, 3)
    clock.now = MINUTE + 61  # the minute turned before the report: those 3 still belong to the previous one
    limiter.add(KEY, 1)
    assert limiter.take_increments() == [(MINUTE, {KEY: 3}), (MINUTE + 60, {KEY: 1})]
    limiter.add(KEY, 4)
    clock.now = MINUTE + 200  # those 4 are two minutes old by the next report: peers would drop them anyway
    limiter.add(KEY, 1)
    assert limiter.take_increments() == [(MINUTE + 180, {KEY: 1})]


def test_two_limiters_exchanging_reports_hold_one_limit():
    """What the share loop does, by hand: each edge admits while local + peer counts fit under 10."""
    a, _ = _limiter()
    b, _ = _limiter()
    for limiter in (a, b):
        limiter.start_sharing()
    admitted = 0
    for _ in range(20):
        for this, peer in ((a, b), (b, a)):
            if this.check(KEY, 10) == 0.0:
                this.add(KEY, 1)
                admitted += 1
            for window_start, counts in this.take_increments():
                peer.add_remote(window_start, counts)
    assert admitted == 10
    assert a.check(KEY, 10) > 0 and b.check(KEY, 10) > 0


async def _share(
    nats_url: str, namespace: str, edge_id: str, worker: str = ""
) -> tuple[RateLimiter, RateLimitShare, nats.NATS]:
    limiter, _ = _limiter()
    share = RateLimitShare(limiter, namespace=namespace, edge_id=edge_id, interval_s=0.05, worker=worker)
    nc = await nats.connect(nats_url)
    await share.attach(nc)
    return limiter, share, nc


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_over_real_nats_an_edge_counts_its_peers_reports_not_its_own_nor_another_namespaces(nats_url):
    a, share_a, nc_a = await _share(nats_url, "ns-share", "edge-a")
    b, share_b, nc_b = await _share(nats_url, "ns-share", "edge-b")
    other, share_other, nc_other = await _share(nats_url, "ns-other", "edge-o")
    wire: list[RateLimitReport] = []
    probe = await nats.connect(nats_url)

    async def collect(message) -> None:
        wire.append(decode(message.data, RateLimitReport))

    await probe.subscribe(namespace_up_subject("ns-share", "ratelimit"), cb=collect)
    for nc in (nc_a, nc_b, nc_other, probe):
        await nc.flush()
    try:
        a.add(KEY, 3)
        assert await share_a.report() == 1
        assert await share_a.report() == 0, "nothing new: nothing sent"
        await nc_a.flush()
        await _until(lambda: share_b.reports_received == 1)
        assert b.check(KEY, 3) > 0, "b counts a's 3 requests"
        assert b.check(KEY, 4) == 0.0

        other.add(KEY, 50)  # same key, another namespace
        await share_other.report()
        b.add(KEY, 1)
        assert await share_b.report() == 1
        await nc_b.flush()
        # a's own report reached a before b's (one subscription, in order): by now a ignored it
        await _until(lambda: share_a.reports_received == 1)
        assert a.check(KEY, 5) == 0.0, "3 local + 1 from b: a did not count its own report again"
        assert a.check(KEY, 4) > 0
        assert (share_a.reports_sent, share_b.reports_sent) == (1, 1)
        await _until(lambda: len(wire) == 2)
        assert [(r.edge_id, r.counts) for r in wire] == [("edge-a", {KEY: 3}), ("edge-b", {KEY: 1})]
        assert share_b.reports_received == 1 and b.check(KEY, 5) == 0.0, "b did not count ns-other's 50"
        assert share_other.reports_received == 0 and other.check(KEY, 51) == 0.0
    finally:
        for nc in (nc_a, nc_b, nc_other, probe):
            await nc.close()


async def test_without_nats_reports_are_dropped_and_local_limits_still_hold():
    limiter, _ = _limiter()
    share = RateLimitShare(limiter, namespace="ns", edge_id="e1", interval_s=0.05)  # never attached
    limiter.add(KEY, 2)
    assert await share.report() == 0
    assert share.reports_dropped == 1 and limiter.take_increments() == [], "nothing piles up"
    assert limiter.check(KEY, 2) > 0 and limiter.check(KEY, 3) == 0.0


async def test_many_keys_go_out_in_several_reports(nats_url):
    limiter, share, nc = await _share(nats_url, "ns-many", "edge-m")
    seen: list[RateLimitReport] = []

    async def collect(message) -> None:
        seen.append(decode(message.data, RateLimitReport))

    await nc.subscribe(namespace_up_subject("ns-many", "ratelimit"), cb=collect)
    try:
        for user in range(MAX_KEYS_PER_REPORT + 10):
            limiter.add(f"user:3:{user}:rpm", 1)
        assert await share.report() == 2
        await _until(lambda: len(seen) == 2)
        assert sum(len(r.counts) for r in seen) == MAX_KEYS_PER_REPORT + 10
    finally:
        await nc.close()


async def test_the_workers_of_one_edge_count_each_others_reports_not_their_own(nats_url):
    """`EDGE_WORKERS=2`: both workers publish on the edge's subject; each skips only its own echo."""
    w0, share0, nc0 = await _share(nats_url, "ns-workers", "edge-w", "0")
    w1, share1, nc1 = await _share(nats_url, "ns-workers", "edge-w", "1")
    for nc in (nc0, nc1):
        await nc.flush()
    try:
        w0.add(KEY, 3)
        assert await share0.report() == 1
        await nc0.flush()
        await _until(lambda: share1.reports_received == 1)
        assert w1.check(KEY, 3) > 0 and w1.check(KEY, 4) == 0.0, "worker 1 counts worker 0's 3"
        await asyncio.sleep(0.2)
        assert share0.reports_received == 0 and w0.check(KEY, 4) == 0.0, "worker 0 did not count its own again"
    finally:
        for nc in (nc0, nc1):
            await nc.close()
