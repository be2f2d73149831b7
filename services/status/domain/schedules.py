"""When a schedule fires: pure functions over a cadence, no clock and no database.

Cron expressions are evaluated by `cronsim` (Debian cron's rules) in the schedule's IANA
zone. Around a daylight-saving change:

- a fixed local time that does not exist (02:30 on the spring-forward night) fires at the
  first minute that does (03:00 local), once;
- a fixed local time that happens twice (02:30 on the fall-back night) fires once, at its
  first occurrence;
- an expression with `*` in the minute or hour field (`*/15 * * * *`) runs on real time:
  every matching instant fires, so the repeated hour has its firings and the skipped hour
  has none.

A period (`every_seconds`) is a fixed grid of UTC instants, untouched by daylight saving.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

MAX_EVERY_SECONDS = 366 * 86_400
# how far back to look for the latest missed cron time, widening until one is found
_LOOKBACK = (
    timedelta(hours=1),
    timedelta(days=2),
    timedelta(days=40),
    timedelta(days=400),
    timedelta(days=3660),
)


class BadCadence(ValueError):
    """The cron expression, period or time zone is not one hybridq can run."""


TIME_ZONES = frozenset(available_timezones())
"""The IANA zones a schedule may name (the API's document lists them)."""

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def _cron_field(low: int, high: int, names: tuple[str, ...] = (), first: int = 0) -> str:
    """One field's grammar: `*`, a value, a range `a-b` with a <= b (names count as their
    numbers), each with an optional `/step`, in a comma-separated list."""
    tokens = [(str(n), n) for n in range(low, high + 1)]
    for i, name in enumerate(names):
        tokens += [(name, first + i), (name.lower(), first + i)]
    value = "|".join(t for t, _ in tokens)
    ranges = "|".join(f"(?:{a})-(?:{'|'.join(t for t, m in tokens if m >= n)})" for a, n in tokens)
    part = rf"(?:\*|{ranges}|{value})(?:/[1-9][0-9]{{0,2}})?"
    return f"{part}(?:,{part})*"


CRON_PATTERN = (
    "^"
    + " ".join(
        [
            _cron_field(0, 59),
            _cron_field(0, 23),
            _cron_field(1, 31),
            _cron_field(1, 12, _MONTHS, first=1),
            _cron_field(0, 7, _DAYS),
        ]
    )
    + "$"
)
"""What a schedule's `cron` may be: five fields (minute hour day month weekday) of
numbers, `*`, ranges `a-b` (a <= b), lists and `/steps`; month and weekday names (`JAN`,
`mon`) too. The API's document carries it as the field's pattern."""
_CRON = re.compile(CRON_PATTERN)


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; BadCadence if there is no such zone."""
    if name not in TIME_ZONES:
        message = f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        raise BadCadence(message)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        message = f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        raise BadCadence(message) from exc


def check_cron(expr: str) -> str:
    """The expression if it is a valid 5-field cron expression that ever fires."""
    if len(expr.split()) != 5:
        raise BadCadence("a cron expression has 5 fields: minute hour day month weekday")
    try:
        times = CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise BadCadence(f"invalid cron expression: {exc}") from exc
    if not _CRON.match(expr):
        raise BadCadence(
            "a cron field is *, a number in its range, a range a-b with a <= b, a month or "
            "weekday name, or a comma-separated list of these, each with an optional /step"
        )
    try:
        next(times)
    except CronSimError as exc:
        raise BadCadence(f"invalid cron expression: {exc}") from exc
    except StopIteration as exc:
        raise BadCadence("this cron expression never fires") from exc
    return expr


@dataclass(frozen=True)
class Cadence:
    """Either `cron` (with `timezone`) or `every_seconds`."""

    cron: str | None = None
    every_seconds: int | None = None
    timezone: str = "UTC"

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after `after` (aware), in UTC."""
        if self.every_seconds is not None:
            start = after.astimezone(UTC).replace(microsecond=0)
            return start + timedelta(seconds=self.every_seconds)
        assert self.cron is not None
        local = after.astimezone(zone(self.timezone))
        try:
            for moment in CronSim(self.cron, local):
                # in a repeated hour cronsim works on the local clock and may answer the
                # first occurrence, which is before `after`: skip it
                if moment > after:
                    return moment.astimezone(UTC)
            raise StopIteration
        except StopIteration as exc:
            raise BadCadence("this cron expression never fires again") from exc

    def latest_due(self, due: datetime, now: datetime) -> datetime:
        """The latest fire time at or before `now`, given `due` (a fire time <= now).

        This is the catch-up rule: however many fire times were missed, one firing runs,
        for the newest of them.
        """
        if self.every_seconds is not None:
            periods = int((now - due).total_seconds() // self.every_seconds)
            return due + timedelta(seconds=periods * self.every_seconds)
        for window in _LOOKBACK:
            start = max(due, now - window)
            latest = None
            candidate = self.next_after(start - timedelta(seconds=1))
            while candidate <= now:
                latest = candidate
                candidate = self.next_after(candidate)
            if latest is not None:
                return latest
            if start == due:
                break
        return due


def job_id_for(schedule_id: UUID, fire_time: datetime) -> UUID:
    """The job a firing submits: the same schedule and fire time, the same job_id."""
    return uuid5(NAMESPACE_URL, f"hybridq:schedule:{schedule_id}:{iso_utc(fire_time)}")


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a Z, whole seconds (fire times are whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
