"""Business calendars (runtime/calendars.py): checked against an independent minute-by-minute
oracle on random calendars, and on the cases the SLA issue names.

The oracle knows nothing of the implementation: it takes the calendar as plain data (spans in
minutes per weekday), and for every UTC minute asks the wall clock in the zone what date and
time it shows, then whether that time lies in a span of an open day (the day itself, or the
day before for an overnight span). Business time is the number of open minutes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLES
from engine.blueprint import compile_pack
from engine.load import load_pack_path
from engine.model import Calendar
from engine.values import parse_days
from runtime.calendars import BusinessCalendar, calendars_of

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
MINUTE = timedelta(minutes=1)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def make(week: Any, tz: str = "Asia/Shanghai", **more: Any) -> BusinessCalendar:
    """A calendar as a pack would define it, through the pack model."""
    return BusinessCalendar.from_model(Calendar.model_validate({"week": week, **more}), tz)


def local(
    tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz, fold=fold)


# -- the oracle ----------------------------------------------------------------------------


@dataclass
class Oracle:
    """Brute force over UTC minutes. `week[i]`: spans of weekday i (Monday = 0) as
    (start, end) minutes from the day's midnight; an overnight span ends past 1440."""

    week: list[list[tuple[int, int]]]
    tz: ZoneInfo
    country: str | None = None
    subdivision: str | None = None
    extra_holidays: set[date] = field(default_factory=set)
    extra_workdays: set[date] = field(default_factory=set)

    @cached_property
    def public(self) -> Any:
        if self.country is None:
            return {}
        return holidays.country_holidays(
            self.country, subdiv=self.subdivision, years=range(2025, 2031)
        )

    def hours(self, day: date) -> list[tuple[int, int]]:
        if day in self.extra_holidays:
            return []
        own = self.week[day.weekday()]
        if day in self.extra_workdays:
            if own:
                return own
            for hours in self.week:  # the first weekday, Monday first, that has hours
                if hours:
                    return hours
            return []
        if day in self.public:
            return []
        return own

    def minute_open(self, minute: int) -> bool:
        """Is the UTC minute starting `minute` minutes after the epoch business time?"""
        wall = datetime.fromtimestamp(minute * 60, self.tz)
        today = wall.date()
        clock = wall.hour * 60 + wall.minute
        for days_back in (0, 1):
            day = today - timedelta(days=days_back)
            for start, end in self.hours(day):
                if start <= clock + 1440 * days_back < end:
                    return True
        return False


@dataclass
class Walk:
    """The oracle's answers over a window of UTC minutes [first, first + len(opens))."""

    first: int
    opens: list[bool]

    @cached_property
    def prefix(self) -> list[int]:
        return [0, *accumulate(int(o) for o in self.opens)]

    @property
    def end(self) -> int:
        return self.first + len(self.opens)

    def between(self, a: int, b: int) -> int:
        """Open minutes in [a, b), negative when b < a."""
        if b < a:
            return -self.between(b, a)
        return self.prefix[b - self.first] - self.prefix[a - self.first]

    def add(self, start: int, minutes: int) -> int | None:
        """The end of the `minutes`-th open minute from `start`; None if past the window."""
        if minutes == 0:
            return start
        count = 0
        for m in range(start, self.end):
            count += self.opens[m - self.first]
            if count == minutes:
                return m + 1
        return None

    def next_open(self, start: int) -> int | None:
        return next((m for m in range(start, self.end) if self.opens[m - self.first]), None)


def walk(oracle: Oracle, first: int, minutes: int) -> Walk:
    return Walk(first, [oracle.minute_open(m) for m in range(first, first + minutes)])


def at_minute(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def minute_of(t: datetime) -> int:
    seconds = t.timestamp()
    assert seconds % 60 == 0, t
    return int(seconds) // 60


# -- random calendars ----------------------------------------------------------------------


def clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


ROUND = st.sampled_from([0, 30, 60, 120, 180, 360, 420, 480, 540, 720, 1080, 1320, 1380, 1440])
MINUTES = st.one_of(ROUND, st.integers(0, 1440))


@st.composite
def day_hours(draw: st.DrawFn) -> list[tuple[int, int]]:
    kind = draw(st.sampled_from(["closed", "24h", "spans", "spans", "spans", "spans"]))
    if kind == "closed":
        return []
    if kind == "24h":
        return [(0, 1440)]
    n = draw(st.integers(1, 3))
    points = sorted(draw(st.sets(MINUTES, min_size=2 * n, max_size=2 * n)))
    spans = [(points[i], points[i + 1]) for i in range(0, 2 * n, 2)]
    if draw(st.booleans()):
        # Overnight: the last span ends the next morning, at a time before it starts.
        start = spans[-1][0]
        if start > 0:
            spans[-1] = (start, 1440 + draw(st.integers(0, start - 1)))
    return spans


def render(hours: list[tuple[int, int]], as_list: bool) -> str | list[str]:
    if not hours:
        return "closed"
    if hours == [(0, 1440)]:
        return "24h"
    texts = [f"{clock(a)}-{clock(b % 1440 if b > 1440 else b)}" for a, b in hours]
    return texts if as_list else ", ".join(texts)


# Days around which the clocks change or many holidays fall.
BASES: dict[str, list[date]] = {
    "America/New_York": [date(2026, 3, 8), date(2026, 11, 1), date(2026, 7, 3)],
    "Europe/Berlin": [date(2026, 3, 29), date(2026, 10, 25), date(2026, 12, 24)],
    "Asia/Shanghai": [date(2026, 10, 1), date(2026, 2, 16), date(2026, 1, 1)],
    "UTC": [date(2026, 5, 1), date(2026, 12, 31)],
}
COUNTRIES: list[tuple[str, str | None] | None] = [
    None,
    ("US", None),
    ("US", "CA"),
    ("DE", None),
    ("DE", "BY"),
    ("CN", None),
]


@dataclass
class Case:
    oracle: Oracle
    calendar: BusinessCalendar
    start: int  # UTC minute
    spec: dict[str, Any]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    tz_name = draw(st.sampled_from(sorted(BASES)))
    tz = ZoneInfo(tz_name)
    if draw(st.integers(0, 9)) == 0:
        week: list[list[tuple[int, int]]] = [[(0, 1440)]] * 7
        week_spec: Any = "24x7"
    else:
        week = [draw(day_hours()) for _ in DAY_NAMES]
        as_list = draw(st.booleans())
        week_spec = {name: render(h, as_list) for name, h in zip(DAY_NAMES, week, strict=True)}
    if draw(st.booleans()):
        base = draw(st.sampled_from(BASES[tz_name]))
    else:
        base = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 364)))
    near = st.integers(-5, 15).map(lambda n: base + timedelta(days=n))
    extra_holidays = draw(st.sets(near, max_size=3))
    extra_workdays = draw(st.sets(near, max_size=3)) - extra_holidays
    country = draw(st.sampled_from(COUNTRIES))
    spec: dict[str, Any] = {
        "week": week_spec,
        "extra_holidays": sorted(extra_holidays),
        "extra_workdays": sorted(extra_workdays),
    }
    if country is not None:
        c, sub = country
        spec["holidays"] = c if sub is None else {"country": c, "subdivision": sub}
    midnight = datetime(base.year, base.month, base.day, tzinfo=tz).astimezone(UTC)
    start = minute_of(midnight) + draw(st.integers(-4 * 1440, 2 * 1440))
    oracle = Oracle(
        week,
        tz,
        country[0] if country else None,
        country[1] if country else None,
        set(extra_holidays),
        set(extra_workdays),
    )
    calendar = BusinessCalendar.from_model(Calendar.model_validate(spec), tz_name)
    return Case(oracle, calendar, start, spec)


BACK = 3 * 1440  # the oracle's window starts this many minutes before the start ...
AHEAD = 10 * 1440  # ... and ends this many after it


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=cases(),
    durations=st.lists(st.integers(0, 3 * 1440), min_size=1, max_size=4),
    offsets=st.lists(st.integers(-BACK, AHEAD - 1), min_size=1, max_size=4),
)
def test_agrees_with_minute_by_minute_oracle(
    case: Case, durations: list[int], offsets: list[int]
) -> None:
    w = walk(case.oracle, case.start - BACK, BACK + AHEAD)
    cal, start = case.calendar, at_minute(case.start)
    note = f"{case.spec} from {start}"
    never_open = not any(case.oracle.week)
    for minutes in durations:
        expected = w.add(case.start, minutes)
        if never_open and minutes:
            with pytest.raises(ValueError, match="no open hours"):
                cal.add(start, timedelta(minutes=minutes))
            continue
        got = cal.add(start, timedelta(minutes=minutes))
        if expected is None:
            assert got >= at_minute(w.end), note
        else:
            assert got == at_minute(expected), f"add {minutes}m: {note}"
    for offset in offsets:
        b = case.start + offset
        business = w.between(case.start, b)
        assert cal.between(start, at_minute(b)) == business * MINUTE, note
        if business > 0 and not never_open:
            # A duration that ends exactly at a closing time, the edge `add` must not skip.
            assert cal.add(start, business * MINUTE) == at_minute(
                w.add(case.start, business) or 0
            ), f"add {business}m: {note}"
        assert cal.is_open(at_minute(b)) == w.opens[b - w.first], f"is_open {at_minute(b)}"
    first_open = w.next_open(case.start)
    if first_open is not None:
        assert cal.next_open(start) == at_minute(first_open), note


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=cases(),
    seconds=st.integers(0, 59),
    micro=st.integers(0, 999_999),
    duration=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=4)),
)
def test_between_inverts_add(case: Case, seconds: int, micro: int, duration: timedelta) -> None:
    assume(any(case.oracle.week))  # a calendar that never opens has no `add` (tested below)
    s = at_minute(case.start) + timedelta(seconds=seconds, microseconds=micro)
    end = case.calendar.add(s, duration)
    assert case.calendar.between(s, end) == duration
    assert case.calendar.between(end, s) == -duration
    # add gives the earliest such instant: a microsecond before, the time was not yet up.
    if duration:
        assert case.calendar.between(s, end - timedelta(microseconds=1)) < duration
        assert case.calendar.is_open(end - timedelta(microseconds=1))


# -- the SLA issue's examples --------------------------------------------------------------

OFFICE = {"mon-fri": "09:00-18:00"}


def test_p1_first_response_from_friday_evening_lands_monday_morning() -> None:
    cal = make(OFFICE, holidays="CN")
    friday = local(SHANGHAI, 2026, 3, 13, 17, 50)
    due = cal.add(friday, timedelta(minutes=30))
    assert due == local(SHANGHAI, 2026, 3, 16, 9, 20)
    assert due.tzinfo is UTC
    assert cal.between(friday, due) == timedelta(minutes=30)


def test_p1_resolution_four_working_hours() -> None:
    cal = make({"mon-fri": "09:00-12:00, 13:00-18:00"}, holidays="CN")
    start = local(SHANGHAI, 2026, 3, 13, 16, 0)  # Friday: 2 hours today, 2 on Monday
    assert cal.add(start, timedelta(hours=4)) == local(SHANGHAI, 2026, 3, 16, 11, 0)


def test_cn_national_day_is_skipped_and_make_up_days_are_worked() -> None:
    cal = make(OFFICE, holidays="CN", extra_workdays=["2026-09-20", "2026-10-10"])
    # Wednesday 30 September, one hour before closing: 1 to 7 October are holidays (4 October
    # is a Sunday), Thursday 8 October the office reopens.
    eve = local(SHANGHAI, 2026, 9, 30, 17, 0)
    assert cal.add(eve, timedelta(hours=2)) == local(SHANGHAI, 2026, 10, 8, 10, 0)
    assert cal.between(eve, local(SHANGHAI, 2026, 10, 8, 9, 0)) == timedelta(hours=1)
    for day in range(1, 8):
        assert not cal.is_open(local(SHANGHAI, 2026, 10, day, 10, 0))
    # Sunday 20 September and Saturday 10 October are make-up workdays (调休上班).
    assert cal.add(local(SHANGHAI, 2026, 9, 18, 17), timedelta(hours=2)) == local(
        SHANGHAI, 2026, 9, 20, 10
    )
    assert cal.add(local(SHANGHAI, 2026, 10, 9, 17), timedelta(hours=2)) == local(
        SHANGHAI, 2026, 10, 10, 10
    )
    assert not cal.is_open(local(SHANGHAI, 2026, 10, 11, 10))  # an ordinary Sunday


def test_make_up_workday_hours() -> None:
    # A weekend make-up day takes the hours of the first weekday with hours (here Tuesday);
    # a public holiday made a workday keeps its own weekday's hours.
    cal = make(
        {"tue": "10:00-11:00", "wed-thu": "08:00-20:00"},
        holidays="CN",
        extra_workdays=["2026-10-10", "2026-10-07"],  # Saturday; Wednesday, National Day
    )
    saturday = local(SHANGHAI, 2026, 10, 10)
    assert cal.between(saturday, saturday + timedelta(days=1)) == timedelta(hours=1)
    assert cal.is_open(local(SHANGHAI, 2026, 10, 10, 10, 30))
    wednesday = local(SHANGHAI, 2026, 10, 7)
    assert cal.between(wednesday, wednesday + timedelta(days=1)) == timedelta(hours=12)
    assert not cal.is_open(local(SHANGHAI, 2026, 10, 6, 10, 30))  # a holiday Tuesday


def test_extra_holiday_closes_and_wins_over_extra_workday() -> None:
    cal = BusinessCalendar(
        [[(9 * 3600, 18 * 3600)]] * 5 + [[], []],
        SHANGHAI,
        extra_holidays=[date(2026, 3, 16)],
        extra_workdays=[date(2026, 3, 16), date(2026, 3, 14)],
    )
    assert not cal.is_open(local(SHANGHAI, 2026, 3, 16, 10))
    assert cal.is_open(local(SHANGHAI, 2026, 3, 14, 10))


# -- overnight spans -----------------------------------------------------------------------


def test_overnight_span_belongs_to_the_day_it_starts() -> None:
    cal = make({"mon-fri": "22:00-06:00"}, extra_holidays=["2026-03-14"])  # a Saturday
    friday_night = local(SHANGHAI, 2026, 3, 13, 22, 0)
    # Friday's shift runs into Saturday morning, holiday or not.
    assert cal.is_open(local(SHANGHAI, 2026, 3, 14, 5, 59))
    assert not cal.is_open(local(SHANGHAI, 2026, 3, 14, 6, 0))
    assert cal.add(friday_night, timedelta(hours=8)) == local(SHANGHAI, 2026, 3, 14, 6, 0)
    # 9 hours: the ninth is Monday 22:00-23:00 (Saturday night and Sunday night are closed).
    assert cal.add(friday_night, timedelta(hours=9)) == local(SHANGHAI, 2026, 3, 16, 23, 0)
    # Monday morning 00:00-06:00 is Sunday's span, and Sunday has none.
    assert not cal.is_open(local(SHANGHAI, 2026, 3, 16, 3, 0))


def test_holiday_removes_the_overnight_span_starting_on_it() -> None:
    cal = make({"mon-fri": "22:00-06:00"}, extra_holidays=["2026-03-13"])  # a Friday
    assert not cal.is_open(local(SHANGHAI, 2026, 3, 13, 23, 0))
    assert not cal.is_open(local(SHANGHAI, 2026, 3, 14, 1, 0))
    assert cal.is_open(local(SHANGHAI, 2026, 3, 13, 1, 0))  # Thursday's shift still ends


def test_overlapping_spans_of_neighbouring_days_count_once() -> None:
    cal = make({"fri": "22:00-06:00", "sat": "05:00-07:00"})
    friday = local(SHANGHAI, 2026, 3, 13)
    assert cal.between(friday, friday + timedelta(days=2)) == timedelta(hours=9)


def test_midnight_as_end_and_round_the_clock_shifts() -> None:
    cal = make({"mon-sat": "00:00-08:00, 08:00-16:00, 16:00-24:00", "sun": "closed"})
    saturday = local(SHANGHAI, 2026, 3, 14, 23, 0)
    assert cal.is_open(saturday)
    assert cal.add(saturday, timedelta(hours=2)) == local(SHANGHAI, 2026, 3, 16, 1, 0)
    assert cal.between(saturday, local(SHANGHAI, 2026, 3, 16)) == timedelta(hours=1)


# -- daylight saving -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "hours", "real"),
    [
        (NEW_YORK, date(2026, 3, 8), "01:00-04:00", timedelta(hours=2)),  # 02:00-03:00 skipped
        (NEW_YORK, date(2026, 3, 8), "02:15-02:45", timedelta(0)),  # never on the clock
        (NEW_YORK, date(2026, 11, 1), "00:00-03:00", timedelta(hours=4)),  # 01:00-02:00 twice
        (NEW_YORK, date(2026, 11, 1), "01:00-02:00", timedelta(hours=2)),
        (NEW_YORK, date(2026, 11, 1), "01:30-04:00", timedelta(hours=3)),  # 01:30-02:00 twice
        (BERLIN, date(2026, 3, 29), "00:00-24:00", timedelta(hours=23)),
        (BERLIN, date(2026, 3, 29), "01:00-04:00", timedelta(hours=2)),
        (BERLIN, date(2026, 10, 25), "00:00-24:00", timedelta(hours=25)),
        (BERLIN, date(2026, 10, 25), "02:00-03:00", timedelta(hours=2)),
    ],
)
def test_wall_clock_spans_on_dst_days_count_real_time(
    tz: ZoneInfo, day: date, hours: str, real: timedelta
) -> None:
    cal = make({DAY_NAMES[day.weekday()]: hours}, tz=tz.key)
    before = datetime(day.year, day.month, day.day, tzinfo=tz) - timedelta(days=1)
    assert cal.between(before, before + timedelta(days=3)) == real


def test_add_across_spring_forward_and_fall_back() -> None:
    cal = make("24x7", tz="America/New_York", holidays="US")
    sat = local(NEW_YORK, 2026, 3, 7, 12)
    assert cal.add(sat, timedelta(hours=24)) == local(NEW_YORK, 2026, 3, 8, 13)
    cal = make({"sun": "00:00-03:00"}, tz="America/New_York")
    midnight = local(NEW_YORK, 2026, 11, 1)
    first_one = cal.add(midnight, timedelta(hours=1))
    second_one = cal.add(midnight, timedelta(hours=2))
    # (Compared in UTC: Python never finds an ambiguous local time equal to another zone's.)
    assert first_one == local(NEW_YORK, 2026, 11, 1, 1, fold=0).astimezone(UTC)
    assert second_one == local(NEW_YORK, 2026, 11, 1, 1, fold=1).astimezone(UTC)
    assert second_one - first_one == timedelta(hours=1)
    assert cal.add(midnight, timedelta(hours=4)) == local(NEW_YORK, 2026, 11, 1, 3)


# -- the API's edges -----------------------------------------------------------------------


def test_zero_duration_and_closed_starts() -> None:
    cal = make(OFFICE)
    evening = local(SHANGHAI, 2026, 3, 13, 20, 0)
    assert cal.add(evening, timedelta(0)) == evening  # zero does not move to the next open
    assert cal.next_open(evening) == local(SHANGHAI, 2026, 3, 16, 9, 0)
    assert cal.add(evening, MINUTE) == local(SHANGHAI, 2026, 3, 16, 9, 1)
    # A target used up exactly at closing time falls due at closing time, not at the next
    # opening, also when a whole day of business time is used up.
    friday = local(SHANGHAI, 2026, 3, 13, 17)
    assert cal.add(friday, timedelta(hours=1)) == local(SHANGHAI, 2026, 3, 13, 18)
    assert cal.add(friday, timedelta(hours=10)) == local(SHANGHAI, 2026, 3, 16, 18)
    open_at = local(SHANGHAI, 2026, 3, 13, 10, 0)
    assert cal.next_open(open_at) == open_at
    assert cal.is_open(local(SHANGHAI, 2026, 3, 13, 9, 0))
    assert not cal.is_open(local(SHANGHAI, 2026, 3, 13, 18, 0))


def test_between_is_negative_backwards_and_input_zone_does_not_matter() -> None:
    cal = make(OFFICE)
    a = local(SHANGHAI, 2026, 3, 13, 10)
    b = local(SHANGHAI, 2026, 3, 16, 10)
    assert cal.between(a, b) == timedelta(hours=9)
    assert cal.between(b, a) == -timedelta(hours=9)
    assert cal.between(a, a) == timedelta(0)
    assert cal.add(a.astimezone(NEW_YORK), timedelta(hours=9)) == b
    assert cal.between(a.astimezone(BERLIN), b.astimezone(UTC)) == timedelta(hours=9)


def test_bad_arguments_are_refused() -> None:
    cal = make(OFFICE)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.add(datetime(2026, 3, 13, 10), MINUTE)
    with pytest.raises(ValueError, match="negative"):
        cal.add(local(SHANGHAI, 2026, 3, 13, 10), -MINUTE)


def test_always_and_24x7_are_real_time() -> None:
    t = local(NEW_YORK, 2026, 3, 7, 23, 30).astimezone(UTC)  # 5 hours later, New York is on EDT
    for cal in (BusinessCalendar.always(), make("24x7", tz="America/New_York")):
        assert cal.add(t, timedelta(days=400)) == t + timedelta(days=400)
        assert cal.between(t, t + timedelta(hours=5)) == timedelta(hours=5)
        assert cal.is_open(t)
        assert cal.next_open(t) == t


def test_24x7_with_holidays_closes_on_holidays() -> None:
    cal = make("24x7", holidays="CN")
    assert not cal.is_open(local(SHANGHAI, 2026, 10, 1, 12))
    assert cal.next_open(local(SHANGHAI, 2026, 10, 1, 12)) == local(SHANGHAI, 2026, 10, 4)


def test_day_ranges_and_span_lists() -> None:
    assert parse_days("mon-fri") == [0, 1, 2, 3, 4]
    assert parse_days("fri-mon") == [4, 5, 6, 0]
    assert parse_days("sat, sun") == [5, 6]
    assert parse_days("sat-sat") == [5]
    with pytest.raises(ValueError):
        parse_days("weekend")
    cal = make({"sat,sun": ["09:00-12:00", "13:00-18:00"], "mon-fri": "24h"})
    sunday = local(SHANGHAI, 2026, 3, 15)
    assert cal.between(sunday, sunday + timedelta(days=1)) == timedelta(hours=8)
    assert cal.between(sunday + timedelta(days=1), sunday + timedelta(days=2)) == timedelta(
        hours=24
    )


def test_calendar_never_open_raises_instead_of_looping() -> None:
    t = local(SHANGHAI, 2026, 3, 13, 10)
    cal = make({"mon-sun": "closed"})
    with pytest.raises(ValueError, match="no open hours"):
        cal.add(t, MINUTE)
    with pytest.raises(ValueError, match="no open hours"):
        cal.next_open(t)
    assert not cal.is_open(t)
    assert cal.between(t, t + timedelta(days=30)) == timedelta(0)
    # An extra workday of a week with no hours at all has no hours either.
    only = make({"sat": "closed"}, extra_workdays=["2026-03-14"])
    with pytest.raises(ValueError, match="no open hours"):
        only.add(t, MINUTE)


def test_long_durations_and_holidays_years_ahead() -> None:
    cal = make(OFFICE, holidays="CN")
    start = local(SHANGHAI, 2026, 3, 13, 10)
    began = time.perf_counter()
    far = cal.add(start, timedelta(days=400))  # 400 days of 9-hour days: about 4 years
    assert time.perf_counter() - began < 1.0
    assert cal.between(start, far) == timedelta(days=400)
    assert far.year == 2030
    # Holidays of years never asked for before are loaded on demand.
    assert not cal.is_open(local(SHANGHAI, 2029, 10, 1, 10))
    assert cal.is_open(local(SHANGHAI, 2029, 10, 9, 10))


def test_calendars_of_an_example_pack() -> None:
    result = load_pack_path(EXAMPLES / "manufacturing")
    assert result.pack is not None
    cals = calendars_of(result.pack)
    assert set(cals) == {
        "production", "utilities", "office", "warehouse",
        "shift_a", "shift_b", "shift_c", "store_early", "store_late",
    }  # fmt: skip
    assert cals["shift_c"].is_open(local(SHANGHAI, 2026, 3, 4, 2))  # the night shift
    assert cals["office"].timezone.key == "Asia/Shanghai"
    assert cals["office"].is_open(local(SHANGHAI, 2026, 2, 14, 10))  # a make-up Saturday
    assert not cals["warehouse"].is_open(local(SHANGHAI, 2026, 12, 30, 10))  # stock-take
    assert cals["utilities"].is_open(local(SHANGHAI, 2026, 10, 1, 3))
    bp = compile_pack(result.pack, 1)
    assert calendars_of(bp) is calendars_of(bp)  # built once per pack version
