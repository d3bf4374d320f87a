"""What an ingested record may hold: values its table's columns can store, checked before the fetch is stored.

Why: the bridge stores a fetch of up to 64 messages, from any namespaces, in one transaction. One value the
columns cannot take (a timestamp past year 9999 or NaN, a cost of 1e12, an id past 2**63, a record id of 65
characters) failed that transaction, so the whole fetch went unacknowledged, came back after the ack wait and
failed again with whatever was fetched beside it: one edge's record held up every namespace's telemetry. Smaller
integers were worse, silently: binary COPY wrapped a status of 70,000 into 4,464 and 2**40 tokens into 0.

So each record is checked against its model's columns (integers by their type's range, decimals by their digits,
the ids by their length) and refused on its own, with a reason, like a record naming another namespace's app
(`bridge.identity`). A cost must also be finite and not negative: a negative one would lower a budget's spend
(user and group budgets span namespaces). Text that the row builders cut to length (`services`) is not refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import models

from shared_sdk import AnalyticsRecord, BudgetUsage, ProxyLog

from .models import AnalyticsEvent, BudgetUsageRecord, ProxyLogRecord

__all__ = ["out_of_range"]

_MODELS: dict[type, type[models.Model]] = {
    AnalyticsRecord: AnalyticsEvent,
    BudgetUsage: BudgetUsageRecord,
    ProxyLog: ProxyLogRecord,
}
_INTEGER_RANGES = {
    "SmallIntegerField": (-(2**15), 2**15 - 1),
    "PositiveSmallIntegerField": (0, 2**15 - 1),
    "IntegerField": (-(2**31), 2**31 - 1),
    "PositiveIntegerField": (0, 2**31 - 1),
    "BigIntegerField": (-(2**63), 2**63 - 1),
}
_EPOCH_MAX = 253402300799.0
"""9999-12-31T23:59:59Z: the last second `datetime` can hold (PostgreSQL goes further)."""
_TIMES = ("timestamp", "period_start", "period_end")
_IDS = ("record_id", "request_id")


@cache
def _columns(
    kind: type,
) -> tuple[tuple[tuple[str, int, int], ...], tuple[tuple[str, Decimal], ...], tuple[tuple[str, int], ...]]:
    """(integer fields with their range, decimal fields with their bound, id fields with their length)."""
    model = _MODELS[kind]
    names = set(kind.__struct_fields__)  # type: ignore[attr-defined]
    integers: list[tuple[str, int, int]] = []
    decimals: list[tuple[str, Decimal]] = []
    for field in model._meta.concrete_fields:
        if field.attname not in names or field.attname == "id":
            continue
        internal = field.get_internal_type()
        if internal in _INTEGER_RANGES:
            integers.append((field.attname, *_INTEGER_RANGES[internal]))
        elif isinstance(field, models.DecimalField):
            decimals.append((field.attname, Decimal(10) ** (field.max_digits - field.decimal_places)))
    lengths = tuple((name, _max_length(model, name)) for name in _IDS if name in names)
    return tuple(integers), tuple(decimals), lengths


def _max_length(model: type[models.Model], name: str) -> int:
    field = model._meta.get_field(name)
    assert isinstance(field, models.CharField) and field.max_length
    return field.max_length


def out_of_range(record: AnalyticsRecord | BudgetUsage | ProxyLog) -> str | None:
    """Why `record` cannot be stored as it is, or None."""
    if _fits(type(record))(record):
        return None
    return _reason(record)


@cache
def _fits(kind: type) -> Callable[[Any], bool]:
    """One expression, true when a record of `kind` fits every column: `_reason`'s bounds, compiled once per kind
    (as `dataclasses` builds its methods).

    Why: the bridge checks each record it ingests; a loop of `getattr` per field took ~16 % of its CPU beside one
    edge at c=1 (py-spy `--gil`, 1.6-2.2 us per record in timeit). A record that fits, every one an honest edge
    sends, now costs one call; only one that does not pays for finding the reason."""
    integers, decimals, lengths = _columns(kind)
    names = set(kind.__struct_fields__)  # type: ignore[attr-defined]
    tests = [f"0.0 <= r.{name} <= {_EPOCH_MAX!r}" for name in _TIMES if name in names]  # false for NaN
    tests += [f"(r.{name} is None or {low} <= r.{name} <= {high})" for name, low, high in integers]
    tests += [f"(r.{name}.is_finite() and _ZERO <= r.{name} < _BOUND{i})" for i, (name, _) in enumerate(decimals)]
    tests += [f"len(r.{name}) <= {length}" for name, length in lengths]
    if kind is AnalyticsRecord:
        total_max = _INTEGER_RANGES["IntegerField"][1]
        tests.append(f"(r.total_tokens != 0 or r.prompt_tokens + r.completion_tokens <= {total_max})")
    scope: dict[str, Any] = {"_ZERO": Decimal(0)} | {f"_BOUND{i}": bound for i, (_, bound) in enumerate(decimals)}
    fits: Callable[[Any], bool] = eval(f"lambda r: {' and '.join(tests) or 'True'}", scope)  # noqa: S307
    return fits


def _reason(record: AnalyticsRecord | BudgetUsage | ProxyLog) -> str | None:
    """Why `record` does not fit, field by field (None if it does)."""
    integers, decimals, lengths = _columns(type(record))
    for name in _TIMES:
        value = getattr(record, name, 0.0)
        if not (math.isfinite(value) and 0.0 <= value <= _EPOCH_MAX):
            return f"{name} {value!r} is not a time between 1970 and 9999"
    for name, low, high in integers:
        value = getattr(record, name)
        if value is not None and not low <= value <= high:
            return f"{name} {value} is outside {low}..{high}"
    for name, bound in decimals:
        value = getattr(record, name)
        if not value.is_finite() or not Decimal(0) <= value < bound:
            return f"{name} {value} is not between 0 and {bound}"
    for name, length in lengths:
        if len(getattr(record, name)) > length:
            return f"{name} is longer than {length} characters"
    if type(record) is AnalyticsRecord and not record.total_tokens:  # stored as prompt + completion
        if record.prompt_tokens + record.completion_tokens > _INTEGER_RANGES["IntegerField"][1]:
            return "prompt_tokens + completion_tokens is past what total_tokens can hold"
    return None
