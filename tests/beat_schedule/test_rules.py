"""Table tests for beat_schedule.grid and beat_schedule.rules: grid checks, parsing, weekly firing across DST.

Transition dates for Morocco (Ramadan suspends DST, and the dates move every year) are looked up with
zoneinfo itself by scanning UTC, never guessed; the anchors for the stable zones are spelled out in UTC.
"""

from __future__ import annotations

import functools
import pickle
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beat_schedule.grid import ScheduleError, check_scheduled, on_grid, parse_zone
from beat_schedule.rules import WEEKDAYS, WeeklyRule, next_fire, occurrences, parse_recurring

ZONES = (
    "UTC",
    "Africa/Abidjan",
    "Europe/Paris",
    "America/New_York",
    "Africa/Casablanca",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Australia/Sydney",
)


@functools.cache
def transitions(zone_name: str, year: int) -> tuple[tuple[datetime, timedelta, timedelta], ...]:
    """(UTC instant, offset before, offset after) for each offset change in `year`, found by a 15-minute scan."""
    zone, found = ZoneInfo(zone_name), []
    t, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    before = t.astimezone(zone).utcoffset()
    while t < end:
        t += timedelta(minutes=15)
        after = t.astimezone(zone).utcoffset()
        if after != before:
            assert before is not None and after is not None
            found.append((t, before, after))
            before = after
    return tuple(found)


def transition_day(zone_name: str, year: int, kind: str) -> date:
    """Local date of the first spring-forward ("gap") or fall-back ("fold") transition of `year`."""
    for instant, before, after in transitions(zone_name, year):
        if (after > before) == (kind == "gap"):
            return (instant - timedelta(seconds=1)).astimezone(ZoneInfo(zone_name)).date()
    raise LookupError(f"no {kind} in {zone_name} {year}")


def rule(zone: str, times: dict[str, str], until: datetime | str | None = None) -> WeeklyRule:
    return parse_recurring(times, zone, 15, until)


def exists(day: date, t: time, zone: ZoneInfo) -> bool:
    """A wall time exists when it survives a round trip through UTC (it does not in a spring-forward gap)."""
    local = datetime.combine(day, t, tzinfo=zone)
    return local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None)


def local_midnight_minus(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC) - timedelta(microseconds=1)


# --------------------------------------------------------------------------------------------- grid


@pytest.mark.parametrize(
    ("value", "grid", "expected"),
    [
        pytest.param(time(9, 0), 15, True, id="0900"),
        pytest.param(time(9, 45), 15, True, id="0945"),
        pytest.param(time(9, 10), 15, False, id="0910-off-grid"),
        pytest.param(time(9, 0, 30), 15, False, id="seconds"),
        pytest.param(time(9, 0, 0, 1), 15, False, id="microseconds"),
        pytest.param(time(9, 30), 30, True, id="grid30-0930"),
        pytest.param(time(9, 45), 30, False, id="grid30-0945"),
        pytest.param(datetime(2026, 1, 1, 23, 45, tzinfo=UTC), 15, True, id="datetime"),
    ],
)
def test_on_grid(value: time | datetime, grid: int, expected: bool) -> None:
    assert on_grid(value, grid) is expected


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("when", "grid", "expected"),
    [
        pytest.param(
            datetime(2026, 3, 1, 12, 15, tzinfo=UTC), 15, datetime(2026, 3, 1, 12, 15, tzinfo=UTC), id="next-slot"
        ),
        pytest.param("2026-03-20T10:00:00+01:00", 15, datetime(2026, 3, 20, 9, 0, tzinfo=UTC), id="offset-to-utc"),
        pytest.param("2026-03-20T10:00:00.000Z", 15, datetime(2026, 3, 20, 10, 0, tzinfo=UTC), id="js-date"),
        # Kathmandu +05:45: local 10:00 is 04:15 UTC, on a 15-minute grid both ways...
        pytest.param("2026-03-20T10:00:00+05:45", 15, datetime(2026, 3, 20, 4, 15, tzinfo=UTC), id="kathmandu-grid15"),
        # ...but not on a 30-minute grid, because the grid is checked on the UTC value.
        pytest.param("2026-03-20T10:00:00+05:45", 30, "scheduledDate", id="kathmandu-grid30-off"),
        pytest.param(NOW, 15, "scheduledDate", id="now-is-not-future"),
        pytest.param(datetime(2026, 2, 1, 12, 0, tzinfo=UTC), 15, "scheduledDate", id="past"),
        pytest.param(datetime(2026, 3, 1, 12, 10, tzinfo=UTC), 15, "scheduledDate", id="off-grid"),
        pytest.param(datetime(2026, 3, 1, 12, 15, 30, tzinfo=UTC), 15, "scheduledDate", id="seconds"),
        pytest.param(datetime(2026, 3, 20, 10, 0), 15, "scheduledDate", id="naive"),
    ],
)
def test_check_scheduled(when: datetime | str, grid: int, expected: datetime | str) -> None:
    value = datetime.fromisoformat(when) if isinstance(when, str) else when
    if isinstance(expected, str):
        with pytest.raises(ScheduleError) as info:
            check_scheduled(value, NOW, grid)
        assert info.value.field == expected and info.value.reason
    else:
        result = check_scheduled(value, NOW, grid)
        assert result == expected and result.tzinfo is UTC


def test_check_scheduled_messages_and_field() -> None:
    with pytest.raises(ScheduleError, match="offset or Z"):
        check_scheduled(datetime(2026, 3, 20, 10, 0), NOW, 15)
    with pytest.raises(ScheduleError, match=r"12:00:00\+00:00 or 2026-03-01T12:15:00\+00:00") as info:
        check_scheduled(datetime(2026, 3, 1, 12, 7, tzinfo=UTC), NOW - timedelta(days=1), 15, field="startAt")
    assert info.value.field == "startAt"
    # Only suggestions still ahead: at 12:08, a wish for 12:09 is told 12:15, not 12:00 as well.
    with pytest.raises(ScheduleError) as ahead:
        check_scheduled(datetime(2026, 3, 1, 12, 9, tzinfo=UTC), datetime(2026, 3, 1, 12, 8, tzinfo=UTC), 15)
    assert ahead.value.reason.endswith("; use 2026-03-01T12:15:00+00:00.")
    with pytest.raises(ValueError, match="now"):
        check_scheduled(datetime(2026, 3, 20, 10, 0, tzinfo=UTC), datetime(2026, 3, 1), 15)


def test_schedule_error_round_trips_through_pickle() -> None:
    error = pickle.loads(pickle.dumps(ScheduleError("recurring.monday", "bad time.")))
    assert (error.field, error.reason, str(error)) == ("recurring.monday", "bad time.", "recurring.monday: bad time.")
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(None, "UTC", id="none-utc"),
        pytest.param("", "UTC", id="empty-utc"),
        pytest.param("Europe/Paris", "Europe/Paris", id="paris"),
        pytest.param(" europe/paris ", "Europe/Paris", id="case-and-space"),
        pytest.param("Africa/Abidjan", "Africa/Abidjan", id="abidjan"),
        pytest.param("Mars/Olympus", None, id="unknown"),
        pytest.param("localtime", None, id="server-local-rejected"),
        pytest.param("../etc/passwd", None, id="path"),
        pytest.param("+01:00", None, id="offset-not-zone"),
    ],
)
def test_parse_zone(name: str | None, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ScheduleError) as info:
            parse_zone(name)
        assert info.value.field == "timezone"
    else:
        assert parse_zone(name).key == expected


# --------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("recurring", "expected"),
    [
        pytest.param({"monday": "2024-03-18T09:00:00Z"}, {0: time(9)}, id="sdk-iso"),
        pytest.param({"monday": "2024-03-18T09:00:00.000Z"}, {0: time(9)}, id="js-date-json"),
        # The time is taken as written, not converted: 09:00+05:00 means 09:00 wall clock in the rule's zone.
        pytest.param({"monday": "2024-03-18T09:00:00+05:00"}, {0: time(9)}, id="offset-ignored"),
        pytest.param({"monday": "2024-03-20T09:00:00Z"}, {0: time(9)}, id="date-ignored-key-counts"),
        pytest.param(
            {"Monday": "09:00", "WED": "13:30", "fri": "17:45:00"},
            {0: time(9), 2: time(13, 30), 4: time(17, 45)},
            id="case-abbrev-per-day",
        ),
        pytest.param({"tues": "7:15", "thurs": "23:45"}, {1: time(7, 15), 3: time(23, 45)}, id="long-abbrev"),
        pytest.param({"sunday": datetime(2024, 3, 24, 2, 30, tzinfo=UTC)}, {6: time(2, 30)}, id="datetime-object"),
        pytest.param({"saturday": time(0, 0)}, {5: time(0)}, id="time-object"),
    ],
)
def test_parse_recurring_ok(recurring: dict[str, object], expected: dict[int, time]) -> None:
    parsed = parse_recurring(recurring, "Europe/Paris", 15)
    assert parsed.times == tuple(sorted(expected.items()))
    assert parsed.zone.key == "Europe/Paris" and parsed.until is None


@pytest.mark.parametrize(
    ("recurring", "timezone", "until", "field"),
    [
        pytest.param({}, None, None, "recurring", id="empty"),
        pytest.param(["monday"], None, None, "recurring", id="not-object"),
        pytest.param({"funday": "09:00"}, None, None, "recurring.funday", id="unknown-weekday"),
        pytest.param({"mo": "09:00"}, None, None, "recurring.mo", id="too-short-weekday"),
        pytest.param({"monday": "nine"}, None, None, "recurring.monday", id="unparseable"),
        pytest.param({"monday": "2024-03-18"}, None, None, "recurring.monday", id="date-without-time"),
        pytest.param({"monday": "24:00"}, None, None, "recurring.monday", id="hour-24"),
        pytest.param({"monday": 900}, None, None, "recurring.monday", id="number"),
        pytest.param({"monday": None}, None, None, "recurring.monday", id="null"),
        pytest.param({"monday": "09:10"}, None, None, "recurring.monday", id="off-grid"),
        pytest.param({"monday": "2024-03-18T09:10:00Z"}, None, None, "recurring.monday", id="off-grid-iso"),
        pytest.param({"monday": "09:00:30"}, None, None, "recurring.monday", id="seconds"),
        pytest.param({"monday": "2024-03-18T09:00:00.500Z"}, None, None, "recurring.monday", id="millis"),
        pytest.param({"monday": "09:00", "Mon": "10:00"}, None, None, "recurring.Mon", id="weekday-twice"),
        pytest.param({"monday": "09:00"}, "Europe/Pariss", None, "timezone", id="bad-zone"),
        pytest.param({"monday": "09:00"}, None, "2026-12-31T23:45:00", "recurringUntil", id="naive-until"),
        pytest.param({"monday": "09:00"}, None, "soon", "recurringUntil", id="bad-until"),
    ],
)
def test_parse_recurring_errors(recurring: object, timezone: str | None, until: str | None, field: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_recurring(recurring, timezone, 15, until)  # type: ignore[arg-type]
    assert info.value.field == field and info.value.reason.endswith(".")


def test_off_grid_message_suggests_neighbours() -> None:
    with pytest.raises(ScheduleError, match="use 09:00 or 09:15"):
        parse_recurring({"monday": "09:10"}, None, 15)
    with pytest.raises(ScheduleError, match="use 09:00 or 10:00"):
        parse_recurring({"monday": "09:30"}, None, 60)


@pytest.mark.parametrize(
    "until",
    [
        pytest.param("2026-06-01T09:00:00+02:00", id="iso-offset"),
        pytest.param("2026-06-01T07:00:00Z", id="iso-z"),
        pytest.param(datetime(2026, 6, 1, 7, 0, tzinfo=UTC), id="datetime"),
    ],
)
def test_json_round_trip(until: str | datetime) -> None:
    parsed = rule("Europe/Paris", {"fri": "17:45", "monday": "09:00"}, until)
    data = parsed.to_json()
    assert data == {
        "times": {"monday": "09:00", "friday": "17:45"},
        "timezone": "Europe/Paris",
        "until": "2026-06-01T07:00:00+00:00",
    }
    assert WeeklyRule.from_json(data) == parsed
    assert WeeklyRule.from_json({"times": {"monday": "09:00"}}).zone.key == "UTC"
    with pytest.raises(ScheduleError):
        WeeklyRule.from_json({"times": {"monday": "later"}, "timezone": "UTC"})


def test_rule_normalizes_and_rejects() -> None:
    built = WeeklyRule(((4, time(9)), (0, time(1, 30, fold=1))), ZoneInfo("UTC"))
    assert built.times == ((0, time(1, 30)), (4, time(9))) and built.times[0][1].fold == 0
    with pytest.raises(ValueError):
        WeeklyRule((), ZoneInfo("UTC"))
    with pytest.raises(ValueError):
        WeeklyRule(((0, time(9)), (0, time(10))), ZoneInfo("UTC"))
    with pytest.raises(ValueError):
        WeeklyRule(((0, time(9)),), ZoneInfo("UTC"), until=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="after"):
        next_fire(built, datetime(2026, 1, 1))


# --------------------------------------------------------------------------------------------- a year of firings

MWF = {"monday": "09:00", "wednesday": "09:00", "friday": "09:00"}


@pytest.mark.parametrize(
    ("zone", "times", "year", "count", "shifted", "utc_offsets"),
    [
        pytest.param("Africa/Abidjan", MWF, 2025, 156, 0, 1, id="abidjan-mwf-0900"),
        pytest.param("Europe/Paris", MWF, 2025, 156, 0, 2, id="paris-mwf-0900"),
        pytest.param("America/New_York", MWF, 2026, 156, 0, 2, id="new-york-mwf-0900"),
        pytest.param("Africa/Casablanca", MWF, 2025, 156, 0, 2, id="casablanca-mwf-0900-2025"),
        pytest.param("Africa/Casablanca", MWF, 2026, 156, 0, 2, id="casablanca-mwf-0900-2026"),
        pytest.param("Australia/Lord_Howe", MWF, 2025, 156, 0, 2, id="lord-howe-mwf-0900"),
        pytest.param("America/Santiago", MWF, 2025, 156, 0, 2, id="santiago-mwf-0900"),
        pytest.param("Australia/Sydney", MWF, 2026, 156, 0, 2, id="sydney-mwf-0900"),
        # Sunday slots that hit a gap (fires once, shifted) or a fold (fires once) every year.
        pytest.param("America/New_York", {"sunday": "02:30"}, 2026, 52, 1, 2, id="new-york-sun-0230-gap"),
        pytest.param("America/New_York", {"sunday": "01:30"}, 2026, 52, 0, 2, id="new-york-sun-0130-fold"),
        pytest.param("Europe/Paris", {"sunday": "02:30"}, 2026, 52, 1, 2, id="paris-sun-0230-gap-and-fold"),
        pytest.param("Africa/Casablanca", {"sun": "02:30"}, 2025, 52, 1, 2, id="casablanca-sun-0230-ramadan"),
        pytest.param("Africa/Casablanca", {"sun": "02:00"}, 2026, 52, 1, 2, id="casablanca-sun-0200-ramadan"),
        pytest.param("Australia/Lord_Howe", {"sunday": "02:15"}, 2025, 52, 1, 2, id="lord-howe-sun-0215-gap"),
        pytest.param("Australia/Lord_Howe", {"sunday": "01:45"}, 2025, 52, 0, 2, id="lord-howe-sun-0145-fold"),
        pytest.param("America/Santiago", {"sunday": "00:00"}, 2025, 52, 1, 2, id="santiago-sun-0000-midnight-gap"),
        pytest.param("America/Santiago", {"saturday": "23:30"}, 2025, 52, 0, 2, id="santiago-sat-2330-fold"),
        pytest.param("Australia/Sydney", {"sunday": "02:30"}, 2026, 52, 1, 2, id="sydney-sun-0230-gap-and-fold"),
        pytest.param("UTC", dict.fromkeys(WEEKDAYS, "00:00"), 2026, 364, 0, 1, id="utc-daily-midnight"),
    ],
)
def test_a_year_never_skips_or_doubles(
    zone: str, times: dict[str, str], year: int, count: int, shifted: int, utc_offsets: int
) -> None:
    weekly, tz = rule(zone, times), ZoneInfo(zone)
    first_day = date(year, 1, 1)
    start, end = local_midnight_minus(first_day, tz), local_midnight_minus(first_day + timedelta(weeks=52), tz)
    fired = occurrences(weekly, start, end)
    assert len(fired) == count
    assert fired == sorted(set(fired)) and all(t.tzinfo is UTC for t in fired)
    # Exactly one firing on every local date whose weekday is in the rule: nothing skipped, nothing doubled.
    wanted = dict(weekly.times)
    days = [first_day + timedelta(days=n) for n in range(364)]
    assert [t.astimezone(tz).date() for t in fired] == [d for d in days if d.weekday() in wanted]
    gap_shifts = 0
    for t in fired:
        local = t.astimezone(tz)
        expected = wanted[local.weekday()]
        if local.time() != expected:  # only allowed when the wall time does not exist that day
            assert not exists(local.date(), expected, tz)
            gap = local.utcoffset() - (t - timedelta(hours=3)).astimezone(tz).utcoffset()  # type: ignore[operator]
            assert datetime.combine(local.date(), expected) + gap == local.replace(tzinfo=None)
            gap_shifts += 1
    assert gap_shifts == shifted
    # The wall time holds still; the UTC instant moves with the offset.
    assert len({t.astimezone(tz).utcoffset() for t in fired}) == utc_offsets


# --------------------------------------------------------------------------------------------- DST anchors


def casablanca(year: int, kind: str) -> date:
    return transition_day("Africa/Casablanca", year, kind)


@pytest.mark.parametrize(
    ("zone", "day", "wall", "expected_utc"),
    [
        pytest.param(
            "America/New_York", date(2026, 3, 8), time(2, 30), datetime(2026, 3, 8, 7, 30), id="new-york-gap-0230"
        ),
        pytest.param(
            "America/New_York", date(2026, 3, 8), time(9), datetime(2026, 3, 8, 13), id="new-york-gap-day-0900"
        ),
        pytest.param(
            "America/New_York", date(2026, 11, 1), time(1, 30), datetime(2026, 11, 1, 5, 30), id="new-york-fold-0130"
        ),
        pytest.param(
            "Europe/Paris", date(2026, 3, 29), time(2, 30), datetime(2026, 3, 29, 1, 30), id="paris-spring-forward-0230"
        ),
        pytest.param(
            "Europe/Paris", date(2026, 3, 29), time(9, 30), datetime(2026, 3, 29, 7, 30), id="paris-spring-forward-0930"
        ),
        pytest.param(
            "Europe/Paris", date(2026, 10, 25), time(2, 30), datetime(2026, 10, 25, 0, 30), id="paris-fold-0230"
        ),
        pytest.param(
            "Australia/Lord_Howe",
            date(2026, 10, 4),
            time(2, 15),
            datetime(2026, 10, 3, 15, 45),
            id="lord-howe-gap-0215",
        ),
        pytest.param(
            "Australia/Lord_Howe", date(2026, 4, 5), time(1, 45), datetime(2026, 4, 4, 14, 45), id="lord-howe-fold-0145"
        ),
        pytest.param(
            "America/Santiago", date(2026, 9, 6), time(0, 30), datetime(2026, 9, 6, 4, 30), id="santiago-gap-0030"
        ),
        pytest.param(
            "America/Santiago", date(2026, 4, 4), time(23, 30), datetime(2026, 4, 5, 2, 30), id="santiago-fold-2330"
        ),
        pytest.param(
            "Australia/Sydney", date(2026, 10, 4), time(2, 30), datetime(2026, 10, 3, 16, 30), id="sydney-gap-0230"
        ),
        pytest.param(
            "Australia/Sydney", date(2026, 4, 5), time(2, 30), datetime(2026, 4, 4, 15, 30), id="sydney-fold-0230"
        ),
        # Morocco: +01, and +00 during Ramadan. Entering Ramadan repeats 02:00-03:00, leaving it skips 02:00-03:00.
        pytest.param(
            "Africa/Casablanca",
            casablanca(2025, "fold"),
            time(2, 30),
            time(1, 30),
            id="casablanca-2025-ramadan-in-0230",
        ),
        pytest.param(
            "Africa/Casablanca",
            casablanca(2025, "gap"),
            time(2, 30),
            time(2, 30),
            id="casablanca-2025-ramadan-out-0230",
        ),
        pytest.param(
            "Africa/Casablanca", casablanca(2026, "fold"), time(2, 0), time(1, 0), id="casablanca-2026-ramadan-in-0200"
        ),
        pytest.param(
            "Africa/Casablanca",
            casablanca(2026, "gap"),
            time(2, 45),
            time(2, 45),
            id="casablanca-2026-ramadan-out-0245",
        ),
        pytest.param(
            "Africa/Casablanca", casablanca(2026, "gap"), time(9), time(8), id="casablanca-2026-ramadan-out-0900"
        ),
    ],
)
def test_dst_day_fires_once_at_the_right_instant(
    zone: str, day: date, wall: time, expected_utc: datetime | time
) -> None:
    tz = ZoneInfo(zone)
    if isinstance(expected_utc, time):  # the date came from zoneinfo: the UTC time is on that same date
        expected_utc = datetime.combine(day, expected_utc)
    expected = expected_utc.replace(tzinfo=UTC)
    weekly = rule(zone, {WEEKDAYS[day.weekday()]: wall.isoformat("minutes")})
    assert next_fire(weekly, local_midnight_minus(day, tz)) == expected
    assert next_fire(weekly, expected - timedelta(microseconds=1)) == expected
    # Exactly once around that day, however the day's hours are counted.
    assert occurrences(weekly, expected - timedelta(days=1), expected + timedelta(days=1)) == [expected]
    # After it: the same wall time one local week later, never a second instance of a repeated hour.
    following = next_fire(weekly, expected)
    assert following is not None
    assert following.astimezone(tz).replace(tzinfo=None) == datetime.combine(day + timedelta(days=7), wall)
    second = datetime.combine(day, wall, tzinfo=tz).replace(fold=1).astimezone(UTC)
    if second > expected:  # a repeated hour: from anywhere inside it, the next firing is next week's
        assert next_fire(weekly, expected + (second - expected) / 2) == following
        assert next_fire(weekly, second - timedelta(microseconds=1)) == following


def test_casablanca_ramadan_is_found_in_late_winter() -> None:
    for year in (2025, 2026):
        fold, gap = casablanca(year, "fold"), casablanca(year, "gap")
        assert date(year, 1, 15) < fold < gap < date(year, 5, 1) and fold.weekday() == gap.weekday() == 6


# --------------------------------------------------------------------------------------------- until


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        pytest.param("2026-03-13T17:45:00+01:00", 6, id="until-equals-a-firing-keeps-it"),
        pytest.param("2026-03-13T16:44:59Z", 5, id="until-just-before-drops-it"),
        pytest.param("2026-04-01T13:30:00+02:00", 14, id="until-after-spring-forward-in-cest"),
        pytest.param("2026-03-02T07:00:00Z", 0, id="until-before-first"),
        pytest.param(None, 15, id="no-until"),
    ],
)
def test_until(until: str | None, expected: int) -> None:
    # Different times per weekday, Paris, across the 2026-03-29 spring-forward.
    weekly = rule("Europe/Paris", {"monday": "09:00", "wednesday": "13:30", "friday": "17:45"}, until)
    start = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    fired = occurrences(weekly, start, start + timedelta(weeks=5))
    assert len(fired) == expected
    local = [t.astimezone(ZoneInfo("Europe/Paris")) for t in fired]
    assert all((t.weekday(), t.time()) in weekly.times for t in local)
    if weekly.until is not None:
        assert all(t <= weekly.until for t in fired)
        assert next_fire(weekly, weekly.until) is None
        assert next_fire(weekly, fired[-1] if fired else start) is None


def test_per_weekday_times_follow_the_local_clock() -> None:
    weekly = rule("America/New_York", {"mon": "08:15", "wed": "12:00", "sat": "23:45"})
    fired = occurrences(weekly, datetime(2026, 3, 1, 5, tzinfo=UTC), datetime(2026, 3, 15, 4, tzinfo=UTC))
    assert [t.isoformat() for t in fired] == [
        "2026-03-02T13:15:00+00:00",  # EST
        "2026-03-04T17:00:00+00:00",
        "2026-03-08T04:45:00+00:00",  # Sat 23:45 EST, just before the spring-forward night
        "2026-03-09T12:15:00+00:00",  # EDT
        "2026-03-11T16:00:00+00:00",
        "2026-03-15T03:45:00+00:00",  # Sat 23:45 EDT
    ]


# --------------------------------------------------------------------------------------------- properties

TRANSITIONS = [t for zone in ZONES for year in (2025, 2026, 2030) for t, _, _ in transitions(zone, year)]
hours = st.one_of(st.integers(0, 3), st.integers(22, 23), st.integers(0, 23))  # bias to DST hours
grid_times = st.builds(time, hours, st.sampled_from([0, 15, 30, 45]))
rules = st.builds(
    lambda zone, times: WeeklyRule(tuple(times.items()), ZoneInfo(zone)),
    st.sampled_from(ZONES),
    st.dictionaries(st.integers(0, 6), grid_times, min_size=1, max_size=7),
)
instants = st.one_of(
    st.datetimes(datetime(2020, 1, 1), datetime(2035, 1, 1), timezones=st.just(UTC)),
    st.builds(
        lambda base, delta: base + delta,
        st.sampled_from(TRANSITIONS),
        st.timedeltas(-timedelta(days=8), timedelta(days=2)),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(weekly=rules, start=instants, fraction=st.floats(0, 1, exclude_max=True))
def test_successive_firings_property(weekly: WeeklyRule, start: datetime, fraction: float) -> None:
    tz, wanted = weekly.zone, dict(weekly.times)
    fired = [next_fire(weekly, start)]
    for _ in range(25):
        fired.append(next_fire(weekly, fired[-1]))  # type: ignore[arg-type]
    assert all(t is not None and t.tzinfo is UTC for t in fired)
    for previous, current in zip(fired, fired[1:], strict=False):
        assert previous is not None and current is not None and previous < current
        gap_days = (current.astimezone(tz).date() - previous.astimezone(tz).date()).days
        # 1..7 local days apart, and exactly the distance to the rule's next weekday: nothing skipped.
        assert gap_days == next(n for n in range(1, 8) if (previous.astimezone(tz).weekday() + n) % 7 in wanted)
        # Restarting anywhere between two firings finds the later one.
        inside = min(previous + (current - previous) * fraction, current - timedelta(microseconds=1))  # rounding
        assert next_fire(weekly, inside) == current
    for t in fired:
        assert t is not None
        local = t.astimezone(tz)
        expected = wanted[local.weekday()]
        if local.time() != expected:  # gap-shifted form: the wall time does not exist, moved by the gap
            assert not exists(local.date(), expected, tz)
            gap = local.utcoffset() - (t - timedelta(hours=3)).astimezone(tz).utcoffset()  # type: ignore[operator]
            assert datetime.combine(local.date(), expected) + gap == local.replace(tzinfo=None)


@settings(max_examples=200, deadline=None)
@given(weekly=rules, start=instants)
def test_occurrences_match_pep495_oracle(weekly: WeeklyRule, start: datetime) -> None:
    # Independent oracle: zoneinfo's own fold=0 reading (earlier instance in a fold, pre-transition offset
    # in a gap) of every matching local date.
    end, tz, wanted = start + timedelta(weeks=5), weekly.zone, dict(weekly.times)
    first = start.astimezone(tz).date() - timedelta(days=2)
    slots = (first + timedelta(days=n) for n in range(40))
    oracle = sorted(
        u
        for d in slots
        if d.weekday() in wanted
        for u in [datetime.combine(d, wanted[d.weekday()], tzinfo=tz).astimezone(UTC)]
        if start < u <= end
    )
    assert occurrences(weekly, start, end) == oracle
