"""SLA clocks: chosen per ticket, counted in business time, paused and resumed with states
and conditions, warned, breached and escalated once each, re-targeted when the priority
changes — and explainable afterwards (every start, pause, resume, target change, warning,
breach and stop is in the clock's history).

A ticket's clocks live in its row (`TicketRow.sla`, JSON) so they commit with the command
that moved them. Their due points are timers (`kind: sla`, key `sla:<metric>`), rescheduled
whenever a clock starts, pauses, resumes or is re-targeted; a timer that fires for a point
the clock has not reached (it was paused meanwhile) does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from engine.blueprint import Blueprint, Condition, TemplateBp
from engine.model import SlaPolicy
from engine.values import parse_duration, percent_value
from runtime.calendars import BusinessCalendar, calendars_of
from runtime.records import TimerRow
from runtime.unit import Activity, Signal, Tracked, Unit

STOP_CATEGORIES = frozenset({"resolved", "closed", "cancelled"})
BREACH_AT = re.compile(r"^breach(?:\s*\+\s*(\S+))?$")
ALWAYS = BusinessCalendar.always()
TOLERANCE = timedelta(seconds=1)  # timers fire on the second; business time is continuous


@dataclass(frozen=True, slots=True)
class Point:
    """A point on a clock where something happens: `offset` of business time after start."""

    name: str  # warning, breach, or `escalation <n>` (1-based)
    offset: timedelta
    level: int | None = None  # index into the policy's escalations
    at: str = ""  # the escalation's `at` text


# -- compiled policies ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    name: str
    model: SlaPolicy
    calendar: BusinessCalendar
    applies: Condition | None
    starts: dict[str, Condition] = field(default_factory=dict)
    stops: dict[str, Condition] = field(default_factory=dict)
    pauses: dict[str, Condition] = field(default_factory=dict)
    # Points already worked out, by (metric, target): they depend on nothing else, and
    # every command that moves a clock asks for them again. Bounded: targets come from the
    # pack, but a stored clock may carry one of an older version.
    _points_memo: dict[tuple[str, timedelta], tuple[Point, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def target(self, metric: str, priority: Any) -> timedelta | None:
        spec = self.model.targets.get(metric)
        if spec is None:
            return None
        if isinstance(spec, str):
            return _duration(spec)
        text = spec.get(str(priority)) if priority is not None else None
        return _duration(text) if text else None

    def points(self, metric: str, target: timedelta) -> list[Point]:
        key = (metric, target)
        found = self._points_memo.get(key)
        if found is None:
            if len(self._points_memo) >= 256:
                self._points_memo.clear()
            found = self._points_memo[key] = tuple(self._points(metric, target))
        return list(found)

    def _points(self, metric: str, target: timedelta) -> list[Point]:
        out = []
        if self.model.warn_at:
            out.append(Point("warning", target * percent_value(self.model.warn_at)))
        out.append(Point("breach", target))
        for i, level in enumerate(self.model.escalations):
            if level.metric is not None and level.metric != metric:
                continue
            out.append(Point(f"escalation {i + 1}", _offset(level.at, target), i, level.at))
        return sorted(out, key=lambda p: (p.offset, p.level is not None))


@lru_cache(maxsize=1024)
def _duration(text: str) -> timedelta:
    """`parse_duration`, remembered: targets are read on every command that moves a clock."""
    return parse_duration(text)


def _offset(at: str, target: timedelta) -> timedelta:
    m = BREACH_AT.match(at.strip())
    if m:
        return target + (parse_duration(m.group(1)) if m.group(1) else timedelta(0))
    return target * percent_value(at)


def policies_of(bp: Blueprint, tpl: TemplateBp) -> list[CompiledPolicy]:
    """The template's policies in the order it lists them, compiled once per blueprint."""
    return bp.memoised(
        ("sla", tpl.name),
        lambda: [_compile(bp, name, tpl) for name in tpl.model.sla if name in bp.model.sla],
    )


def _compile(bp: Blueprint, name: str, tpl: TemplateBp) -> CompiledPolicy:
    policy = bp.model.sla[name]
    fields = tpl.field_names
    cal = calendar_of(bp, policy.calendar)
    metrics = policy.metrics
    return CompiledPolicy(
        name=name,
        model=policy,
        calendar=cal,
        applies=Condition.build(policy.applies_if, fields) if policy.applies_if else None,
        starts={m: Condition.build(c.start, fields) for m, c in metrics.items()},
        stops={m: Condition.build(c.stop, fields) for m, c in metrics.items()},
        pauses={m: Condition.build(c.pause, fields) for m, c in metrics.items() if c.pause},
    )


def calendar_of(bp: Blueprint, name: str | None) -> BusinessCalendar:
    """The policy's calendar (shared with the blueprint's other users), or 24×7."""
    return calendars_of(bp)[name] if name else ALWAYS


# -- clock state (JSON in the row) ------------------------------------------------------------


def _iso(at: datetime) -> str:
    return at.isoformat()


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _secs(delta: timedelta) -> float:
    return delta.total_seconds()


def _new_clock(metric: str, target: timedelta, priority: Any) -> dict[str, Any]:
    return {
        "metric": metric,
        "status": "idle",
        "target": _secs(target),
        "priority": priority,
        "elapsed": 0.0,
        "since": None,
        "due": None,
        "fired": [],
        "breached": False,
        "warned": False,
        "history": [],
    }


def _log(clock: dict[str, Any], now: datetime, what: str, **extra: Any) -> None:
    clock["history"].append({"at": _iso(now), "what": what, **extra})


def elapsed_at(clock: dict[str, Any], cal: BusinessCalendar, now: datetime) -> timedelta:
    """Business time counted on the clock up to `now`."""
    done = timedelta(seconds=clock["elapsed"])
    if clock["status"] == "running" and clock["since"]:
        done += cal.between(_when(clock["since"]), now)
    return done


# -- evaluation after each command -----------------------------------------------------------


def evaluate(unit: Unit, t: Tracked, activity: Activity | None, env: dict[str, Any]) -> None:
    """Bring the ticket's clocks in line with its state after a command."""
    policies = policies_of(t.bp, t.tpl)
    if not policies:
        return
    sla = t.row.sla
    if not sla:
        chosen = next((p for p in policies if p.applies is None or p.applies.holds(env)), None)
        if chosen is None:
            return
        t.row.sla = sla = {"policy": chosen.name, "clocks": {}}
        unit.event(t, "sla.policy", "system", {"policy": chosen.name})
    policy = next((p for p in policies if p.name == sla["policy"]), None)
    if policy is None:
        return
    for metric in policy.model.targets:
        _step(unit, t, policy, metric, activity or Activity(), env)


def _step(
    unit: Unit, t: Tracked, policy: CompiledPolicy, metric: str, act: Activity, env: dict[str, Any]
) -> None:
    assert t.row.sla is not None  # set by `evaluate` before any step
    clocks = t.row.sla["clocks"]
    priority = t.row.fields.get(policy.model.priority_field)
    target = policy.target(metric, priority)
    clock = clocks.get(metric)
    if clock is None:
        if target is None:
            return
        clock = clocks[metric] = _new_clock(metric, target, priority)
    elif target is not None and _secs(target) != clock["target"]:
        _retarget(unit, t, policy, clock, target, priority)
    want = _wanted(t, policy, metric, clock, act, env)
    if want != clock["status"]:
        _move(unit, t, policy, clock, want)


def _wanted(
    t: Tracked,
    policy: CompiledPolicy,
    metric: str,
    clock: dict[str, Any],
    act: Activity,
    env: dict[str, Any],
) -> str:
    """The status the clock should have now: idle, running, paused or stopped."""
    status = clock["status"]
    state = t.tpl.workflow.states[t.row.state]
    if state.sla == "stop":
        return "stopped" if status != "idle" else "idle"
    active = _active(t, policy, metric, status, act, env)
    if not active:
        return "stopped" if status in ("running", "paused") else status
    if state.sla == "pause" or t.row.state in policy.model.pause_in:
        return "paused"
    pause = policy.pauses.get(metric)
    if pause is not None and pause.holds(env):
        return "paused"
    return "running"


def _active(
    t: Tracked,
    policy: CompiledPolicy,
    metric: str,
    status: str,
    act: Activity,
    env: dict[str, Any],
) -> bool:
    if metric == "first_response":
        # Counts from creation to the first public answer or move by a staff person.
        return status in ("idle", "running", "paused") and not act.staff_response
    if metric == "next_response":
        if act.staff_response:
            return False
        return act.requester_comment or status in ("running", "paused")
    if metric == "resolution":
        state = t.tpl.workflow.states[t.row.state]
        done = state.final or state.category in STOP_CATEGORIES
        return not done
    if metric in policy.starts:
        if policy.stops[metric].holds(env):
            return False
        return status in ("running", "paused") or policy.starts[metric].holds(env)
    return False


def _move(unit: Unit, t: Tracked, policy: CompiledPolicy, clock: dict[str, Any], want: str) -> None:
    now = unit.now
    was = clock["status"]
    cal = policy.calendar
    if was == "running":
        clock["elapsed"] = _secs(elapsed_at(clock, cal, now))
    clock["status"] = want
    clock["since"] = _iso(now) if want == "running" else None
    what = {
        ("idle", "running"): "started",
        ("idle", "paused"): "started paused",
        ("stopped", "running"): "restarted",
        ("paused", "running"): "resumed",
        ("running", "paused"): "paused",
    }.get((was, want), "stopped" if want == "stopped" else want)
    if want == "stopped":
        what = "breached and stopped" if clock["breached"] else "met"
    _log(clock, now, what, elapsed=round(clock["elapsed"]))
    kind = "stopped" if want == "stopped" else what.split()[0]
    data = {"metric": clock["metric"]}
    if want == "stopped":
        data["result"] = "breached" if clock["breached"] else "met"
    unit.event(t, f"sla.{kind}", "system", data)
    if want == "stopped" and clock["metric"] == "next_response":
        # Each answer ends one cycle; the requester's next message starts a fresh one.
        clock.update(elapsed=0.0, fired=[], breached=False, warned=False)
    _schedule(unit, t, policy, clock)


def _retarget(
    unit: Unit,
    t: Tracked,
    policy: CompiledPolicy,
    clock: dict[str, Any],
    target: timedelta,
    priority: Any,
) -> None:
    before = clock["target"]
    clock["target"], clock["priority"] = _secs(target), priority
    _log(clock, unit.now, "retargeted", before=before, after=clock["target"], priority=priority)
    unit.event(t, "sla.retargeted", "system", {"metric": clock["metric"], "priority": priority})
    if clock["status"] == "running":
        _schedule(unit, t, policy, clock)


def _schedule(unit: Unit, t: Tracked, policy: CompiledPolicy, clock: dict[str, Any]) -> None:
    """Replace the clock's timers by one per point still ahead of it (none unless running)."""
    key = f"sla:{clock['metric']}"
    unit.cancel_timers(t.row.id, key)
    clock["due"] = None
    if clock["status"] != "running":
        return
    since = _when(clock["since"])
    done = timedelta(seconds=clock["elapsed"])
    target = timedelta(seconds=clock["target"])
    cal = policy.calendar
    clock["due"] = _iso(cal.add(since, max(target - done, timedelta(0))))
    for point in policy.points(clock["metric"], target):
        if point.name in clock["fired"]:
            continue
        # A point already passed (the target was just shortened) falls due at once.
        due = max(cal.add(since, max(point.offset - done, timedelta(0))), unit.now)
        payload = {"metric": clock["metric"], "point": point.name}
        unit.timers.append(TimerRow(unit.tenant, unit.new_id(), due, "sla", t.row.id, payload, key))


# -- firing -----------------------------------------------------------------------------------


def fire(unit: Unit, t: Tracked, payload: dict[str, Any]) -> None:
    """An SLA timer fell due: fire every point the clock has reached and not yet fired."""
    sla = t.row.sla or {}
    policy = next((p for p in policies_of(t.bp, t.tpl) if p.name == sla.get("policy")), None)
    clock = sla.get("clocks", {}).get(payload.get("metric"))
    if policy is None or clock is None or clock["status"] != "running":
        return
    done = elapsed_at(clock, policy.calendar, unit.now) + TOLERANCE
    target = timedelta(seconds=clock["target"])
    for point in policy.points(clock["metric"], target):
        if point.name not in clock["fired"] and point.offset <= done:
            _reach(unit, t, policy, clock, point)


def _reach(
    unit: Unit, t: Tracked, policy: CompiledPolicy, clock: dict[str, Any], point: Point
) -> None:
    from runtime import rules  # rules import commands; SLA actions run through them

    clock["fired"].append(point.name)
    metric = clock["metric"]
    t.dirty = True
    if point.name == "warning":
        clock["warned"] = True
        _log(clock, unit.now, "warning")
        unit.event(t, "sla.warning", "system", {"metric": metric})
        unit.signal(Signal(t.row.id, "sla.warning", 0, data={"metric": metric}))
        rules.run_actions(unit, t, policy.model.on_warning, f"sla:{policy.name}:warning", 1)
    elif point.level is None:
        clock["breached"] = True
        _log(clock, unit.now, "breached")
        unit.event(t, "sla.breached", "system", {"metric": metric})
        unit.signal(Signal(t.row.id, "sla.breached", 0, data={"metric": metric}))
        rules.run_actions(unit, t, policy.model.on_breach, f"sla:{policy.name}:breach", 1)
    else:
        level = policy.model.escalations[point.level]
        _log(clock, unit.now, "escalated", level=point.level + 1, at=point.at)
        data = {"metric": metric, "level": point.level + 1, "at": point.at}
        unit.event(t, "sla.escalated", "system", data)
        rules.run_actions(unit, t, level.do, f"sla:{policy.name}:{point.at}", 1)


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClockView:
    """One clock as `rt.sla()` shows it."""

    metric: str
    policy: str
    state: str  # running, paused, warning, breached, met, stopped, idle
    target: timedelta
    elapsed: timedelta
    remaining: timedelta
    due: datetime | None
    priority: Any
    history: list[dict[str, Any]]


# The states `ClockView.state` takes, as API filters name them.
DISPLAY_STATES = ("running", "paused", "warning", "breached", "met", "stopped", "idle")


def display_state(clock: dict[str, Any]) -> str:
    status = clock["status"]
    if status == "stopped":
        return "breached" if clock["breached"] else "met"
    if status == "running" and clock["breached"]:
        return "breached"
    if status == "running" and clock["warned"]:
        return "warning"
    return str(status)


def views(t: Tracked, now: datetime) -> Iterator[ClockView]:
    sla = t.row.sla or {}
    policy = next((p for p in policies_of(t.bp, t.tpl) if p.name == sla.get("policy")), None)
    if policy is None:
        return
    for metric, clock in sla.get("clocks", {}).items():
        elapsed = elapsed_at(clock, policy.calendar, now)
        target = timedelta(seconds=clock["target"])
        yield ClockView(
            metric=metric,
            policy=policy.name,
            state=display_state(clock),
            target=target,
            elapsed=elapsed,
            remaining=target - elapsed,
            due=_when(clock["due"]) if clock["due"] else None,
            priority=clock["priority"],
            history=list(clock["history"]),
        )


def env_values(t: Tracked, now: datetime) -> dict[str, Any]:
    """`sla.*` for expressions: the resolution clock, else the first clock (as `views`
    shows them, without building the views of the other clocks)."""
    sla = t.row.sla or {}
    clocks = sla.get("clocks", {})
    if not clocks:
        return {}
    policy = next((p for p in policies_of(t.bp, t.tpl) if p.name == sla.get("policy")), None)
    if policy is None:
        return {}
    clock = clocks["resolution"] if "resolution" in clocks else next(iter(clocks.values()))
    elapsed = elapsed_at(clock, policy.calendar, now)
    target = timedelta(seconds=clock["target"])
    progress = elapsed / target if target else 0.0
    return {
        "sla.remaining": target - elapsed,
        "sla.elapsed": elapsed,
        "sla.progress": round(progress * 100, 1),
        "sla.due": _when(clock["due"]) if clock["due"] else None,
        "sla.state": display_state(clock),
    }
