"""The bridge-lag figures of `bench/bridge_lag.py` (read by `bench_edge.py`'s deployed targets): what counts as lag,
peak rate and drain, on hand-made samples, so a change to the arithmetic cannot quietly flatter the bridge; and
each row's own lag, from a real PostgreSQL's commit times."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator

import psycopg
import pytest

from bench.bridge_lag import LagWatch, Sample, lag_figures, row_lags
from bench.deployed_stack import COMMIT_TIMES
from fjordgate.embedded import free_port, postgres_plan, run_server
from fjordgate.postgres_home import scratch_dir


def _samples(answered: list[int], stored: list[int], step: float = 0.25) -> list[Sample]:
    return [Sample(i * step, a, s) for i, (a, s) in enumerate(zip(answered, stored, strict=True))]


def test_rows_two_samples_behind_give_a_lag_of_two_intervals() -> None:
    answered = [0, 100, 200, 300, 400, 400, 400]
    stored = [0, 0, 0, 100, 200, 300, 400]
    figures = lag_figures(_samples(answered, stored), load_start=0.0, load_end=1.0)
    # sample at t=0.25 (100 answered) is reached at t=0.75; the one at t=1.0 (400) at t=1.5
    assert figures["lag_max_s"] == 0.5
    assert figures["samples_under_load"] == 5
    assert figures["drain_s"] == 0.5
    assert figures["caught_up"] is True
    assert figures["peak_rps"] == 400.0  # 400 requests between t=0 and t=1.0


def test_rows_that_never_arrive_are_an_infinite_lag_not_a_small_one() -> None:
    figures = lag_figures(_samples([0, 50, 100, 100], [0, 50, 60, 60]), load_start=0.0, load_end=0.5)
    assert math.isinf(figures["lag_max_s"])
    assert figures["caught_up"] is False
    assert figures["drain_s"] is None


def test_samples_outside_the_load_do_not_count_for_lag_or_peak() -> None:
    # a burst after the load window (say, the next phase) must not raise the peak or the lag
    answered = [0, 10, 20, 30, 5000, 5000]
    stored = [0, 10, 20, 30, 30, 5000]
    figures = lag_figures(_samples(answered, stored), load_start=0.0, load_end=0.75)
    assert figures["lag_max_s"] == 0.0
    assert figures["peak_rps"] == 40.0  # no 1 s window fits in 0.75 s of load: its mean rate, 30 in 0.75 s


def test_the_watch_counts_from_where_it_was_primed() -> None:
    counts = {"answered": 1000, "stored": 990}
    watch = LagWatch(answered=lambda: counts["answered"], stored=lambda: counts["stored"], interval=0.01)
    watch.prime()
    watch.load_started()
    counts["answered"] += 5
    counts["stored"] += 5
    watch.load_ended()
    figures = watch.finish(timeout=2)
    assert figures["answered"] == 5 and figures["stored"] == 5
    assert figures["caught_up"] is True


@pytest.fixture(scope="module")
def commit_times_db() -> Iterator[str]:
    """A PostgreSQL that keeps commit times (as `bench/deployed_stack.py` starts it), with the columns
    `row_lags` reads of the analytics table."""
    workdir = scratch_dir("fjordgate-test-commit-times-")
    try:
        plan = postgres_plan(workdir / "data", free_port(), durable=False, settings=COMMIT_TIMES)
        with run_server(plan, workdir / "pg.log") as server, psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE analytics_analyticsevent (edge_id text, timestamp timestamptz, latency_ms float8)"
            )
            yield server.url
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _answered(conn: psycopg.Connection, edge_id: str, at: float, latency_ms: float = 40.0) -> None:
    """A row of a request that started `latency_ms` before `at` (so the edge answered it at `at`)."""
    conn.execute(
        "INSERT INTO analytics_analyticsevent VALUES (%s, to_timestamp(%s), %s)",
        (edge_id, at - latency_ms / 1000, latency_ms),
    )


def test_a_rows_lag_runs_to_its_commit_not_to_its_insert(commit_times_db: str) -> None:
    edge = "lag-commit"
    with psycopg.connect(commit_times_db) as conn:  # one transaction, held open after the insert
        answered_at = time.time()
        _answered(conn, edge, answered_at)
        time.sleep(0.4)
        conn.commit()
    figures = row_lags(commit_times_db, edge, answered_at - 1, answered_at + 1)
    assert figures is not None and figures["rows"] == 1
    assert 0.4 <= figures["max_s"] < 2.0  # the insert came at once; the row was visible only at the commit


def test_row_lags_count_only_the_edge_and_the_window_asked_for(commit_times_db: str) -> None:
    edge = "lag-window"
    with psycopg.connect(commit_times_db, autocommit=True) as conn:
        now = time.time()
        _answered(conn, edge, now - 0.2)  # lag ~0.2 s
        _answered(conn, edge, now - 0.1)  # lag ~0.1 s
        _answered(conn, edge, now - 30)  # answered before the window: its 30 s must not count
        _answered(conn, "another-edge", now - 5)
    figures = row_lags(commit_times_db, edge, now - 1, now + 1)
    assert figures is not None and figures["rows"] == 2
    assert 0.2 <= figures["max_s"] < 1.0
    assert 0.1 <= figures["p50_s"] <= figures["max_s"]


def test_the_watch_adds_the_rows_own_lag_over_the_loads_wall_clock_window() -> None:
    windows: list[tuple[float, float]] = []

    def rows(since: float, until: float) -> dict:
        windows.append((since, until))
        return {"rows": 1, "max_s": 0.5, "p99_s": 0.5, "p50_s": 0.5}

    watch = LagWatch(answered=lambda: 0, stored=lambda: 0, interval=0.01, rows=rows)
    watch.prime()
    before = time.time()
    watch.load_started()
    time.sleep(0.05)
    watch.load_ended()
    after = time.time()
    figures = watch.finish(timeout=2)
    assert figures["row_lag"]["max_s"] == 0.5
    [(since, until)] = windows
    assert before <= since < until <= after and until - since >= 0.05
