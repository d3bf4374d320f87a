"""Fire times across a fixed list of daylight-saving transitions in Europe and America (pure, no database).

Each transition is (zone, local date, kind, hour whose wall times repeat or do not exist).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from control_plane.schedules.cron import (
    CronError,
    fire_times,
    latest_fire_at_or_before,
    next_fire_times,
    validate_cron,
    validate_timezone,
)

# (zone, date of the change, "back" = an hour repeats / "forward" = an hour is skipped, the affected wall hour)
TRANSITIONS = [
    ("Europe/Oslo", "2024-03-31", "forward", 2),
    ("Europe/Oslo", "2024-10-27", "back", 2),
    ("Europe/London", "2025-03-30", "forward", 1),
    ("Europe/London", "2025-10-26", "back", 1),
    ("Europe/Lisbon", "2024-10-27", "back", 1),
    ("America/New_York", "2024-03-10", "forward", 2),
    ("America/New_York", "2024-11-03", "back", 1),
    ("America/Los_Angeles", "2025-03-09", "forward", 2),
    ("America/Los_Angeles", "2025-11-02", "back", 1),
    ("America/Chicago", "2026-03-08", "forward", 2),
    ("America/Santiago", "2024-04-07", "back", 23),  # the day before's 23:00 repeats (midnight -> 23:00)
    ("America/Santiago", "2024-09-08", "forward", 0),  # midnight does not exist
]
IDS = [f"{zone}-{day}-{kind}" for zone, day, kind, _ in TRANSITIONS]


def _window(zone: str, day: str) -> tuple[datetime, datetime]:
    local = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(zone))
    return (local - timedelta(days=1)).astimezone(UTC), (local + timedelta(days=2)).astimezone(UTC)


def _local(instants: list[datetime], zone: str) -> list[datetime]:
    return [t.astimezone(ZoneInfo(zone)) for t in instants]


@pytest.mark.parametrize(("zone", "day", "kind", "hour"), TRANSITIONS, ids=IDS)
def test_daily_job_in_the_affected_hour_fires_once_per_day(zone, day, kind, hour):
    after, until = _window(zone, day)
    fires = fire_times(f"30 {hour} * * *", zone, after=after, until=until)
    local = _local(fires, zone)
    # One fire per calendar day (the wall date may be the transition day for a shifted fire).
    assert len(fires) == len({t.date() for t in local}) == 3
    if kind == "back":
        # Repeated hour: once, at the first occurrence (the earlier, summer-time instant).
        fire = next(t for t in local if t.hour == hour and t.date().isoformat() <= day and t.fold == 0)
        first_pass = datetime.fromisoformat(f"{fire.date()}T{hour:02d}:30").replace(tzinfo=ZoneInfo(zone), fold=0)
        assert fire.astimezone(UTC) == first_pass.astimezone(UTC)
    else:
        # Skipped hour: the wall time does not exist that day; the job still runs that day, shifted forward.
        transition_day = [t for t in local if t.date().isoformat() == day]
        assert len(transition_day) == 1
        assert transition_day[0].hour == hour + 1 and transition_day[0].minute == 30


@pytest.mark.parametrize(("zone", "day", "kind", "hour"), TRANSITIONS, ids=IDS)
def test_interval_jobs_keep_their_real_time_cadence(zone, day, kind, hour):
    after, until = _window(zone, day)
    for expression, step in (("0 * * * *", 3600), ("*/15 * * * *", 900)):
        fires = fire_times(expression, zone, after=after, until=until)
        gaps = {(b - a).total_seconds() for a, b in zip(fires, fires[1:], strict=False)}
        assert gaps == {step}, (expression, sorted(gaps))
        assert len(fires) == len(set(fires))


@pytest.mark.parametrize(("zone", "day", "kind", "hour"), TRANSITIONS, ids=IDS)
def test_jobs_outside_the_affected_hour_are_untouched(zone, day, kind, hour):
    after, until = _window(zone, day)
    other = (hour + 5) % 24
    local = _local(fire_times(f"0 {other} * * *", zone, after=after, until=until), zone)
    assert [(t.hour, t.minute) for t in local] == [(other, 0)] * 3


@pytest.mark.parametrize(("zone", "day", "kind", "hour"), TRANSITIONS, ids=IDS)
def test_next_and_latest_agree_with_the_full_list(zone, day, kind, hour):
    after, until = _window(zone, day)
    expression = f"0,30 {hour},{(hour + 1) % 24} * * *"
    full = fire_times(expression, zone, after=after, until=until)
    assert next_fire_times(expression, zone, after=after, count=len(full))[: len(full)] == full
    for index in range(1, len(full)):
        assert latest_fire_at_or_before(expression, zone, moment=full[index], after=after) == full[index]
        moment = full[index] - timedelta(seconds=1)
        assert latest_fire_at_or_before(expression, zone, moment=moment, after=after) == full[index - 1]


def test_seconds_field_fires_every_n_seconds():
    start = datetime(2025, 1, 1, tzinfo=UTC)
    fires = fire_times("*/5 * * * * *", "UTC", after=start, until=start + timedelta(minutes=1))
    assert len(fires) == 12 and fires[0] == start + timedelta(seconds=5)
    assert fire_times("*/5 * * * *", "UTC", after=start, until=start + timedelta(minutes=1)) == []


def test_limit_keeps_the_oldest():
    start = datetime(2025, 1, 1, tzinfo=UTC)
    fires = fire_times("* * * * * *", "UTC", after=start, until=start + timedelta(hours=1), limit=3)
    assert fires == [start + timedelta(seconds=n) for n in (1, 2, 3)]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "Enter a cron expression"),
        ("61 * * * *", "out of range"),
        ("* * *", "5 fields"),
        ("0 0 30 2 *", "never matches"),
        ("a b c d e", "Invalid cron expression"),
    ],
)
def test_invalid_expressions_get_a_clear_message(expression, message):
    with pytest.raises(CronError, match=message):
        validate_cron(expression)


def test_expressions_are_normalised():
    assert validate_cron("  0   3 * * *  ") == "0 3 * * *"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", " UTC", "EST5EDT/x"])
def test_unknown_timezones_are_refused(name):
    with pytest.raises(CronError, match="IANA"):
        validate_timezone(name)
