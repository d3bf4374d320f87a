"""How far telemetry in PostgreSQL trails the requests an edge answered, sampled while the edge is under load.

Issue 17: "at the fleet's peak rate of this machine, the bridge's lag stays under one second". The path measured is
the whole one an operator waits on: edge accounting -> SQLite spool -> shipper -> NATS JetStream -> bridge ->
PostgreSQL. Every `interval` seconds a thread reads two counters:

- answered: requests served so far (the mock upstream's request counter, minus its value when the watch began:
  only the watched edge talks to the mock then, and a multi-worker edge has no single /metrics to read);
- stored: analytics rows in PostgreSQL with the watched edge's id.

The lag of a sample taken at t is the time until `stored` first reached that sample's `answered` (0 when it
already had). Samples are the watch's resolution (0.25 s by default), so a lag is rounded up to it. After load
stops (`end`), sampling goes on until `stored` reaches the final `answered`: that wait is the drain time.

The exact figure (`row_lags`), where PostgreSQL keeps commit times (`track_commit_timestamp`, which the
benchmarks' embedded server turns on): for every row of a request answered under load, the commit time of the
transaction that stored it minus the time the edge answered the request (its `timestamp` plus `latency_ms`, taken
at accounting, a little before the response's end, which waits for the record to be durable: the figure errs long).
No rounding, and no reads while the load runs. The samples above overstate a lag by up to one interval plus the
time a sample takes to read its three counters on a busy machine (seen: sampled max 0.61 s where the rows' own max
was 0.53 s); they stay beside it as a cross-check, and where commit times are not kept they are the figure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

__all__ = ["LagWatch", "Sample", "bridge_backlog", "lag_figures", "mock_request_count", "row_lags", "stored_rows"]


@dataclass(frozen=True)
class Sample:
    t: float
    answered: int
    stored: int
    backlog: int | None = None
    """Telemetry messages in JetStream the bridge has not acknowledged yet (None: not read). Where the lag is: a
    backlog that stays near 0 while rows trail means the edge has not shipped them yet (spool, shipper)."""


def lag_figures(samples: list[Sample], load_start: float, load_end: float, *, window_s: float = 1.0) -> dict:
    """Max and p95 lag over the samples taken under load, the peak answered rate and the drain time (seconds).

    A sample whose count PostgreSQL never reached counts as an infinite lag (and `caught_up` is False), so a
    stalled bridge cannot pass as a fast one."""
    loaded = [i for i, s in enumerate(samples) if load_start <= s.t <= load_end]
    lags = []
    for i in loaded:
        caught = next((s.t for s in samples[i:] if s.stored >= samples[i].answered), None)
        lags.append(float("inf") if caught is None else caught - samples[i].t)
    lags.sort()
    final = samples[-1].answered if samples else 0
    drained = next((s.t for s in samples if s.t >= load_end and s.stored >= final), None)
    peak = 0.0
    for i, first in enumerate(samples):
        last = next((s for s in samples[i + 1 :] if s.t - first.t >= window_s), None)
        if last is None or first.t < load_start or last.t > load_end:
            continue
        peak = max(peak, (last.answered - first.answered) / (last.t - first.t))
    if not peak and len(loaded) > 1:  # a load shorter than one window: its mean rate
        first, last = samples[loaded[0]], samples[loaded[-1]]
        peak = (last.answered - first.answered) / (last.t - first.t)
    backlogs = [samples[i].backlog for i in loaded if samples[i].backlog is not None]
    return {
        "samples_under_load": len(lags),
        "bridge_backlog_max_msgs": max(backlogs) if backlogs else None,
        "lag_max_s": lags[-1] if lags else None,
        "lag_p95_s": lags[min(len(lags) - 1, int(len(lags) * 0.95))] if lags else None,
        "peak_rps": peak,
        "drain_s": None if drained is None else max(0.0, drained - load_end),
        "answered": final,
        "stored": samples[-1].stored if samples else 0,
        "caught_up": drained is not None,
    }


def mock_request_count(mock_base: str) -> Callable[[], int]:
    """A reader of the mock upstream's served-request counter (the shared raw mock's /stats, or
    `fjordgate.mock_llm`'s /_mock/stats)."""
    client = httpx.Client(timeout=5)

    def read() -> int:
        answer = client.get(f"{mock_base}/stats")
        if answer.status_code == 200:
            return int(answer.json()["requests"])
        return int(client.get(f"{mock_base}/_mock/stats").json()["requests_total"])

    return read


def stored_rows(db_url: str, edge_id: str) -> Callable[[], int]:
    """A reader of the number of analytics rows in PostgreSQL from `edge_id` (its workers share the edge's id)."""
    import psycopg

    conn = psycopg.connect(db_url, autocommit=True)

    def read() -> int:
        row = conn.execute("SELECT count(*) FROM analytics_analyticsevent WHERE edge_id = %s", (edge_id,)).fetchone()
        return int(row[0]) if row else 0

    read.close = conn.close  # type: ignore[attr-defined]
    return read


def row_lags(db_url: str, edge_id: str, since: float, until: float) -> dict | None:
    """Per row, from PostgreSQL's commit times: how long after `edge_id` answered a request (between the Unix times
    `since` and `until`) its analytics row was committed. None where the server keeps no commit times."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        kept = conn.execute("SHOW track_commit_timestamp").fetchone()
        if not kept or kept[0] != "on":
            return None
        answered = "extract(epoch FROM timestamp) + latency_ms / 1000.0"
        rows = conn.execute(
            f"SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin)) - ({answered}) "  # noqa: S608 (no input)
            f"FROM analytics_analyticsevent WHERE edge_id = %s AND {answered} BETWEEN %s AND %s",
            (edge_id, since, until),
        ).fetchall()
    lags = sorted(float(row[0]) for row in rows if row[0] is not None)
    if not lags:
        return None
    return {
        "rows": len(lags),
        "max_s": lags[-1],
        "p99_s": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        "p50_s": lags[len(lags) // 2],
    }


def bridge_backlog(nats_url: str) -> Callable[[], int]:
    """A reader of the bridges' telemetry consumer's backlog (messages pending + delivered but not acknowledged),
    over its own NATS connection on a private event loop thread; `.close()` ends both."""
    import asyncio

    import nats

    from shared_sdk.sync_protocol import TELEMETRY_CONSUMER, UP_STREAM

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bridge-backlog", daemon=True)
    thread.start()
    nc = asyncio.run_coroutine_threadsafe(nats.connect(nats_url), loop).result(10)
    js = nc.jetstream()

    async def ask() -> int:
        info = await js.consumer_info(UP_STREAM, TELEMETRY_CONSUMER)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    def read() -> int:
        return asyncio.run_coroutine_threadsafe(ask(), loop).result(10)

    def close() -> None:
        asyncio.run_coroutine_threadsafe(nc.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

    read.close = close  # type: ignore[attr-defined]
    return read


@dataclass
class LagWatch:
    """`prime()` when PostgreSQL holds every request answered so far (both counters start from there);
    `load_started()` starts sampling, `load_ended()` marks the end of the load, `finish()` waits for the drain and
    returns `lag_figures`. Sampling starts with the load, not before, so the thread does not share the load
    generator's process during the latency phases."""

    answered: Callable[[], int]
    stored: Callable[[], int]
    backlog: Callable[[], int] | None = None
    interval: float = 0.25
    samples: list[Sample] = field(default_factory=list)
    rows: Callable[[float, float], dict | None] | None = None
    """`row_lags` for the watched edge, given the load's Unix start and end: the exact figure (`finish`)."""
    load_start: float = float("inf")
    load_end: float = float("inf")
    wall_start: float | None = None
    wall_end: float | None = None
    """The load's start and end as Unix times (what `rows` is given)."""

    def prime(self) -> None:
        self._base = (self.answered(), self.stored())

    def _sample(self) -> Sample:
        t = time.monotonic()
        answered, stored = self.answered() - self._base[0], self.stored() - self._base[1]
        return Sample(t, answered, stored, self.backlog() if self.backlog is not None else None)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._sample())
            self._stop.wait(self.interval)

    def load_started(self) -> None:
        self.load_start = time.monotonic()
        self.wall_start = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bridge-lag", daemon=True)
        self._thread.start()

    def load_ended(self) -> None:
        self.load_end = time.monotonic()
        self.wall_end = time.time()

    def finish(self, timeout: float = 60) -> dict:
        """Sample on until PostgreSQL holds every answered request (or `timeout`), then compute the figures."""
        if self.load_end == float("inf"):
            self.load_ended()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.samples[-1] if self.samples else None
            if last is not None and last.t > self.load_end and last.stored >= last.answered:
                break
            time.sleep(self.interval)
        self._stop.set()
        self._thread.join()
        figures = lag_figures(self.samples, self.load_start, self.load_end)
        if self.rows is not None and self.wall_start is not None and self.wall_end is not None:
            figures["row_lag"] = self.rows(self.wall_start, self.wall_end)
        return figures
