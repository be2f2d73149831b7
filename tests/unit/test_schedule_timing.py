"""Fire times of schedules: cron in IANA zones across daylight-saving changes, periods,
the catch-up rule and the deterministic job id (pure functions, no broker or database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.status.domain.schedules import BadCadence, Cadence, check_cron, job_id_for, zone


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def series(cadence: Cadence, after: str, n: int) -> list[str]:
    moments, at = [], utc(after)
    for _ in range(n):
        at = cadence.next_after(at)
        moments.append(at.strftime("%m-%d %H:%M"))
    return moments


def test_berlin_daily_fixed_time_follows_the_local_clock_over_both_changes() -> None:
    nine = Cadence(cron="0 9 * * *", timezone="Europe/Berlin")
    assert series(nine, "2026-03-27 12:00", 3) == ["03-28 08:00", "03-29 07:00", "03-30 07:00"]
    assert series(nine, "2026-10-23 12:00", 3) == ["10-24 07:00", "10-25 08:00", "10-26 08:00"]


def test_berlin_a_skipped_local_time_fires_once_at_the_first_minute_that_exists() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that night
    half_past_two = Cadence(cron="30 2 * * *", timezone="Europe/Berlin")
    assert series(half_past_two, "2026-03-27 12:00", 3) == [
        "03-28 01:30",  # 02:30 CET
        "03-29 01:00",  # 03:00 CEST, the first minute after the gap
        "03-30 00:30",  # 02:30 CEST
    ]


def test_berlin_a_repeated_local_time_fires_once_at_its_first_occurrence() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice
    half_past_two = Cadence(cron="30 2 * * *", timezone="Europe/Berlin")
    assert series(half_past_two, "2026-10-23 12:00", 3) == [
        "10-24 00:30",  # CEST
        "10-25 00:30",  # the first 02:30 (CEST); the second (01:30 UTC) does not fire
        "10-26 01:30",  # CET
    ]
    # asked from inside the repeated hour, the answer is still after the question
    assert half_past_two.next_after(utc("2026-10-25 01:15")) == utc("2026-10-26 01:30")


def test_berlin_wildcard_hours_run_on_real_time_through_both_changes() -> None:
    every_half_hour = Cadence(cron="*/30 * * * *", timezone="Europe/Berlin")
    # the repeated hour fires twice, the timeline stays every 30 real minutes
    fall = series(every_half_hour, "2026-10-24 23:10", 6)
    assert fall == [
        f"10-2{d} {t}"
        for d, t in [
            (4, "23:30"),
            (5, "00:00"),
            (5, "00:30"),
            (5, "01:00"),
            (5, "01:30"),
            (5, "02:00"),
        ]
    ]
    # the skipped hour has no firings, the others are 30 real minutes apart
    spring = series(every_half_hour, "2026-03-28 23:40", 4)
    assert spring == ["03-29 00:00", "03-29 00:30", "03-29 01:00", "03-29 01:30"]


def test_new_york_daily_and_the_repeated_hour() -> None:
    nine = Cadence(cron="0 9 * * *", timezone="America/New_York")
    assert series(nine, "2026-03-06 20:00", 3) == ["03-07 14:00", "03-08 13:00", "03-09 13:00"]
    assert series(nine, "2026-10-30 20:00", 3) == ["10-31 13:00", "11-01 14:00", "11-02 14:00"]
    one_thirty = Cadence(cron="30 1 * * *", timezone="America/New_York")
    # 2026-11-01: 01:30 EDT (05:30 UTC) fires; 01:30 EST (06:30 UTC) does not
    assert series(one_thirty, "2026-10-31 12:00", 2) == ["11-01 05:30", "11-02 06:30"]
    skipped = Cadence(cron="30 2 * * *", timezone="America/New_York")
    assert series(skipped, "2026-03-07 12:00", 2) == ["03-08 07:00", "03-09 06:30"]


def test_every_seconds_is_a_utc_grid_of_whole_seconds() -> None:
    every = Cadence(every_seconds=90)
    first = every.next_after(utc("2026-03-29 00:59:59.700000"))
    assert first == utc("2026-03-29 01:01:29")
    assert every.next_after(first) == first + timedelta(seconds=90)


def test_catch_up_is_the_latest_missed_fire_time_only() -> None:
    every = Cadence(every_seconds=10)
    due = utc("2026-01-01 00:00:00")
    assert every.latest_due(due, due) == due
    assert every.latest_due(due, due + timedelta(seconds=9.9)) == due
    assert every.latest_due(due, due + timedelta(seconds=35)) == due + timedelta(seconds=30)
    weekly = Cadence(cron="0 9 * * 1", timezone="America/New_York")
    monday = utc("2026-01-05 14:00")
    assert weekly.latest_due(monday, utc("2026-11-30 00:00")) == utc("2026-11-23 14:00")
    assert weekly.latest_due(monday, monday + timedelta(hours=1)) == monday
    minutely = Cadence(cron="* * * * *")
    old = utc("2025-11-30 10:00")
    assert minutely.latest_due(old, utc("2026-11-30 10:05:30")) == utc("2026-11-30 10:05")
    hours = Cadence(cron="* 0-5 * * *", timezone="Europe/Berlin")
    assert hours.latest_due(old, utc("2026-11-30 12:00")) == utc("2026-11-30 04:59")


def test_the_job_id_is_derived_from_the_schedule_and_the_fire_time() -> None:
    schedule = uuid.UUID("6f1c2a34-0000-4000-8000-000000000001")
    at = utc("2026-03-29 01:00")
    expected = uuid.uuid5(uuid.NAMESPACE_URL, f"hybridq:schedule:{schedule}:2026-03-29T01:00:00Z")
    assert job_id_for(schedule, at) == expected
    assert job_id_for(schedule, at.astimezone(zone("Europe/Berlin"))) == expected
    assert job_id_for(schedule, at + timedelta(minutes=1)) != expected


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("* * * *", "5 fields"),
        ("0 * * * * *", "5 fields"),
        ("61 * * * *", "minute"),
        ("0 0 30 2 *", "day-of-month"),
        ("0 0 * * funday", "day-of-week"),
    ],
)
def test_bad_cron_expressions_are_refused_with_a_reason(expr: str, why: str) -> None:
    with pytest.raises(BadCadence, match=why):
        check_cron(expr)


def test_unknown_zones_are_refused() -> None:
    for name in ("Mars/Olympus", "", "Europe", "../etc/passwd"):
        with pytest.raises(BadCadence, match="unknown time zone"):
            zone(name)
