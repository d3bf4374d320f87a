"""The bridge-lag figures of `bench/bridge_lag.py` (read by `bench_edge.py`'s deployed targets): what counts as lag,
peak rate and drain, on hand-made samples, so a change to the arithmetic cannot quietly flatter the bridge."""

from __future__ import annotations

import math

from bench.bridge_lag import LagWatch, Sample, lag_figures


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
