"""Injected time: the runtime never reads the wall clock itself, so tests and `simulate`
run on a controlled clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Gives the current instant, timezone-aware."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start instant")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("a clock does not go backwards")
        self._now += delta
        return self._now

    def set(self, instant: datetime) -> datetime:
        instant = instant.astimezone(UTC)
        if instant < self._now:
            raise ValueError(f"{instant.isoformat()} is before the clock's {self._now.isoformat()}")
        self._now = instant
        return self._now
