"""Weekly recurring rules ("every monday 09:00 and friday 17:30, Europe/Paris time") and their next firing.

Pure rule math: no I/O, no clock (``after``/``start``/``end`` are passed in); every returned datetime is
timezone-aware UTC, the only form the dispatcher stores and compares.

Semantics. A rule holds, per weekday, one wall-clock time in an IANA zone. An occurrence is computed on
*local calendar dates*: for each local date whose weekday is in the rule, combine the date with that
weekday's time and localize it. Never add 7 days to a UTC instant: that drifts by an hour across DST.

* Normal days: 09:00 stays 09:00 local all year, so the UTC instant moves when the offset changes.
* Spring-forward gap (the wall time does not exist, e.g. 02:30 on the US spring-forward Sunday): fires once,
  shifted forward by the length of the gap, i.e. the wall time read with the offset in force *before* the
  transition (PEP 495 ``fold=0``): 02:30 America/New_York -> 03:30 EDT = 07:30 UTC; 02:15 on Lord Howe's
  30-minute gap -> 02:45. The occurrence is moved, never dropped.
* Fall-back fold (the wall time happens twice): fires once, at the first (earlier, ``fold=0``) instance.
  The second instance is not an occurrence at all, so ``next_fire(after=first)`` jumps to the next slot.
* A skipped calendar day (Samoa, 2011-12-30) shifts that slot onto the next day's; if both fire, once.

Pitfalls avoided (checked with zoneinfo and croniter 7.0.0): aware datetimes sharing a tzinfo compare by
wall time and ignore ``fold`` (both 01:30s of a fall-back night compare equal), so all comparisons are in
UTC; ``datetime.combine`` copies ``t.fold``, so rule times are normalized to ``fold=0``; croniter with a
zoneinfo-aware start fires a fall-back 01:30 twice and moves a gap 02:30 to 03:00, so it is not used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from beat_schedule.grid import UTC, ScheduleError, neighbours, on_grid, parse_zone, require_aware
from dispatcher.inputs import date_problem

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_PLAIN_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", re.ASCII)


@dataclass(frozen=True, slots=True)
class WeeklyRule:
    """(weekday 0=Monday, local wall-clock time) pairs, sorted, at most one per weekday, in ``zone``."""

    times: tuple[tuple[int, dt.time], ...]
    zone: zoneinfo.ZoneInfo
    until: dt.datetime | None = None  # aware; stored as UTC; no firing after it (a firing *at* it is kept)

    def __post_init__(self) -> None:
        if not self.times:
            raise ValueError("a weekly rule needs at least one weekday")
        # fold=0: combine() copies the time's fold, and fold=1 would pick the *second* instance of a fold.
        times = tuple(sorted((weekday, t.replace(fold=0)) for weekday, t in self.times))
        weekdays = [weekday for weekday, _ in times]
        if len(set(weekdays)) != len(weekdays) or not all(0 <= w <= 6 for w in weekdays):
            raise ValueError(f"weekdays must be distinct values in 0..6, got {weekdays}")
        if any(t.tzinfo is not None for _, t in times):
            raise ValueError("rule times are naive wall-clock times; the zone is the rule's zone")
        object.__setattr__(self, "times", times)  # frozen: normalizing in place is the documented escape
        if self.until is not None:
            require_aware(self.until, "until")
            object.__setattr__(self, "until", self.until.astimezone(UTC))

    def to_json(self) -> dict[str, object]:
        """{"times": {"monday": "09:00", ...}, "timezone": "Europe/Paris", "until": ISO string or None}."""
        if self.zone.key is None:
            raise ValueError("a zone loaded from a file has no IANA name to store")
        return {
            "times": {
                WEEKDAYS[w]: t.isoformat("minutes" if t.second == t.microsecond == 0 else "auto") for w, t in self.times
            },
            "timezone": self.zone.key,
            "until": None if self.until is None else self.until.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> WeeklyRule:
        """Inverse of ``to_json``. No grid check: a stored rule stays loadable if the grid setting changes."""
        zone_name = data.get("timezone")
        if zone_name is not None and not isinstance(zone_name, str):
            raise ScheduleError("timezone", "must be an IANA time zone name such as Europe/Paris.")
        return cls(_parse_times(data.get("times"), None), parse_zone(zone_name), _parse_until(data.get("until")))


def parse_recurring(
    recurring: Mapping[str, object], timezone: str | None, grid_minutes: int, until: dt.datetime | str | None = None
) -> WeeklyRule:
    """Build a rule from the API's ``recurring`` object, e.g. {"monday": "2024-03-18T09:00:00.000Z"}.

    Only the key's weekday and the value's time of day *as written* count (the date and any offset are
    ignored): the SDK sends JS Dates whose date is meaningless, and the time is wall clock in ``timezone``.
    """
    return WeeklyRule(_parse_times(recurring, grid_minutes), parse_zone(timezone), _parse_until(until))


def next_fire(rule: WeeklyRule, after: dt.datetime) -> dt.datetime | None:
    """The first occurrence strictly after ``after``, in UTC, or None when it would be after ``rule.until``."""
    require_aware(after, "after")
    after_utc = after.astimezone(UTC)
    times = dict(rule.times)
    # Start one local date early: a gap shift can push a late slot past midnight. Any 7 consecutive dates
    # contain every weekday, so 9 dates always hold the answer; take the minimum in UTC rather than the
    # first found, because a shifted slot may overtake the next date's slot.
    first_day = after_utc.astimezone(rule.zone).date() - dt.timedelta(days=1)
    best: dt.datetime | None = None
    for offset in range(9):
        day = first_day + dt.timedelta(days=offset)
        t = times.get(day.weekday())
        if t is None:
            continue
        fire = _localize(day, t, rule.zone)
        if fire > after_utc and (best is None or fire < best):
            best = fire
    if best is None or (rule.until is not None and best > rule.until):
        return None
    return best


def occurrences(rule: WeeklyRule, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Every occurrence t with start < t <= end, ascending, in UTC."""
    require_aware(end, "end")
    found: list[dt.datetime] = []
    fire = next_fire(rule, start)
    while fire is not None and fire <= end:
        found.append(fire)
        fire = next_fire(rule, fire)
    return found


def _localize(day: dt.date, t: dt.time, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The UTC instant of wall time ``t`` on local date ``day``: earliest instance in a fold, gap-shifted."""
    wall = dt.datetime.combine(day, t)
    offsets = {dt.datetime.combine(day, t, tzinfo=zone).replace(fold=fold).utcoffset() for fold in (0, 1)}
    candidates = [wall - off for off in offsets if off is not None]
    # Keep the instants that really read as this wall time; two survive in a fold, none in a gap.
    real = [u for u in candidates if u.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None) == wall]
    if real:
        return min(real).replace(tzinfo=UTC)
    # Gap: read the wall time with the pre-transition (smaller) offset, i.e. shift forward by the gap.
    return max(candidates).replace(tzinfo=UTC)


def _parse_times(recurring: object, grid_minutes: int | None) -> tuple[tuple[int, dt.time], ...]:
    """Weekday -> time pairs; ``grid_minutes=None`` skips the grid check (rules loaded from storage)."""
    if not isinstance(recurring, Mapping) or not recurring:
        raise ScheduleError("recurring", "must be a non-empty object mapping weekday names to times of day.")
    times: dict[int, dt.time] = {}
    keys: dict[int, object] = {}
    for key, value in recurring.items():
        field, weekday = f"recurring.{key}", _parse_weekday(key)
        if weekday in keys:
            raise ScheduleError(field, f"{WEEKDAYS[weekday]} is given twice ({keys[weekday]!r} and {key!r}).")
        keys[weekday] = key
        times[weekday] = t = _parse_time_of_day(field, value)
        if grid_minutes is None:
            continue
        if t.second or t.microsecond:
            raise ScheduleError(field, f"seconds must be zero (got {t.isoformat()}).")
        if not on_grid(t, grid_minutes):
            before, after = (x.strftime("%H:%M") for x in neighbours(t, grid_minutes))
            raise ScheduleError(
                field, f"{t:%H:%M} is not a multiple of {grid_minutes} minutes; use {before} or {after}."
            )
    return tuple(times.items())


def _parse_weekday(key: object) -> int:
    name = key.strip().lower() if isinstance(key, str) else ""
    for index, weekday in enumerate(WEEKDAYS):
        # Full name or any prefix of 3+ letters ("mon", "tues", "thurs"); 3-letter prefixes are unique.
        if len(name) >= 3 and weekday.startswith(name):
            return index
    raise ScheduleError(f"recurring.{key}", f"unknown weekday {key!r}; use monday .. sunday or mon .. sun.")


def _parse_time_of_day(field: str, value: object) -> dt.time:
    """The value's own hour/minute/second as written; its date and offset are ignored."""
    if isinstance(value, dt.datetime | dt.time):
        return dt.time(value.hour, value.minute, value.second, value.microsecond)
    parsed = _time_from_string(field, value.strip()) if isinstance(value, str) else None
    if parsed is None:
        raise ScheduleError(field, f"cannot read a time of day from {value!r}; use e.g. 09:00 or 2024-03-18T09:00:00Z.")
    return parsed


def _time_from_string(field: str, text: str) -> dt.time | None:
    """Read "9:00", "09:00:00", "09:00Z" or "2024-03-18T09:00:00.000Z" as a naive time as written, else None."""
    try:
        if plain := _PLAIN_TIME.fullmatch(text):
            hour, minute, second = (int(group or 0) for group in plain.groups())
            return dt.time(hour, minute, second)
        with contextlib.suppress(ValueError):
            dt.date.fromisoformat(text)
            return None  # a bare date would parse as midnight: it has no time of day
        with contextlib.suppress(ValueError):
            return dt.time.fromisoformat(text).replace(tzinfo=None)  # a time with an offset: "09:00Z"
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    # The date is ignored, but one no schedule could mean (or without a UTC form) is a mistake worth naming.
    problem = date_problem(moment)
    if problem is not None:
        raise ScheduleError(field, f"{problem} ({text!r}); give a time of day such as 09:00.")
    return moment.time()  # .time() drops the offset: the time as written


def _parse_until(until: object) -> dt.datetime | None:
    if until is None or until == "":
        return None
    value = until
    if isinstance(until, str):
        try:
            value = dt.datetime.fromisoformat(until.strip())
        except ValueError:
            value = None
    if not isinstance(value, dt.datetime):
        raise ScheduleError("recurringUntil", "must be a date and time with an offset, e.g. 2024-12-31T23:45:00Z.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError("recurringUntil", "must include a UTC offset or Z, e.g. 2024-12-31T23:45:00Z.")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 has no UTC form
        raise ScheduleError("recurringUntil", "is out of range.") from None
