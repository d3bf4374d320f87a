"""`analytics.bounds`: the compiled check that lets a record through (`_fits`) says yes exactly when the field by
field one (`_reason`) finds nothing, at the edge of every bound of every field of each kind of record."""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec
import pytest

from control_plane.analytics.bounds import _columns, _fits, _reason, out_of_range
from shared_sdk import AnalyticsRecord, BudgetUsage, ProxyLog

KINDS = (AnalyticsRecord, BudgetUsage, ProxyLog)


def _variants(kind: type) -> list[tuple[str, object]]:
    """(field, value) at and past each bound of `kind`'s columns."""
    integers, decimals, lengths = _columns(kind)
    found: list[tuple[str, object]] = []
    for name in ("timestamp", "period_start", "period_end"):
        if name in kind.__struct_fields__:  # type: ignore[attr-defined]
            found += [(name, v) for v in (0.0, -0.001, 253402300799.0, 253402300800.0, math.nan, math.inf, -math.inf)]
    for name, low, high in integers:
        found += [(name, v) for v in (low, low - 1, high, high + 1, 0, None)]
    for name, bound in decimals:
        found += [(name, v) for v in (Decimal(0), Decimal("-0.0000000001"), bound, bound - Decimal("0.0000000001"))]
        found += [(name, Decimal(v)) for v in ("NaN", "sNaN", "Infinity", "-Infinity")]
    for name, length in lengths:
        found += [(name, "x" * length), (name, "x" * (length + 1))]
    return found


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
def test_the_compiled_check_agrees_with_the_field_by_field_one_at_every_bound(kind):
    variants = _variants(kind)
    assert len(variants) > 20
    for name, value in variants:
        if value is None and name not in ("app_id", "user_id", "llm_id"):
            continue  # only the ids are optional
        record = msgspec.structs.replace(kind(), **{name: value})
        assert _fits(kind)(record) is (_reason(record) is None), (name, value)
        assert (out_of_range(record) is None) is (_reason(record) is None)


def test_tokens_summed_into_a_total_are_bounded_by_the_total_column():
    fits = AnalyticsRecord(prompt_tokens=2**31 - 1, completion_tokens=0)
    past = AnalyticsRecord(prompt_tokens=2**31 - 1, completion_tokens=1)
    given = AnalyticsRecord(prompt_tokens=2**31 - 1, completion_tokens=1, total_tokens=5)  # stored as given
    assert [out_of_range(r) is None for r in (fits, past, given)] == [True, False, True]
