"""Rate limits shared by the edges of a namespace: each reports what it counted, each adds what its peers counted.

Every `EDGE_RATELIMIT_SHARE_S` seconds this edge publishes the increments its windows took since its previous
report (`RateLimitReport` on `fj.up.<ns>.<edge>.ratelimit`, only when there were any), and it adds the reports
of the namespace's other edges (`fj.up.<ns>.*.ratelimit`) into the remote part of the matching windows (see
`edge_gateway.ratelimit`). A limit then holds for the namespace up to about one share interval of traffic per
edge: what a peer admitted since its last report is not known here yet.

Why core NATS and no JetStream: a count matters for a minute at most, and a lost report only lets through the
requests it carried; nothing is worth storing or replaying. Increments are taken from the limiter whether or
not NATS is connected, and dropped while it is not, so nothing piles up and local limiting carries on. The
request path is untouched: it only counts into the windows; taking, encoding and publishing happen here, on
this loop's own schedule.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from nats.aio.client import Client
from nats.aio.msg import Msg

from shared_sdk.sync_protocol import RateLimitReport, decode, encode, namespace_up_subject, up_subject

from ..ratelimit import RateLimiter

log = logging.getLogger("fjordgate.edge.ratelimit")

MAX_KEYS_PER_REPORT = 5000
"""Keys per message (~40 bytes each): an edge that counted many users in one interval sends several reports,
each far below NATS's max_payload."""


class RateLimitShare:
    def __init__(
        self, limiter: RateLimiter, *, namespace: str, edge_id: str, interval_s: float, worker: str = ""
    ) -> None:
        self.namespace = namespace
        self.edge_id = edge_id
        self.worker = worker
        """This worker's index in a multi-worker edge: reports of its sibling workers (same edge id) count."""
        self.interval_s = interval_s
        self._limiter = limiter
        self._subject = up_subject(namespace, edge_id, "ratelimit")
        self._nc: Client | None = None
        self.reports_sent = 0
        self.reports_received = 0
        """Peers' reports counted (for `/ready`: a non-zero figure shows the namespace's edges see each other)."""
        self.reports_dropped = 0
        """Reports not sent because NATS was not connected."""
        limiter.start_sharing()

    async def attach(self, nc: Client) -> None:
        """Subscribe to the namespace's reports (the client re-subscribes by itself after a reconnect), then start
        reporting: once `attached`, the server holds the subscription, so this edge hears every report sent
        after its own first one."""
        await nc.subscribe(namespace_up_subject(self.namespace, "ratelimit"), cb=self._on_report)
        with suppress(Exception):  # NATS went away again: the subscription is restored with the connection
            await nc.flush(timeout=5)
        self._nc = nc

    @property
    def attached(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def run(self) -> None:
        """Report every `interval_s` until cancelled (started with the edge, whether or not NATS is up)."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.report()

    async def report(self) -> int:
        """Publish the increments counted since the last report; the number of messages sent."""
        taken = self._limiter.take_increments()
        if not taken:
            return 0
        reports = [
            RateLimitReport(edge_id=self.edge_id, window_start=window_start, counts=part, worker=self.worker)
            for window_start, counts in taken
            for part in _parts(counts)
        ]
        nc = self._nc
        if nc is None or not nc.is_connected:
            self.reports_dropped += len(reports)
            return 0
        sent = 0
        for report in reports:
            try:
                await nc.publish(self._subject, encode(report))
            except Exception as exc:  # the connection dropped in between: the rest goes too
                log.debug("rate-limit report not sent: %s", exc)
                self.reports_dropped += len(reports) - sent
                break
            sent += 1
        self.reports_sent += sent
        return sent

    async def _on_report(self, message: Msg) -> None:
        try:
            report = decode(message.data, RateLimitReport)
            if report.edge_id == self.edge_id and report.worker == self.worker:
                return  # our own, echoed back by the server: already counted locally
            if message.subject != up_subject(self.namespace, report.edge_id, "ratelimit"):
                raise ValueError(f"edge id {report.edge_id!r} does not match the subject")
        except Exception as exc:
            log.debug("ignoring rate-limit report on %s: %s", message.subject, exc)
            return
        if self._limiter.add_remote(report.window_start, report.counts):
            self.reports_received += 1


def _parts(counts: dict[str, int]) -> list[dict[str, int]]:
    if len(counts) <= MAX_KEYS_PER_REPORT:
        return [counts]
    items = list(counts.items())
    return [dict(items[i : i + MAX_KEYS_PER_REPORT]) for i in range(0, len(items), MAX_KEYS_PER_REPORT)]
