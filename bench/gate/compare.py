"""The gate's verdict: measured instructions per request against the baseline, scenario by scenario.

A pure function on numbers, so its rules are tested without valgrind (tests/bench_gate/test_compare.py):
- more than `margin` above the baseline is a regression: the gate fails;
- more than `margin` below it passes, with a note to lock the gain in (`--update`), else a later regression of
  up to the same size would go unnoticed;
- a scenario in the baseline that was not measured, or measured without a baseline, fails: the mix and the
  baseline changed apart, and an unmeasured scenario guards nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Verdict", "compare", "format_table", "passed"]


@dataclass(frozen=True)
class Verdict:
    scenario: str
    baseline: float | None
    measured: float | None
    ok: bool
    note: str

    @property
    def change(self) -> float | None:
        """Relative change against the baseline (0.07 is 7 % more instructions)."""
        if not self.baseline or self.measured is None:
            return None
        return self.measured / self.baseline - 1.0


def compare(baseline: Mapping[str, float], measured: Mapping[str, float], margin: float) -> list[Verdict]:
    """One verdict per scenario of either side, in the baseline's order, then new scenarios."""
    if not 0 < margin < 1:
        raise ValueError(f"margin must be a fraction between 0 and 1, got {margin}")
    verdicts = []
    for name in [*baseline, *(m for m in measured if m not in baseline)]:
        base, now = baseline.get(name), measured.get(name)
        if base is None:
            verdicts.append(Verdict(name, None, now, False, "not in the baseline (run --update)"))
        elif now is None:
            verdicts.append(Verdict(name, base, None, False, "in the baseline but not measured"))
        elif now > base * (1 + margin):
            verdicts.append(Verdict(name, base, now, False, f"REGRESSION: over the {margin:.0%} margin"))
        elif now < base * (1 - margin):
            verdicts.append(Verdict(name, base, now, True, "faster: --update to lock the gain in"))
        else:
            verdicts.append(Verdict(name, base, now, True, "ok"))
    return verdicts


def passed(verdicts: list[Verdict]) -> bool:
    return all(v.ok for v in verdicts)


def format_table(verdicts: list[Verdict]) -> str:
    """Instructions per request, side by side, one line per scenario."""

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    lines = [f"{'scenario':<14} {'baseline':>13} {'measured':>13} {'change':>8}  verdict"]
    for v in verdicts:
        change = "-" if v.change is None else f"{v.change:+.2%}"
        lines.append(f"{v.scenario:<14} {num(v.baseline):>13} {num(v.measured):>13} {change:>8}  {v.note}")
    return "\n".join(lines)
