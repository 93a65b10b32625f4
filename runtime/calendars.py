"""Business calendars: which real instants count as business time, and arithmetic on them.

A `BusinessCalendar` is built once per calendar of a pack version and answers four questions
on timezone-aware datetimes (any zone in, UTC out): `add`, `between`, `next_open`, `is_open`.
The semantics, for admins and developers, are in docs/calendars.md; in short:

- An instant is open when the wall clock in the calendar's zone shows a time inside a span of
  an open day. A span belongs to the day it starts on; an overnight span (`22:00-06:00`) runs
  into the next morning, whatever that morning is (a holiday does not cut it).
- A holiday (public or `extra_holidays`) removes every span that starts on it. An
  `extra_workdays` date is open with its weekday's hours, or, when its weekday has none, with
  the hours of the first day of the week (Monday first) that has hours. `extra_holidays` wins
  over `extra_workdays` (validation refuses a date in both).
- Business time is real elapsed time (UTC) inside open instants: a wall-clock span that a
  daylight-saving jump shortens or repeats counts what really elapses.
- `add(s, d)` is the earliest instant x >= s with `between(s, x) == d`; so `add(s, 0) == s`
  and a target used up exactly at closing time falls due at closing time.
- `between(a, b)` is the business time in [a, b), and `-between(b, a)` when b < a.

How: real time is cut into UTC days. For each UTC day the open intervals (in microseconds
since the epoch) are computed once, from the wall-clock spans of the local days that reach
into it and the zone's UTC offsets during it, then cached. `add` and `between` walk UTC days,
skipping whole days by their cached total, so their cost grows with days, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Final, cast
from zoneinfo import ZoneInfo

from engine.model import Calendar, HolidaySource, Pack
from engine.values import DAYS, parse_clock, parse_days, parse_hours

if TYPE_CHECKING:
    from engine.blueprint import Blueprint

# Day names in weekday order (Monday = 0), as the pack format writes them (engine/checks.py).

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_ONE_US: Final = timedelta(microseconds=1)
_US: Final = 1_000_000
_DAY_S: Final = 86_400
_DAY_US: Final = _DAY_S * _US
# Offsets are sampled every 3 hours of a UTC day to find daylight-saving transitions; no
# zone has had two transitions within 3 hours of each other.
_SAMPLE_S: Final = 3 * 3600
# A walk that meets this many UTC days in a row with no open time gives up: no real
# calendar is closed for ten years, so the calendar is taken to be never open again.
_MAX_CLOSED_DAYS: Final = 3660
# UTC days kept per calendar (about 110 years); past that the cache starts over.
_MAX_CACHED_DAYS: Final = 40_000

Span = tuple[int, int]  # start, end in seconds from the local midnight of the owning day
Interval = tuple[int, int]  # start, end in microseconds since the epoch, UTC
_DayRecord = tuple[int, tuple[Interval, ...]]  # total open microseconds, intervals


class BusinessCalendar:
    """Business hours in one time zone, with holidays. Immutable; safe to share between
    threads (the caches only ever gain entries equal to what any thread would compute)."""

    __slots__ = (
        "_always",
        "_days",
        "_extra_holidays",
        "_extra_workdays",
        "_hours",
        "_last_open_day",
        "_name",
        "_sources",
        "_tz",
        "_week",
        "_workday_fallback",
        "_year_holidays",
    )

    def __init__(
        self,
        week: Sequence[Sequence[Span]],
        tz: ZoneInfo,
        sources: Sequence[tuple[str, str | None]] = (),
        extra_holidays: Iterable[date] = (),
        extra_workdays: Iterable[date] = (),
        name: str = "",
    ) -> None:
        """`week`: seven lists of spans (Monday first) in seconds from local midnight, an
        end past 86,400 running into the next day. Prefer `from_model` and `always`."""
        if len(week) != 7:
            raise ValueError("a week has seven days")
        self._week: tuple[tuple[Span, ...], ...] = tuple(_merge(list(d)) for d in week)
        self._tz = tz
        self._sources = tuple(sources)
        self._extra_holidays = frozenset(extra_holidays)
        self._extra_workdays = frozenset(extra_workdays) - self._extra_holidays
        self._name = name
        self._workday_fallback = next((d for d in self._week if d), ())
        self._always = (
            all(d == ((0, _DAY_S),) for d in self._week)
            and not self._sources
            and not self._extra_holidays
        )
        self._last_open_day = self._find_last_open_day()
        self._days: dict[int, _DayRecord] = {}
        self._hours: dict[int, tuple[Span, ...]] = {}
        self._year_holidays: dict[int, frozenset[date]] = {}

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_model(cls, cal: Calendar, default_tz: str, name: str = "") -> BusinessCalendar:
        """The calendar a validated pack defines; `default_tz` is the pack's time zone."""
        return cls(
            week=week_spans(cal.week),
            tz=ZoneInfo(cal.timezone or default_tz),
            sources=holiday_sources(cal.holidays),
            extra_holidays=cal.extra_holidays,
            extra_workdays=cal.extra_workdays,
            name=name,
        )

    @classmethod
    def always(cls) -> BusinessCalendar:
        """Open 24 hours a day, 7 days a week, no holidays: business time is real time."""
        return cls(week=[[(0, _DAY_S)]] * 7, tz=ZoneInfo("UTC"), name="24x7")

    @property
    def timezone(self) -> ZoneInfo:
        return self._tz

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"BusinessCalendar({self._name or 'unnamed'!r}, {self._tz.key})"

    # -- public arithmetic -----------------------------------------------------------------
    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant at which `duration` of business time has elapsed since
        `start` (UTC). Counting begins at the next open instant; `add(t, 0)` is `t`."""
        t = _to_us(start)
        remaining = duration // _ONE_US
        if remaining < 0:
            raise ValueError(f"cannot add a negative business duration ({duration})")
        if remaining == 0 or self._always:
            return _from_us(t + remaining)
        return _from_us(self._add_us(t, remaining))

    def between(self, a: datetime, b: datetime) -> timedelta:
        """Business time in [a, b); negative (minus the time in [b, a)) when b is before a."""
        ua, ub = _to_us(a), _to_us(b)
        if self._always:
            return timedelta(microseconds=ub - ua)
        if ub < ua:
            return -timedelta(microseconds=self._between_us(ub, ua))
        return timedelta(microseconds=self._between_us(ua, ub))

    def next_open(self, t: datetime) -> datetime:
        """`t` (in UTC) if the calendar is open at `t`, else the start of the next open span."""
        u = _to_us(t)
        if self._always:
            return _from_us(u)
        for k in self._day_indexes(u // _DAY_US):
            for s, e in self._day(k)[1]:
                if e > u:
                    return _from_us(max(s, u))
        raise AssertionError("unreachable: _day_indexes raises when nothing opens")

    def is_open(self, t: datetime) -> bool:
        """Whether `t` is business time (spans are half-open: open at start, closed at end)."""
        u = _to_us(t)
        if self._always:
            return True
        return any(s <= u < e for s, e in self._day(u // _DAY_US)[1])

    # -- walking UTC days ------------------------------------------------------------------
    def _add_us(self, t: int, remaining: int) -> int:
        # `_day_indexes` inlined: this walk runs several times per SLA clock moved, and a
        # generator step costs more than the cached day it fetches.
        days, day = self._days, self._day
        last = self._last_open_day
        first = k = t // _DAY_US
        closed_run = 0
        while last is None or k <= last:
            total, intervals = days.get(k) or day(k)
            if remaining > total and t <= k * _DAY_US:
                remaining -= total  # the whole day is used up: skip it without looking
            else:
                for s, e in intervals:
                    if e <= t:
                        continue
                    s = max(s, t)
                    if remaining <= e - s:
                        return s + remaining
                    remaining -= e - s
            closed_run = 0 if total else closed_run + 1
            if closed_run > _MAX_CLOSED_DAYS:
                break
            k += 1
        raise self._never_open(first)

    def _between_us(self, a: int, b: int) -> int:
        total = 0
        for k in range(a // _DAY_US, (b - 1) // _DAY_US + 1):
            day_total, intervals = self._day(k)
            if a <= k * _DAY_US and (k + 1) * _DAY_US <= b:
                total += day_total
                continue
            for s, e in intervals:
                total += max(0, min(e, b) - max(s, a))
        return total

    def _day_indexes(self, first: int) -> Iterable[int]:
        """UTC day indexes from `first` on, for walks that stop at an open instant; raises
        ValueError instead of walking forever when the calendar never opens again."""
        k, closed_run = first, 0
        while True:
            if self._last_open_day is not None and k > self._last_open_day:
                break
            yield k
            closed_run = 0 if self._day(k)[0] else closed_run + 1
            if closed_run > _MAX_CLOSED_DAYS:
                break
            k += 1
        raise self._never_open(first)

    def _never_open(self, first: int) -> ValueError:
        when = _from_us(first * _DAY_US).date()
        return ValueError(
            f"calendar {self._name or '(unnamed)'} has no open hours after {when}: "
            "give it opening hours"
        )

    def _find_last_open_day(self) -> int | None:
        """With no weekly hours only extra workdays open; past the last of them (as a UTC day
        index, with room for overnight spans and any offset) nothing ever opens again."""
        if any(self._week):
            return None
        if not self._extra_workdays:
            return -(10**9)
        return max(self._extra_workdays).toordinal() - _EPOCH_ORDINAL + 3

    # -- one UTC day -----------------------------------------------------------------------
    def _day(self, k: int) -> _DayRecord:
        record = self._days.get(k)
        if record is None:
            if len(self._days) >= _MAX_CACHED_DAYS:
                self._days.clear()
                self._hours.clear()
            record = self._days[k] = self._compute_day(k)
        return record

    def _compute_day(self, k: int) -> _DayRecord:
        """Open intervals of the UTC day [k, k+1) days: for each stretch of the day with one
        UTC offset, the local wall-clock spans shifted by that offset and cut to the stretch.
        A repeated wall-clock hour thus counts twice and a skipped one not at all."""
        found: list[Interval] = []
        for lo, hi, offset in self._offset_stretches(k * _DAY_S):
            first = (lo + offset) // _DAY_S - 1  # an overnight span reaches into the next day
            last = (hi - 1 + offset) // _DAY_S
            for local_day in range(first, last + 1):
                midnight = local_day * _DAY_S - offset
                for a, b in self._hours_of(local_day):
                    s, e = max(midnight + a, lo), min(midnight + b, hi)
                    if s < e:
                        found.append((s * _US, e * _US))
        intervals = _merge(found)
        return sum(e - s for s, e in intervals), tuple(intervals)

    def _offset_stretches(self, day_start: int) -> list[tuple[int, int, int]]:
        """(start, end, UTC offset) in seconds for the stretches of one UTC day."""
        stretches: list[tuple[int, int, int]] = []
        lo, offset = day_start, self._offset(day_start)
        for i in range(1, _DAY_S // _SAMPLE_S + 1):
            sample = day_start + i * _SAMPLE_S
            if self._offset(sample) == offset:
                continue
            change = self._transition(sample - _SAMPLE_S, sample, offset)
            if change < day_start + _DAY_S:
                stretches.append((lo, change, offset))
                lo, offset = change, self._offset(change)
        stretches.append((lo, day_start + _DAY_S, offset))
        return stretches

    def _offset(self, s: int) -> int:
        delta = datetime.fromtimestamp(s, self._tz).utcoffset()
        return 0 if delta is None else int(delta.total_seconds())

    def _transition(self, lo: int, hi: int, before: int) -> int:
        """The first second in (lo, hi] whose offset differs from `before` (at lo)."""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._offset(mid) == before:
                lo = mid
            else:
                hi = mid
        return hi

    # -- one local day ---------------------------------------------------------------------
    def _hours_of(self, local_day: int) -> tuple[Span, ...]:
        """Spans (seconds from local midnight) of a local date, given as days since
        1970-01-01; after holidays and extra workdays."""
        hours = self._hours.get(local_day)
        if hours is None:
            hours = self._hours[local_day] = self._resolve_hours(
                date.fromordinal(local_day + _EPOCH_ORDINAL)
            )
        return hours

    def _resolve_hours(self, day: date) -> tuple[Span, ...]:
        if day in self._extra_holidays:
            return ()
        own = self._week[day.weekday()]
        if day in self._extra_workdays:
            return own or self._workday_fallback
        if day in self._holidays_of(day.year):
            return ()
        return own

    def _holidays_of(self, year: int) -> frozenset[date]:
        found = self._year_holidays.get(year)
        if found is None:
            found = frozenset().union(*(public_holidays(c, s, year) for c, s in self._sources))
            self._year_holidays[year] = found
        return found


# -- parsing the pack format ---------------------------------------------------------------


def week_spans(week: Mapping[str, str | list[str]] | str) -> list[list[Span]]:
    """The `week` of a calendar as seven lists of spans (Monday first), in seconds from
    local midnight; an overnight span ends past 86,400."""
    if isinstance(week, str):
        if week != "24x7":
            raise ValueError(f"unknown week '{week}': use opening hours by day, or 24x7")
        return [[(0, _DAY_S)] for _ in DAYS]
    spans: list[list[Span]] = [[] for _ in DAYS]
    for spec, hours in week.items():
        values = hours if isinstance(hours, list) else [hours]
        day_spans = [_span(a, b) for value in values for a, b in parse_hours(value)]
        for day in parse_days(spec):
            spans[day].extend(day_spans)
    return spans


def _span(start: str, end: str) -> Span:
    a, b = _seconds(start), _seconds(end)
    if b <= a:
        b += _DAY_S  # overnight: ends the next day (as engine/checks.py reads it)
    return a, b


def _seconds(clock: str) -> int:
    parsed = parse_clock(clock)
    return _DAY_S if parsed is None else parsed.hour * 3600 + parsed.minute * 60


def holiday_sources(
    holidays: str | HolidaySource | list[str | HolidaySource] | None,
) -> list[tuple[str, str | None]]:
    """(country, subdivision) pairs of a calendar's `holidays`."""
    if holidays is None:
        return []
    entries = holidays if isinstance(holidays, list) else [holidays]
    return [(e, None) if isinstance(e, str) else (e.country, e.subdivision) for e in entries]


@lru_cache(maxsize=1024)
def public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """Public holidays of one year, from the `holidays` data; loaded on first use, shared by
    every calendar of the process."""
    import holidays  # imported late: loading its country tables is not free

    table = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return frozenset(d for d in table if d.year == year)


# -- helpers -------------------------------------------------------------------------------


def _merge(intervals: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted union of half-open intervals; touching ones are joined."""
    merged: list[tuple[int, int]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return tuple(merged)


def _to_us(t: datetime) -> int:
    if t.tzinfo is None:
        raise ValueError(f"business calendars need timezone-aware datetimes, got {t}")
    return (t - _EPOCH) // _ONE_US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def calendars_of(pack: Pack | Blueprint) -> dict[str, BusinessCalendar]:
    """Every calendar of a pack, by name. Given a blueprint, built once per pack version
    (kept in its memo), so SLA clocks share the calendars' caches."""
    if isinstance(pack, Pack):
        return _build(pack)
    key = ("runtime.calendars", "calendars_of")
    if key not in pack.memo:
        pack.memo[key] = _build(pack.model)
    return cast(dict[str, BusinessCalendar], pack.memo[key])


def _build(pack: Pack) -> dict[str, BusinessCalendar]:
    return {
        name: BusinessCalendar.from_model(cal, pack.timezone, name)
        for name, cal in pack.calendars.items()
    }


__all__ = [
    "DAYS",
    "BusinessCalendar",
    "calendars_of",
    "holiday_sources",
    "parse_days",
    "public_holidays",
    "week_spans",
]
