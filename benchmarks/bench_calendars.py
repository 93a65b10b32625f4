"""Business-calendar arithmetic: `add` and `between` calls per second on three calendars.

Run: .venv/bin/python benchmarks/bench_calendars.py [--calls N]

Durations are drawn from 30 minutes to 3 days, starts from a year of minutes (so the UTC-day
cache fills as a long-running worker's would); each calendar is warmed once over the same
inputs, then timed. Goal: at least 50,000 `add` calls/s on a calendar with holidays.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.model import Calendar
from runtime.calendars import BusinessCalendar

CALENDARS: dict[str, dict[str, Any]] = {
    "24x7": {"week": "24x7"},
    "Mon-Fri 09-18 + CN holidays": {
        "week": {"mon-fri": "09:00-18:00"},
        "holidays": "CN",
        "extra_workdays": ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09"],
        "timezone": "Asia/Shanghai",
    },
    "split + overnight + US holidays, New York": {
        "week": {
            "mon-fri": "08:00-12:00, 13:00-17:00, 22:00-06:00",
            "sat": "10:00-14:00",
            "sun": "closed",
        },
        "holidays": {"country": "US", "subdivision": "NY"},
        "extra_holidays": ["2026-12-24"],
        "timezone": "America/New_York",
    },
}


def inputs(n: int, seed: int = 7) -> tuple[list[datetime], list[timedelta], list[datetime]]:
    rng = random.Random(seed)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    starts = [base + timedelta(minutes=rng.randrange(365 * 1440)) for _ in range(n)]
    durations = [timedelta(minutes=rng.randint(30, 3 * 1440)) for _ in range(n)]
    ends = [s + timedelta(minutes=rng.randint(0, 7 * 1440)) for s in starts]
    return starts, durations, ends


def rate(call: Callable[[], object], n: int, repeat: int = 3) -> float:
    """Best of `repeat` runs of `call` (which makes n calls), in calls per second."""
    best = min(_timed(call) for _ in range(repeat))
    return n / best


def _timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def _adds(cal: BusinessCalendar, starts: list[datetime], durations: list[timedelta]) -> None:
    for s, d in zip(starts, durations, strict=True):
        cal.add(s, d)


def _betweens(cal: BusinessCalendar, starts: list[datetime], ends: list[datetime]) -> None:
    for a, b in zip(starts, ends, strict=True):
        cal.between(a, b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000, help="calls per timed run")
    n = parser.parse_args().calls
    starts, durations, ends = inputs(n)
    began = time.perf_counter()
    import holidays  # noqa: F401  (once per process; timed apart from the calendars)

    import_ms = (time.perf_counter() - began) * 1000
    rows: list[tuple[str, float, float, float]] = []
    for name, spec in CALENDARS.items():
        cal = BusinessCalendar.from_model(Calendar.model_validate(spec), "UTC")
        began = time.perf_counter()
        # Cold: a fresh calendar builds each UTC day it meets and each holiday year.
        cal.add(starts[0], timedelta(days=400))
        cold_ms = (time.perf_counter() - began) * 1000
        adds = rate(partial(_adds, cal, starts, durations), n)
        betweens = rate(partial(_betweens, cal, starts, ends), n)
        rows.append((name, adds, betweens, cold_ms))
    print(f"{n:,} calls per run, best of 3; durations 30m..3d, between() spans 0..7 days;")
    print("cold 400d: the first add(400 days) on a fresh calendar (builds its day cache and")
    print(f"loads its holiday years; `import holidays` took {import_ms:.0f}ms before)\n")
    print(f"| {'calendar':<42} | {'add() calls/s':>13} | {'between() calls/s':>17} | cold 400d |")
    print(f"| {'-' * 42} | {'-' * 13}:| {'-' * 17}:| {'-' * 8}:|")
    for name, adds, betweens, cold in rows:
        print(f"| {name:<42} | {adds:>13,.0f} | {betweens:>17,.0f} | {cold:>6.1f}ms |")


if __name__ == "__main__":
    main()
