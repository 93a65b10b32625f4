"""Scalar value types of the definition format: durations, percentages, hours, zones."""

from __future__ import annotations

import re
import zoneinfo
from datetime import time, timedelta
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from dsl.diagnostics import did_you_mean

_DURATION = re.compile(r"^(?:(\d+)w)?\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?$")
_UNITS = ("weeks", "days", "hours", "minutes", "seconds")


def parse_duration(text: str) -> timedelta:
    """`30m`, `4h`, `1d`, `1w`, `1h30m` → timedelta; raises ValueError otherwise."""
    m = _DURATION.match(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise ValueError(text)
    parts = {unit: int(v) for unit, v in zip(_UNITS, m.groups(), strict=True) if v}
    return timedelta(**parts)


def _check_duration(value: str) -> str:
    try:
        delta = parse_duration(value)
    except ValueError:
        raise PydanticCustomError(
            "invalid-duration",
            "invalid duration '{value}': write a number and a unit, e.g. 30m, 4h, 2d, 1w, 1h30m",
            {"value": value},
        ) from None
    if delta <= timedelta(0):
        raise PydanticCustomError(
            "invalid-duration", "duration '{value}' must be longer than zero", {"value": value}
        )
    return value


def _check_percent(value: str) -> str:
    m = re.fullmatch(r"(\d{1,3}(?:\.\d+)?)%", value.strip())
    if m is None or not 0 < float(m.group(1)) <= 100:
        raise PydanticCustomError(
            "invalid-percent",
            "invalid percentage '{value}': write a number between 0 and 100 followed by %, "
            "e.g. 80%",
            {"value": value},
        )
    return value


def percent_value(text: str) -> float:
    """`80%` → 0.8."""
    return float(text.strip().rstrip("%")) / 100


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_timezone(value: str) -> str:
    if value not in _zones():
        hint = did_you_mean(value, _zones()) or "use an IANA name such as Asia/Shanghai or UTC"
        raise PydanticCustomError(
            "unknown-timezone", "unknown time zone '{value}'", {"value": value, "hint": hint}
        )
    return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError(
            "invalid-regex",
            "invalid regular expression '{value}': {reason} at position {pos}",
            {"value": value, "reason": exc.msg, "pos": exc.pos if exc.pos is not None else 0},
        ) from None
    return value


_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_days(spec: str) -> list[int]:
    """`mon-fri` → [0, 1, 2, 3, 4] (Monday is 0); `sat,sun` and wrapping `fri-mon` too.
    Raises ValueError for anything else."""
    days: list[int] = []
    for part in spec.lower().replace(" ", "").split(","):
        first, sep, last = part.partition("-")
        if first not in DAYS or (sep and last not in DAYS):
            raise ValueError(f"'{spec}' is not a day or day range")
        i = DAYS.index(first)
        j = DAYS.index(last) if sep else i
        days.extend((i + n) % 7 for n in range((j - i) % 7 + 1))
    return days


def parse_clock(text: str) -> time | None:
    """`09:30` → time; `24:00` → None meaning end of day; raises ValueError otherwise."""
    m = _CLOCK.match(text.strip())
    if m is None:
        raise ValueError(text)
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour == 24:
        if minute:
            raise ValueError(text)
        return None
    return time(hour, minute)


def parse_hours(text: str) -> list[tuple[str, str]]:
    """`09:00-12:00, 13:00-18:00` → [(start, end), ...]; `closed` → []; `24h` → whole day."""
    value = text.strip().lower()
    if value == "closed":
        return []
    if value in ("24h", "00:00-24:00"):
        return [("00:00", "24:00")]
    spans: list[tuple[str, str]] = []
    for part in value.split(","):
        start, sep, end = part.strip().partition("-")
        if not sep:
            raise ValueError(text)
        parse_clock(start)
        parse_clock(end)
        if start.strip() == end.strip():
            raise ValueError(text)
        spans.append((start.strip(), end.strip()))
    return spans


def _check_hours(value: str) -> str:
    try:
        parse_hours(value)
    except ValueError:
        raise PydanticCustomError(
            "invalid-hours",
            "invalid opening hours '{value}': write HH:MM-HH:MM (several separated by commas, "
            "overnight like 22:00-06:00), 'closed' or '24h'",
            {"value": value},
        ) from None
    return value


_LOCALE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")


def _check_locale(value: str) -> str:
    if not _LOCALE.match(value):
        raise PydanticCustomError(
            "invalid-locale",
            "invalid locale '{value}': use a language code such as en, zh or zh-Hant",
            {"value": value},
        )
    return value


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        suggestion = re.sub(r"\W+", "_", value).strip("_") or "name"
        if suggestion[0].isdigit():
            suggestion = "_" + suggestion
        raise PydanticCustomError(
            "invalid-name",
            "invalid name '{value}': names use letters, digits and underscores and do not "
            "start with a digit (e.g. '{suggestion}')",
            {"value": value, "suggestion": suggestion},
        )
    return value


def _check_expression(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError(
            "empty-expression",
            "expression is empty",
            {"hint": 'write a condition such as priority == "P1", or remove the key'},
        )
    return value


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    Field(json_schema_extra={"pattern": r"^\s*(\d+w)?\s*(\d+d)?\s*(\d+h)?\s*(\d+m)?\s*(\d+s)?$"}),
]
Percent = Annotated[
    str, AfterValidator(_check_percent), Field(json_schema_extra={"pattern": r"^\d{1,3}(\.\d+)?%$"})
]
TimeZone = Annotated[str, AfterValidator(_check_timezone)]
Regex = Annotated[str, AfterValidator(_check_regex)]
Hours = Annotated[str, AfterValidator(_check_hours)]
Locale = Annotated[
    str, AfterValidator(_check_locale), Field(json_schema_extra={"pattern": _LOCALE.pattern})
]
Name = Annotated[
    str, AfterValidator(_check_name), Field(json_schema_extra={"pattern": _NAME.pattern})
]
# Until the expression language lands, an expression is kept as its source text.
Expression = Annotated[str, AfterValidator(_check_expression)]
