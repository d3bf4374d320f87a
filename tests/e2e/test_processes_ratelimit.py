"""Rate limits across the edges of a namespace, through real processes and a real NATS: an app's RPM holds for
the namespace however its requests are split between two edges, where edges that do not share admit the limit
each; and the edge sync service keeps limiting locally through a NATS outage, then shares again.

The sharing test sends its requests in rounds (one to each edge, alternately) and, after each round, waits until
each edge has counted the other's report of it (`/ready`: `ratelimit_reports_sent` / `_received`). Within a
round an edge cannot know what its peer admitted the moment before, which is the slack of the scheme: one
share interval of the peer's traffic, here one request. So the total admitted is at most N + 1, and exactly
N + 1 with an odd N (both edges see N - 1 and each admits one more), whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import pytest

from control_plane.applications.models import App
from control_plane.applications.services import app_update
from edge_gateway.ratelimit import RateLimiter
from edge_gateway.sync.service import EdgeSyncService

from .cluster import Edge, config_version, seed_namespace, wait_until
from .test_snapshot_chunks import RecordingStore

pytestmark = [pytest.mark.timeout(240)]

N = 9
"""The app's `rate_limit_rpm`; odd, so the two edges' last round crosses the limit together (the slack case)."""


class Tally:
    """What the client saw from the edges of one namespace."""

    def __init__(self, edges: list[Edge]) -> None:
        self.admitted = {edge.name: 0 for edge in edges}
        self.refused = 0
        self.first_admitted_at = 0.0
        self.last_admitted_at = 0.0

    def send(self, edge: Edge, key: str) -> int:
        status, body, headers = edge.chat(key)
        if status == 200:
            self.admitted[edge.name] += 1
            self.first_admitted_at = self.first_admitted_at or time.time()
            self.last_admitted_at = time.time()
        else:
            assert status == 429, body
            assert body["error"]["code"] == "rate_limit_exceeded", body
            retry_after = {k.lower(): v for k, v in headers.items()}["retry-after"]
            assert int(retry_after) >= 1
            self.refused += 1
        return status

    @property
    def total(self) -> int:
        return sum(self.admitted.values())

    def window_allowance(self) -> int:
        """Requests the sliding window may legitimately add when the minute turned during the test: the previous
        minute's count then weighs (1 - s/60) s seconds into the new one, freeing up to (N + 1) * s / 60."""
        boundary = self.last_admitted_at - self.last_admitted_at % 60
        if self.first_admitted_at >= boundary:
            return 0
        return math.floor((N + 1) * (self.last_admitted_at - boundary) / 60)


def _sharing(edge: Edge, field: str) -> int:
    return edge.ready()[f"ratelimit_reports_{field}"]


def _shared_round(a: Edge, b: Edge, key: str, tally: Tally) -> list[int]:
    """One request to each edge, then wait until each counted the other's report of what it admitted."""
    sent_before = {edge.name: _sharing(edge, "sent") for edge in (a, b)}
    statuses = [tally.send(edge, key) for edge in (a, b)]
    for edge, status in zip((a, b), statuses, strict=True):
        if status == 200:  # its next report carries this request (nothing else is counted by these edges)
            wait_until(lambda e=edge: _sharing(e, "sent") > sent_before[e.name], 15, f"{edge.name} reported")
    for edge, peer in ((a, b), (b, a)):
        wait_until(lambda e=edge, p=peer: _sharing(p, "received") >= _sharing(e, "sent"), 15, f"{peer.name} counted it")
    return statuses


def test_an_apps_rpm_holds_across_the_edges_of_its_namespace(cluster):
    shared, alone = seed_namespace("ns-a", cluster.mock_url), seed_namespace("ns-b", cluster.mock_url)
    for seed in (shared, alone):
        app_update(app=App.objects.get(pk=seed.app_id), data={"rate_limit_rpm": N})
    cluster.start_bridge()
    a1, a2 = (cluster.add_edge(name, "ns-a", EDGE_RATELIMIT_SHARE_S="0.2") for name in ("a1", "a2"))
    b1, b2 = (cluster.add_edge(name, "ns-b", EDGE_RATELIMIT_SHARE_S="0") for name in ("b1", "b2"))
    for edge in (a1, a2, b1, b2):
        cluster.start_edge(edge)
    for edge, seed in ((a1, shared), (a2, shared), (b1, alone), (b2, alone)):
        wait_until(lambda e=edge, s=seed: e.ready().get("version", 0) >= config_version(s.namespace), message="config")
    assert a1.ready()["ratelimit_share_s"] == 0.2 and b1.ready()["ratelimit_share_s"] == 0.0

    # namespace A shares: requests alternate between its edges until both refuse
    tally = Tally([a1, a2])
    while _shared_round(a1, a2, shared.key, tally) != [429, 429]:
        assert tally.refused + tally.total < 4 * N, "the edges never stopped admitting"
    assert tally.total <= N + 1 + tally.window_allowance(), tally.admitted
    assert tally.total >= N, "the limit is reached, not undercut"
    assert all(count < N for count in tally.admitted.values()), (
        f"each edge refused earlier than alone: {tally.admitted}"
    )
    for _ in range(3):  # a burst, no waiting: both edges keep refusing for the rest of the minute
        assert tally.send(a1, shared.key) == 429 and tally.send(a2, shared.key) == 429

    # namespace B does not share counts (EDGE_RATELIMIT_SHARE_S=0), yet its rpm is leased from the control plane's
    # ledger (docs/governance.md): the two edges together still admit the limit, no more
    control = Tally([b1, b2])
    while [control.send(edge, alone.key) for edge in (b1, b2)] != [429, 429]:
        assert control.refused + control.total < 6 * N, "the edges never stopped admitting"
    assert N <= control.total <= N + 1 + control.window_allowance(), control.admitted
    assert _sharing(b1, "sent") == 0 and _sharing(b2, "received") == 0
    assert _sharing(a1, "received") >= 1 and _sharing(a2, "received") >= 1


KEY = "app:3:rpm"


async def test_edges_limit_locally_through_a_nats_outage_and_share_again_after_it(nats_server, tmp_path, caplog):
    clock_now = 1_000_020.0 + 15  # both edges' limiters in one fixed minute, whatever the wall clock does
    limiters = [RateLimiter(clock=lambda: clock_now) for _ in range(2)]
    edges = [
        EdgeSyncService(
            store=RecordingStore(),
            namespace="ns-a",
            edge_id=name,
            nats_url=nats_server.url,
            state_dir=str(tmp_path / name),
            limiter=limiter,
            environ={"EDGE_RATELIMIT_SHARE_S": "0.05"},
        )
        for name, limiter in zip(("a1", "a2"), limiters, strict=True)
    ]
    (a1, a2), (lim1, lim2) = edges, limiters
    caplog.set_level(logging.DEBUG, logger="fjordgate.edge.ratelimit")

    async def until(predicate, message: str) -> None:
        deadline = time.monotonic() + 20
        while not predicate():
            assert time.monotonic() < deadline, message
            await asyncio.sleep(0.02)

    for edge in edges:
        await edge.start()
    try:
        await until(lambda: all(e.ratelimit.attached for e in edges), "both subscribed to the namespace's reports")
        lim1.add(KEY, 3)
        await until(lambda: a2.ratelimit.reports_received >= 1, "a2 counted a1's report")
        assert lim2.check(KEY, 3) > 0 and lim2.check(KEY, 4) == 0.0

        nats_server.stop()
        await until(lambda: not any(e.nats_connected for e in edges), "both saw NATS go")
        lim1.add(KEY, 2)
        await until(lambda: a1.ratelimit.reports_dropped >= 1, "a1's report dropped while disconnected")
        assert lim1.check(KEY, 5) > 0 and lim1.check(KEY, 6) == 0.0, "a1 still limits on its own counts"

        nats_server.start()
        await until(lambda: all(e.nats_connected for e in edges), "both reconnected")
        received = a2.ratelimit.reports_received
        lim1.add(KEY, 1)
        await until(lambda: a2.ratelimit.reports_received > received, "a2 counts a1's reports again")
        # 3 + 1: the 2 counted during the outage were dropped, not queued (at most once, like a heartbeat)
        assert lim2.check(KEY, 4) > 0 and lim2.check(KEY, 5) == 0.0
    finally:
        for edge in edges:
            await edge.stop(drain_timeout_s=0.1)
    noisy = [r for r in caplog.records if r.name == "fjordgate.edge.ratelimit" and r.levelno >= logging.WARNING]
    assert noisy == [], "an outage is not an error of the rate-limit share"
