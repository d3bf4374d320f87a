"""Cron fire times in a schedule's own timezone, with daylight-saving changes handled on purpose.

Why not hand croniter a timezone-aware start time: croniter then does its arithmetic on aware datetimes and, around
a DST change, can fire twice in the repeated hour or lose a fire after the skipped one. Here croniter only ever sees
naive *wall-clock* times, where no DST exists, and this module maps each wall-clock fire time to real instants
itself, with one explicit rule per case (the classic Vixie-cron behaviour):

- Repeated hour (clocks go back, a wall time happens twice): the fire happens once, at the first occurrence.
  Exception: an expression that fires every hour (hour field ``*``) is an interval job, so it keeps its real-time
  cadence and also fires in the second pass (``0 * * * *`` fires at 01:00 EDT *and* 01:00 EST, an hour apart).
- Skipped hour (clocks go forward, a wall time does not exist): an every-hour expression loses nothing real by
  skipping it (``*/15 * * * *`` fires at 01:45 EST then 03:00 EDT, 15 real minutes later). An expression that names
  an hour in the gap (``30 2 * * *``) still fires that day, shifted forward by the length of the gap (03:30 EDT),
  so a daily job never silently skips a day; if that instant is also a regular fire time it fires once.

Expressions have five fields (minute hour day month weekday) or six with a leading seconds field
(``*/5 * * * * *`` = every five seconds), the convention of Quartz, Spring and Go's robfig/cron.
All instants returned are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

__all__ = [
    "CronError",
    "fire_times",
    "latest_fire_at_or_before",
    "next_fire_times",
    "validate_cron",
    "validate_timezone",
]

# Real DST shifts are at most two hours; three covers every zone with margin when looking for a nearby change.
_TRANSITION_WINDOW = timedelta(hours=3)
_ONE_SECOND = timedelta(seconds=1)


class CronError(ValueError):
    """A cron expression or timezone that cannot be used; the message is meant for the person who typed it."""


def validate_timezone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; raises CronError with a readable message otherwise."""
    if not name or name != name.strip():
        raise CronError("Enter an IANA timezone name such as UTC, Europe/Oslo or America/New_York.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"Unknown timezone {name!r}: use an IANA name such as UTC, Europe/Oslo or America/New_York."
        ) from None


def validate_cron(expression: str) -> str:
    """The expression, normalised to single spaces; raises CronError naming what is wrong."""
    normalised = " ".join((expression or "").split())
    if not normalised:
        raise CronError("Enter a cron expression, e.g. '0 3 * * *' (daily at 03:00) or '*/10 * * * * *' (every 10 s).")
    fields = normalised.split(" ")
    if not normalised.startswith("@") and len(fields) not in (5, 6):
        raise CronError(
            f"A cron expression has 5 fields (minute hour day month weekday) or 6 with a leading seconds field; "
            f"got {len(fields)} in {normalised!r}."
        )
    try:
        iterator = croniter(normalised, datetime(2000, 1, 1), second_at_beginning=True)
        iterator.get_next(datetime)
    except CroniterBadDateError:
        raise CronError(f"{normalised!r} never matches a real date (for example 30 February).") from None
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
        raise CronError(f"Invalid cron expression {normalised!r}: {exc}") from None
    return normalised


def _fires_every_hour(expression: str) -> bool:
    """True when the hour field covers all 24 hours: such a job is an interval job, not a time-of-day job."""
    expanded, _ = croniter.expand(expression, second_at_beginning=True)
    hours = expanded[1]
    return hours == ["*"] or len(set(hours)) == 24


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _shift_near(instant: datetime, zone: ZoneInfo) -> timedelta:
    """How far the UTC offset changes within three hours either side of `instant` (zero almost always)."""
    before = _offset(instant - _TRANSITION_WINDOW, zone)
    after = _offset(instant + _TRANSITION_WINDOW, zone)
    return abs(after - before)


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # an aware datetime in a ZoneInfo always has one
    return offset


def _instants(wall: datetime, zone: ZoneInfo, every_hour: bool) -> list[datetime]:
    """The real instants at which a fire at wall-clock time `wall` happens (see the module docstring)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    exists = _wall(first, zone) == wall
    if exists:  # repeated hour: fold=0 is the first pass
        return [first, second] if every_hour else [first]
    if every_hour:  # skipped hour: the real-time cadence already continues after the gap
        return []
    return [max(first, second)]  # skipped hour: shifted forward by the gap's length


def _walls_from(expression: str, start: datetime, *, backwards: bool = False) -> Iterator[datetime]:
    iterator = croniter(expression, start, second_at_beginning=True, is_prev=backwards)
    step = iterator.get_prev if backwards else iterator.get_next
    while True:
        try:
            yield step(datetime)
        except CroniterBadDateError:
            return


def fire_times(
    expression: str, timezone: str, *, after: datetime, until: datetime, limit: int = 10_000
) -> list[datetime]:
    """Fire instants `t` with `after < t <= until`, oldest first, at most `limit` (the oldest ones)."""
    zone = validate_timezone(timezone)
    every_hour = _fires_every_hour(expression)
    start = _wall(after, zone) - _shift_near(after, zone) - _ONE_SECOND
    stop = _wall(until, zone) + _shift_near(until, zone)
    found: set[datetime] = set()
    horizon: datetime | None = None
    for wall in _walls_from(expression, start):
        if wall > stop or (horizon is not None and wall > horizon):
            break
        for instant in _instants(wall, zone, every_hour):
            if after < instant <= until:
                found.add(instant)
        if horizon is None and len(found) >= limit:
            # Later wall times can still map to earlier instants only within a DST shift: look that far on.
            horizon = wall + _shift_near(wall.replace(tzinfo=zone).astimezone(UTC), zone)
    return sorted(found)[:limit]


def next_fire_times(expression: str, timezone: str, *, after: datetime, count: int = 5) -> list[datetime]:
    """The next `count` fire instants strictly after `after` (fewer if the expression stops matching)."""
    zone = validate_timezone(timezone)
    every_hour = _fires_every_hour(expression)
    start = _wall(after, zone) - _shift_near(after, zone) - _ONE_SECOND
    found: set[datetime] = set()
    horizon: datetime | None = None
    for wall in _walls_from(expression, start):
        if horizon is not None and wall > horizon:
            break
        for instant in _instants(wall, zone, every_hour):
            if instant > after:
                found.add(instant)
        if horizon is None and len(found) >= count:
            horizon = wall + _shift_near(wall.replace(tzinfo=zone).astimezone(UTC), zone)
    return sorted(found)[:count]


def latest_fire_at_or_before(expression: str, timezone: str, *, moment: datetime, after: datetime) -> datetime | None:
    """The newest fire instant `t` with `after < t <= moment`, or None: what a missed schedule runs once."""
    zone = validate_timezone(timezone)
    every_hour = _fires_every_hour(expression)
    start = _wall(moment, zone) + _shift_near(moment, zone) + _ONE_SECOND
    best: datetime | None = None
    floor: datetime | None = None
    for wall in _walls_from(expression, start, backwards=True):
        if floor is not None and wall < floor:
            break
        for instant in _instants(wall, zone, every_hour):
            if after < instant <= moment and (best is None or instant > best):
                best = instant
        if best is not None and floor is None:
            floor = wall - _shift_near(best, zone)
        if wall.replace(tzinfo=zone, fold=1).astimezone(UTC) <= after - _TRANSITION_WINDOW:
            break
    return best


def describe_timezones() -> list[str]:
    """Sorted IANA zone names, for choice lists in the admin and API documentation."""
    return sorted(available_timezones())
