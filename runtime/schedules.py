"""Scheduled rules (`on: {schedule: "0 7 * * MON"}`): preventive maintenance plans and
other recurring work. Each scheduled rule of the newest version of a pack has one waiting
timer (kind `schedule`) for its next run; firing it runs the rule's actions and sets the
timer for the run after.

Runs are computed in the pack's time zone (croniter handles the DST gap and overlap: a
02:30 run on a spring-forward night happens at 03:00). With `calendar:`, a run that falls
outside the calendar's open hours (a holiday, a closed day) is skipped, not deferred. A
worker that was down fires a missed run once, late, and then continues from the present:
missed runs are not replayed one by one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter  # type: ignore[import-untyped]

from engine.blueprint import Blueprint, RuleBp
from runtime.calendars import calendars_of
from runtime.records import TimerRow

MAX_SKIPPED = 1000  # runs skipped in a row by a calendar before giving up (e.g. all closed)


def timer_key(pack: str, rule: str) -> str:
    return f"schedule:{pack}:{rule}"


def next_run(bp: Blueprint, rule: RuleBp, after: datetime) -> datetime | None:
    """The first run of `rule` strictly after `after` (UTC), or None if its calendar never
    opens at a run time."""
    assert rule.cron is not None
    tz = ZoneInfo(bp.model.timezone)
    runs = croniter(rule.cron, after.astimezone(tz))
    calendar = calendars_of(bp)[rule.calendar] if rule.calendar else None
    for _ in range(MAX_SKIPPED):
        run: datetime = runs.get_next(datetime).astimezone(UTC)
        if calendar is None or calendar.is_open(run):
            return run
    return None


def timers_for(
    bp: Blueprint, tenant: str, now: datetime, new_id: Any, rules: tuple[RuleBp, ...] | None = None
) -> list[TimerRow]:
    """The next-run timers of the pack's scheduled rules."""
    out = []
    for rule in bp.scheduled if rules is None else rules:
        due = next_run(bp, rule, now)
        if due is None:
            continue
        payload = {"pack": bp.pack, "version": bp.version, "rule": rule.name}
        key = timer_key(bp.pack, rule.name)
        out.append(TimerRow(tenant, new_id(), due, "schedule", None, payload, key))
    return out
