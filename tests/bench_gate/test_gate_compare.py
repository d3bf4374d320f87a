"""The performance gate's verdict (bench/gate/compare.py) and how it reads callgrind's dumps (bench/gate/gate.py).

The gate itself runs from .ci/run under valgrind; these check its rules on numbers: what fails CI and what not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.gate.compare import compare, format_table, passed
from bench.gate.gate import MeasurementFailed, read_dumps

BASELINE = {"chat": 850_000.0, "stream": 5_000_000.0, "refused_key": 194_000.0}


def test_counts_within_the_margin_pass() -> None:
    measured = {"chat": 850_000 * 1.049, "stream": 5_000_000 * 0.96, "refused_key": 194_000.0}
    verdicts = compare(BASELINE, measured, 0.05)
    assert passed(verdicts)
    assert [v.note for v in verdicts] == ["ok", "ok", "ok"]


def test_one_scenario_over_the_margin_fails_the_gate_and_is_named() -> None:
    measured = {**BASELINE, "stream": 5_000_000 * 1.06}
    verdicts = compare(BASELINE, measured, 0.05)
    assert not passed(verdicts)
    failed = [v for v in verdicts if not v.ok]
    assert [v.scenario for v in failed] == ["stream"]
    assert failed[0].change == pytest.approx(0.06)
    assert "REGRESSION" in format_table(verdicts).splitlines()[2]


def test_a_gain_beyond_the_margin_passes_but_asks_for_an_update() -> None:
    verdicts = compare(BASELINE, {**BASELINE, "chat": 850_000 * 0.9}, 0.05)
    assert passed(verdicts)
    assert "--update" in verdicts[0].note


@pytest.mark.parametrize(
    "measured",
    [
        {"chat": 850_000.0, "stream": 5_000_000.0},  # a baseline scenario no longer measured
        {**BASELINE, "new_path": 1_000.0},  # a measured scenario without a baseline
    ],
)
def test_the_mix_and_the_baseline_disagreeing_fails(measured: dict[str, float]) -> None:
    assert not passed(compare(BASELINE, measured, 0.05))


def test_a_margin_that_is_not_a_fraction_is_refused() -> None:
    with pytest.raises(ValueError):
        compare(BASELINE, BASELINE, 5)


def _dump(prefix: Path, part: int, total: int) -> None:
    prefix.with_name(f"{prefix.name}.{part}").write_text(f"version: 1\ncmd: python\npart: {part}\n\ntotals: {total}\n")


def test_dumps_map_to_scenarios_after_the_preamble_dump(tmp_path: Path) -> None:
    prefix = tmp_path / "callgrind.out"
    for part, total in ((1, 999_999), (2, 4_000), (3, 20_000)):
        _dump(prefix, part, total)
    assert read_dumps(prefix, ["chat", "stream"], 40) == {"chat": 100.0, "stream": 500.0}


def test_a_missing_dump_is_a_failed_measurement_not_a_pass(tmp_path: Path) -> None:
    prefix = tmp_path / "callgrind.out"
    _dump(prefix, 1, 10)
    _dump(prefix, 2, 4_000)
    with pytest.raises(MeasurementFailed):
        read_dumps(prefix, ["chat", "stream"], 40)
