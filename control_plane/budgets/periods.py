"""Budget period arithmetic in UTC: calendar periods start at midnight; anniversary months follow an anchor."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta


def _midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _add_months(moment: datetime, months: int, day: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(day, calendar.monthrange(year, month)[1]))


def period_bounds(period: str, now: datetime, anchor: datetime | None = None) -> tuple[datetime, datetime]:
    """The [start, end) period that contains `now`."""
    if period == "daily":
        start = _midnight(now)
        return start, start + timedelta(days=1)
    if period == "weekly":
        start = _midnight(now) - timedelta(days=now.astimezone(UTC).weekday())
        return start, start + timedelta(days=7)
    if period == "monthly":
        start = _midnight(now).replace(day=1)
        return start, _add_months(start, 1, 1)
    if period == "anniversary_monthly":
        anchor = (anchor or now).astimezone(UTC)
        day = anchor.day
        start = _add_months(anchor, (now.year - anchor.year) * 12 + now.month - anchor.month, day)
        if start > now:
            start = _add_months(anchor, (now.year - anchor.year) * 12 + now.month - anchor.month - 1, day)
        months_from_anchor = (start.year - anchor.year) * 12 + start.month - anchor.month
        return start, _add_months(anchor, months_from_anchor + 1, day)
    raise ValueError(f"unknown budget period {period!r}")
