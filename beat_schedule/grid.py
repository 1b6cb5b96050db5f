"""Validation shared by scheduled and recurring campaigns: the time grid, one-off fire times, time zones.

Pure functions: no I/O and no clock. Callers pass ``now`` so that the API, the beat tick and the tests all
agree on what "in the future" means.

Grid semantics. A fire time is "on the grid" when its minute is a multiple of ``grid_minutes`` (15 by
default: 09:00, 09:15, ...) and its seconds and microseconds are zero.

* A one-off ``scheduledDate`` is an instant, so it is checked on its UTC value. Every UTC offset in use
  today is a multiple of 15 minutes (the odd ones are +05:45 Kathmandu, +08:45 Eucla, +12:45/+13:45
  Chatham), so for the default grid the UTC check and a check in the writer's own offset agree; for a 30- or
  60-minute grid they do not, and UTC is the one the dispatcher can actually honour.
* A recurring time is a local wall-clock time (see ``beat_schedule.rules``) and is checked as written.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

UTC = dt.UTC

# Names that zoneinfo resolves (they are files under /usr/share/zoneinfo) but that are not time zones a
# user means: "localtime" is whatever the server runs in, "posixrules" is a template, "Factory" means
# "zone unknown", "right/..." zones count leap seconds and would shift every firing by ~27 s.
_REJECTED_ZONES = frozenset({"localtime", "posixrules", "factory"})


class ScheduleError(ValueError):
    """A schedule that cannot be accepted.

    ``field`` names the offending input field (e.g. "scheduledDate", "recurring.monday", "timezone",
    "recurringUntil"), ``reason`` is a sentence for a user.
    """

    def __init__(self, field: str, reason: str) -> None:
        # args == (field, reason) so that pickle and Celery's exception re-creation (cls(*args)) round-trip.
        super().__init__(field, reason)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def _check_grid_size(grid_minutes: int) -> None:
    if isinstance(grid_minutes, bool) or not isinstance(grid_minutes, int) or not 1 <= grid_minutes <= 60:
        raise ValueError(f"grid_minutes must be an int in 1..60, got {grid_minutes!r}")


def on_grid(t: dt.time | dt.datetime, grid_minutes: int) -> bool:
    """True when ``t`` falls on the schedule grid: minute a multiple of the grid, zero seconds."""
    _check_grid_size(grid_minutes)
    return t.minute % grid_minutes == 0 and t.second == 0 and t.microsecond == 0


def require_aware(value: dt.datetime, name: str) -> None:
    # Programmer error (not user input): comparing naive with aware would raise later, and far from here.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


def neighbours(t: dt.time | dt.datetime, grid_minutes: int) -> tuple[dt.datetime, dt.datetime]:
    """The grid points just before (or at) and just after ``t``, to suggest in error messages."""
    _check_grid_size(grid_minutes)
    base = t if isinstance(t, dt.datetime) else dt.datetime.combine(dt.date(2000, 1, 3), t)
    floor = base.replace(second=0, microsecond=0) - dt.timedelta(minutes=base.minute % grid_minutes)
    return floor, floor + dt.timedelta(minutes=grid_minutes)


def check_scheduled(
    when: dt.datetime, now: dt.datetime, grid_minutes: int, field: str = "scheduledDate"
) -> dt.datetime:
    """Validate a one-off fire time and return it in UTC.

    ``when`` must carry an offset (a naive value would silently mean the server's zone), be on the grid in
    UTC and be strictly after ``now``.
    """
    _check_grid_size(grid_minutes)
    require_aware(now, "now")
    if not isinstance(when, dt.datetime):
        raise ScheduleError(field, "must be a date and time, e.g. 2024-03-20T10:00:00Z.")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ScheduleError(field, "must include a UTC offset or Z, e.g. 2024-03-20T10:00:00Z.")
    utc = when.astimezone(UTC)
    if not on_grid(utc, grid_minutes):
        # Suggest the nearest grid points that are still ahead, in the offset the user wrote them in.
        ahead = [x for x in neighbours(utc, grid_minutes) if x > now.astimezone(UTC)]
        hint = " or ".join(x.astimezone(when.tzinfo).isoformat() for x in ahead)
        raise ScheduleError(
            field,
            f"must be a multiple of {grid_minutes} minutes with zero seconds (got {when.isoformat()})"
            + (f"; use {hint}." if hint else "."),
        )
    if utc <= now.astimezone(UTC):
        raise ScheduleError(field, f"must be in the future (got {when.isoformat()}, now is {now.isoformat()}).")
    return utc


@functools.cache
def _zone_names() -> dict[str, str]:
    # Lower-cased name -> canonical name, so "europe/paris" is accepted and stored as "Europe/Paris".
    # Scanning the tz database is slow (tens of ms), hence the cache.
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def parse_zone(name: str | None, field: str = "timezone") -> zoneinfo.ZoneInfo:
    """Resolve an IANA zone name; None or "" means UTC. Unknown names raise ScheduleError."""
    if name is None:
        return zoneinfo.ZoneInfo("UTC")
    if not isinstance(name, str):
        raise ScheduleError(field, "must be an IANA time zone name such as Europe/Paris.")
    key = name.strip()
    if not key:
        return zoneinfo.ZoneInfo("UTC")
    folded = key.lower()
    canonical = _zone_names().get(folded)
    if canonical is None or folded in _REJECTED_ZONES or folded.startswith(("right/", "posix/")):
        raise ScheduleError(field, f"unknown time zone {name!r}; use an IANA name such as Europe/Paris or UTC.")
    try:
        return zoneinfo.ZoneInfo(canonical)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:  # listed but unreadable
        raise ScheduleError(field, f"unknown time zone {name!r}; use an IANA name such as Europe/Paris.") from exc
