"""`ticketflow simulate`: run a scenario (timed commands by named actors) against a pack
on an in-memory store and a manual clock, and report what happened.

A scenario is a YAML file; it is parsed with the pack loader's safe YAML loader, checked
with a pydantic model (errors become located diagnostics, as for packs), then checked
against the pack (actors' roles, templates, transitions, ticket names, times). Running it
uses only the runtime's commands and reads; what rules did comes from the tickets'
timelines. Ids and the clock are controlled, so the same scenario always prints the same.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationError

from dsl.diagnostics import Diagnostic, Span, did_you_mean, known_list, sort_diagnostics
from dsl.source_map import JsonPath, SourceMap, json_pointer
from dsl.yaml_loader import LoadLimits, load_yaml_file
from engine.blueprint import Blueprint, compile_pack
from engine.errors import translate
from engine.fields import Strict
from engine.load import PackResult, load_pack_path
from engine.people import DirectoryError, PeopleFile
from engine.values import Duration, Name, parse_duration
from runtime.actors import Actor
from runtime.api import Runtime
from runtime.clock import ManualClock
from runtime.commands import localized
from runtime.notify import option_labels
from runtime.records import InvalidFields, TicketflowError, TimerRow
from runtime.render import RenderError, render
from runtime.store import MemoryStore
from runtime.tickets import Ticket, TimelineEntry

# -- the scenario format --------------------------------------------------------------------

Expectation = Literal["ok", "denied", "invalid", "unavailable", "conflict", "not-found"]
COMMANDS = (
    "create", "transition", "update", "comment", "assign", "claim", "transfer", "delegate",
    "wait",
)  # fmt: skip
ON_TICKET = ("transition", "update", "comment", "assign", "claim", "transfer", "delegate")

# Runtime error codes as the outcome words a scenario expects.
OUTCOMES: Mapping[str, str] = {
    "permission-denied": "denied",
    "invalid-fields": "invalid",
    "invalid-command": "invalid",
    "transition-unavailable": "unavailable",
    "conflict": "conflict",
    "not-found": "not-found",
}


class ActorSpec(Strict):
    """A person of the scenario, as the directory would describe them."""

    roles: list[Name] = Field(min_length=1, description="Roles of the pack the person acts in.")
    teams: list[Name] = Field(default_factory=list, description="Teams the person belongs to.")
    skills: list[Name] = Field(default_factory=list, description="Skills, for routing.")
    attributes: dict[Name, Any] = Field(
        default_factory=dict,
        description="Directory attributes the pack declares (actor_attributes), "
        "e.g. `stores: [S0001]`.",
    )
    name: str | None = Field(None, description="Display name.")
    locale: str | None = Field(None, description="Language of messages shown to the person.")


class Step(Strict):
    """One command by one actor (or a `wait`), possibly after some time has passed."""

    after: Duration | None = Field(None, description="Move the clock on first, e.g. `10m`.")
    at: datetime | None = Field(None, description="Move the clock to this instant first.")
    actor: str | None = Field(None, description="Who acts: a name under `actors:`.")
    create: str | None = Field(None, description="Open a ticket of this template.")
    transition: str | None = Field(None, description="Take this transition on `ticket`.")
    update: dict[str, Any] | None = Field(None, description="Change these field values.")
    comment: str | None = Field(
        None, description="Comment on `ticket`; with `transition`, the transition's comment."
    )
    assign: str | None = Field(None, description="Assign `ticket`: a user, role:x or team:x.")
    claim: Literal[True] | None = Field(
        None, description="`claim: true`: take `ticket` from its pool."
    )
    transfer: Name | None = Field(
        None, description="Hand `ticket` to this team (routing picks someone there)."
    )
    delegate: str | None = Field(None, description="The assignee hands `ticket` to this person.")
    wait: Duration | None = Field(None, description="Let time pass, firing due timers.")
    ticket: str | None = Field(None, description="The ticket acted on, by its `as:` name.")
    fields: dict[str, Any] | None = Field(
        None, description="Field values of `create`, or of the transition's form."
    )
    internal: bool | None = Field(None, description="With `comment`: a staff-only note.")
    as_: Name | None = Field(None, alias="as", description="Name the created ticket.")
    links: dict[Name, Name] | None = Field(
        None,
        description="Name tickets that rules open during this step: {name: template}.",
    )
    channel: str | None = Field(None, description="With `create`: the intake channel.")
    title: str | None = Field(None, description="With `create`: the ticket's title.")
    requester: str | None = Field(None, description="With `create`: open it for this person.")
    version: int | None = Field(None, description="Expected ticket version (else: conflict).")
    expect: Expectation | None = Field(None, description="The outcome the step must have.")
    note: str | None = Field(None, description="A remark printed with the step.")


class Scenario(Strict):
    """A list of timed commands by named actors."""

    title: str | None = Field(None, description="What the scenario shows.")
    start: datetime = Field(description="When the clock starts; without an offset: pack time.")
    tenant: str = Field("default", description="The tenant the pack is published to.")
    actors: dict[Name, ActorSpec] = Field(min_length=1, description="People, by name.")
    people: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Directory entries (docs/routing.md) for routing and notifications: "
        "locations, skill levels, shifts, contacts. Every actor is in the directory too; an "
        "entry with an actor's name as `id` adds to what the actor says.",
    )
    steps: list[Step] = Field(min_length=1, description="What happens, in order.")


@dataclass(slots=True)
class LoadedScenario:
    """A scenario that passed every check, with its steps' instants worked out."""

    path: str
    scenario: Scenario
    source: SourceMap
    text: str
    times: list[datetime]  # when each step runs (for a wait: when it starts)

    def line(self, index: int) -> int | None:
        span = self.source.locate(("steps", index))
        return span.line if span else None


# -- loading and checking ----------------------------------------------------------------------


def load_scenario(
    path: Path, bp: Blueprint, display: str | None = None
) -> tuple[LoadedScenario | None, list[Diagnostic], dict[str, str]]:
    """Parse and check a scenario against a compiled pack; diagnostics when it is bad."""
    name = display or str(path)
    doc, diags = load_yaml_file(path, LoadLimits(max_bytes=1024 * 1024), name)
    if doc is None:
        return None, diags, {}
    texts = {name: doc.text}
    if not isinstance(doc.data, dict):
        span = doc.source.value(()) or Span(name, 1, 1)
        message = "a scenario is a mapping with start:, actors: and steps:"
        return None, [Diagnostic("not-a-mapping", message, span)], texts
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as exc:
        return (
            None,
            sort_diagnostics(_with_time_hints(translate(exc, Scenario, doc.data, doc.source))),
            texts,
        )
    checker = _Checker(scenario, bp, doc.source)
    problems = checker.run()
    if problems:
        return None, sort_diagnostics(problems), texts
    return LoadedScenario(name, scenario, doc.source, doc.text, checker.times), [], texts


def _with_time_hints(diags: list[Diagnostic]) -> list[Diagnostic]:
    """pydantic names the type `datetime`; say how to write one."""
    out = []
    for d in diags:
        if d.pointer and d.pointer.split("/")[-1] in ("start", "at") and d.code == "wrong-type":
            key = d.pointer.split("/")[-1]
            d = Diagnostic(
                d.code,
                f"'{key}' must be a date and time",
                d.span,
                hint="e.g. 2026-03-02T09:00:00+08:00, or 2026-03-02 09:00 in the pack's time zone",
                pointer=d.pointer,
            )
        out.append(d)
    return out


class _Checker:
    """Checks that need the pack: names, commands, ticket names, the order of times."""

    def __init__(self, scenario: Scenario, bp: Blueprint, source: SourceMap) -> None:
        self.sc = scenario
        self.bp = bp
        self.source = source
        self.tz = ZoneInfo(bp.model.timezone)
        self.problems: list[Diagnostic] = []
        self.tickets: dict[str, tuple[str, int]] = {}  # name → (template, line bound at)
        self.times: list[datetime] = []

    def error(
        self, code: str, path: JsonPath, message: str, hint: str | None = None, key: bool = False
    ) -> None:
        span = self.source.locate(path, prefer_key=key)
        self.problems.append(Diagnostic(code, message, span, hint=hint, pointer=json_pointer(path)))

    def run(self) -> list[Diagnostic]:
        for name, spec in self.sc.actors.items():
            self.check_actor(name, spec)
        now = localize(self.sc.start, self.tz)
        for index, step in enumerate(self.sc.steps):
            now = self.check_time(index, step, now)
            self.times.append(now)
            self.check_step(index, step)
            if step.wait is not None:
                now += parse_duration(step.wait)
        return self.problems

    # -- actors ---------------------------------------------------------------------------

    def check_actor(self, name: str, spec: ActorSpec) -> None:
        for j, role in enumerate(spec.roles):
            if role not in self.bp.roles:
                hint = did_you_mean(role, self.bp.roles) or known_list(sorted(self.bp.roles))
                self.error(
                    "unknown-role",
                    ("actors", name, "roles", j),
                    f"the pack has no role '{role}'",
                    hint,
                )
        for j, team in enumerate(spec.teams):
            if self.bp.teams and team not in self.bp.teams:
                hint = did_you_mean(team, self.bp.teams) or known_list(sorted(self.bp.teams))
                self.error(
                    "unknown-team",
                    ("actors", name, "teams", j),
                    f"the pack has no team '{team}'",
                    hint,
                )
        declared = self.bp.model.actor_attributes
        for attr in spec.attributes:
            if attr not in declared:
                hint = did_you_mean(attr, declared) or known_list(sorted(declared))
                self.error(
                    "unknown-attribute",
                    ("actors", name, "attributes", attr),
                    f"the pack declares no actor attribute '{attr}'",
                    hint,
                    key=True,
                )

    # -- time -----------------------------------------------------------------------------

    def check_time(self, index: int, step: Step, now: datetime) -> datetime:
        if step.after is not None and step.at is not None:
            self.error(
                "conflicting-keys",
                ("steps", index, "at"),
                "write 'after:' or 'at:', not both",
                key=True,
            )
            return now
        if step.after is not None:
            return now + parse_duration(step.after)
        if step.at is not None:
            at = localize(step.at, self.tz)
            if at < now:
                self.error(
                    "time-goes-back",
                    ("steps", index, "at"),
                    f"{format_instant(at, self.tz)} is before the previous step "
                    f"({format_instant(now, self.tz)})",
                    "the clock only moves forward; order the steps by time",
                )
                return now
            return at
        return now

    # -- steps ----------------------------------------------------------------------------

    def check_step(self, index: int, step: Step) -> None:
        given = [c for c in COMMANDS if getattr(step, c) is not None]
        if step.comment is not None and len(given) > 1:
            given.remove("comment")  # with another command it is that command's comment
        if not given:
            self.error(
                "no-command",
                ("steps", index),
                "the step does nothing",
                "give it one of: " + ", ".join(COMMANDS),
            )
            return
        if len(given) > 1:
            self.error(
                "several-commands",
                ("steps", index, given[1]),
                f"one command per step; found {' and '.join(given)}",
                "split it into two steps",
                key=True,
            )
            return
        command = given[0]
        self.check_keys(index, step, command)
        if command == "wait":
            self.bind_links(index, step)
            return
        self.check_actor_ref(index, step)
        if command == "create":
            self.check_create(index, step)
        else:
            self.check_ticket_command(index, step, command)
        self.bind_links(index, step)

    def check_keys(self, index: int, step: Step, command: str) -> None:
        """Keys that make sense with some commands only."""
        allowed: dict[str, tuple[str, ...]] = {
            "fields": ("create", "transition"),
            "internal": ("comment",),
            "as_": ("create",),
            "channel": ("create",),
            "title": ("create",),
            "requester": ("create",),
            "version": ("transition", "update", "assign"),
            "comment": ("comment", "transition", "transfer", "delegate"),
            "ticket": ON_TICKET,
            "actor": ("create", *ON_TICKET),
            "expect": ("create", *ON_TICKET),
            "after": tuple(c for c in COMMANDS if c != "wait"),
            "at": tuple(c for c in COMMANDS if c != "wait"),
        }
        for attr, commands in allowed.items():
            if getattr(step, attr) is not None and command not in commands:
                key = "as" if attr == "as_" else attr
                self.error(
                    "misplaced-key",
                    ("steps", index, key),
                    f"'{key}' does not go with '{command}'",
                    f"'{key}' is for: {', '.join(commands)}",
                    key=True,
                )

    def check_actor_ref(self, index: int, step: Step) -> None:
        if step.actor is None:
            self.error(
                "missing-actor", ("steps", index), "who acts? add 'actor:' (a name under 'actors:')"
            )
        elif step.actor not in self.sc.actors:
            hint = did_you_mean(step.actor, self.sc.actors) or known_list(list(self.sc.actors))
            self.error(
                "unknown-actor", ("steps", index, "actor"), f"unknown actor '{step.actor}'", hint
            )

    def check_create(self, index: int, step: Step) -> None:
        assert step.create is not None
        template = step.create.rpartition("/")[2]
        if template not in self.bp.templates:
            hint = did_you_mean(template, self.bp.templates) or known_list(list(self.bp.templates))
            self.error(
                "unknown-template",
                ("steps", index, "create"),
                f"the pack has no template '{template}'",
                hint,
            )
            return
        if step.as_ is not None:
            self.bind(("steps", index, "as"), step.as_, template)

    def bind(self, path: JsonPath, name: str, template: str) -> None:
        span = self.source.locate(path)
        if name in self.tickets:
            line = self.tickets[name][1]
            self.error(
                "duplicate-name",
                path,
                f"'{name}' already names the ticket of line {line}",
                "pick another name",
            )
            return
        self.tickets[name] = (template, span.line if span else 0)

    def bind_links(self, index: int, step: Step) -> None:
        for name, template in (step.links or {}).items():
            path: JsonPath = ("steps", index, "links", name)
            if template not in self.bp.templates:
                hint = did_you_mean(template, self.bp.templates) or known_list(
                    list(self.bp.templates)
                )
                self.error("unknown-template", path, f"the pack has no template '{template}'", hint)
                continue
            self.bind(path, name, template)

    def check_ticket_command(self, index: int, step: Step, command: str) -> None:
        if step.ticket is None:
            self.error(
                "missing-ticket",
                ("steps", index),
                "which ticket? add 'ticket:' (a name given with 'as:')",
            )
            return
        bound = self.tickets.get(step.ticket)
        if bound is None:
            hint = did_you_mean(step.ticket, self.tickets) or (
                known_list(list(self.tickets))
                if self.tickets
                else "name a ticket with 'as:' on the step that creates it"
            )
            self.error(
                "unknown-ticket",
                ("steps", index, "ticket"),
                f"unknown ticket '{step.ticket}'",
                hint,
            )
            return
        if command == "transition" and step.transition is not None:
            workflow = self.bp.templates[bound[0]].workflow
            if step.transition not in workflow.names():
                hint = did_you_mean(step.transition, workflow.names()) or known_list(
                    sorted(workflow.names())
                )
                self.error(
                    "unknown-transition",
                    ("steps", index, "transition"),
                    f"workflow '{workflow.name}' of {step.ticket} "
                    f"has no transition '{step.transition}'",
                    hint,
                )


def localize(instant: datetime, tz: tzinfo) -> datetime:
    """A scenario time without an offset is in the pack's time zone."""
    return instant.replace(tzinfo=tz) if instant.tzinfo is None else instant


# -- formatting of times and values -----------------------------------------------------------


def format_instant(instant: datetime, tz: tzinfo) -> str:
    local = instant.astimezone(tz)
    text = local.strftime("%a %Y-%m-%d %H:%M")
    return text + local.strftime(":%S") if local.second else text


def format_offset(delta: timedelta) -> str:
    """`+0m`, `+10m`, `+1h30m`, `+3d2h`."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return "+" + ("".join(parts) or "0m")


def format_value(value: Any, limit: int = 60) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown(value: Any) -> str:
    """A value in a change: an unset one is shown as such, not as JSON's null."""
    return "(empty)" if value is None else format_value(value)


def format_values(values: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in values.items() if v not in (None, "", [], {})}
    return ", ".join(f"{k}={format_value(v)}" for k, v in shown.items())


def format_changes(changes: Mapping[str, Any]) -> str:
    parts = []
    for name, change in changes.items():
        if isinstance(change, Mapping) and "after" in change:
            before, after = change.get("before"), change["after"]
            parts.append(f"{name} {_shown(before)} → {_shown(after)}")
    return ", ".join(parts)


# -- what a run produces ----------------------------------------------------------------------


@dataclass(slots=True)
class EventView:
    """One timeline entry of a ticket."""

    ticket: str  # ticket id
    ref: str
    seq: int
    at: datetime
    kind: str
    actor: str
    data: dict[str, Any]
    preview: str | None = None  # a notification's message, filled in


@dataclass(slots=True)
class TimerView:
    """A timer that a step set (a delayed rule waiting for its due time)."""

    ticket: str | None
    due: datetime
    what: str


@dataclass(slots=True)
class ErrorView:
    code: str
    message: str
    problems: list[dict[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Entry:
    """A line of the timeline: a step, a wait, or timers firing on their own."""

    kind: Literal["step", "wait", "timer"]
    at: datetime
    headline: str
    step: int | None = None  # 1-based
    line: int | None = None
    actor: str | None = None
    command: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None  # ok, denied, invalid, unavailable, conflict, not-found, skipped
    result: str | None = None  # for ok: the ticket's ref and state
    error: ErrorView | None = None
    expect: str | None = None
    failure: str | None = None  # why the step counts as failed
    note: str | None = None
    events: list[EventView] = field(default_factory=list)
    timers: list[TimerView] = field(default_factory=list)


@dataclass(slots=True)
class TicketInfo:
    id: str
    ref: str
    template: str
    name: str | None
    state: str = ""
    seen: int = 0  # last timeline seq shown
    parent: str | None = None


@dataclass(slots=True)
class Report:
    """Everything a run found, for the text and the JSON output."""

    scenario: str
    title: str | None
    pack: str
    version: int
    timezone: str
    start: datetime
    entries: list[Entry]
    tickets: list[TicketInfo]

    @property
    def names(self) -> dict[str, str]:
        """Ticket id → how the output calls it: its scenario name, else its reference."""
        return {t.id: t.name or t.ref for t in self.tickets}

    @property
    def failures(self) -> list[Entry]:
        return [e for e in self.entries if e.failure is not None]

    @property
    def ok(self) -> bool:
        return not self.failures


# -- the whole run ----------------------------------------------------------------------------


@dataclass(slots=True)
class BadInput:
    """The pack or the scenario cannot be run: located diagnostics, and the texts to quote."""

    diagnostics: list[Diagnostic]
    texts: dict[str, str]


def simulate(pack_path: Path, scenario_path: Path, strict: bool = False) -> Report | BadInput:
    """Load the pack and the scenario, check both, and run the scenario."""
    pack = load_pack_path(pack_path)
    if not pack.ok or pack.pack is None:
        return BadInput([d for d in pack.diagnostics if d.is_error], pack.texts)
    loaded, diags, texts = load_scenario(scenario_path, compile_pack(pack.pack))
    if loaded is None:
        return BadInput(diags, texts)
    try:
        simulation = Simulation(pack, loaded, strict)
    except DirectoryError as exc:
        return BadInput(exc.diagnostics, {loaded.path: loaded.text})
    return simulation.run()


# -- running ----------------------------------------------------------------------------------

MAX_TIMER_ROUNDS = 10_000


def repeatable_ids() -> Callable[[], str]:
    """t0001, t0002, …: the same ids on every run."""
    numbers = itertools.count(1)
    return lambda: f"t{next(numbers):04d}"


class Simulation:
    """Runs a checked scenario on a fresh in-memory runtime."""

    def __init__(self, pack: PackResult, loaded: LoadedScenario, strict: bool = False) -> None:
        assert pack.pack is not None
        self.loaded = loaded
        self.sc = loaded.scenario
        self.strict = strict
        self.tz = ZoneInfo(pack.pack.timezone)
        self.start = localize(self.sc.start, self.tz)
        self.clock = ManualClock(self.start)
        self.rt = Runtime(MemoryStore(), self.clock, repeatable_ids())
        row = self.rt.publish(pack, tenant=self.sc.tenant)
        self.bp = self.rt.blueprint(self.sc.tenant, row.pack, row.version)
        self.system = Actor.system(self.sc.tenant)
        self.actors = {
            name: _actor(name, spec, self.sc.tenant) for name, spec in self.sc.actors.items()
        }
        self._load_people()
        self.tickets: dict[str, TicketInfo] = {}  # by id, in the order they became known
        self.names: dict[str, str] = {}  # scenario name → ticket id
        self.timers_seen: set[str] = set()
        self.new_links: list[TicketInfo] = []  # linked tickets found during the current step

    def _load_people(self) -> None:
        """Put the scenario's people in the directory; DirectoryError, located in the
        scenario, when an entry is malformed or names what the pack does not declare."""
        data = {"people": _people(self.sc)}
        try:
            specs = PeopleFile.model_validate(data).people
        except ValidationError as exc:
            raise DirectoryError(translate(exc, PeopleFile, data, self.loaded.source)) from None
        with self.rt.store.transaction() as tx:
            self.rt.directory.put(
                tx, self.sc.tenant, specs, self.clock.now(), source=self.loaded.source,
                file=self.loaded.path,
            )  # fmt: skip

    def run(self) -> Report:
        entries: list[Entry] = []
        for index, step in enumerate(self.sc.steps):
            entries.extend(self.advance(self.loaded.times[index]))
            entries.extend(self.run_step(index, step))
        return Report(
            self.loaded.path,
            self.sc.title,
            self.bp.pack,
            self.bp.version,
            str(self.tz),
            self.start,
            entries,
            list(self.tickets.values()),
        )

    # -- time -----------------------------------------------------------------------------

    def advance(self, target: datetime) -> Iterator[Entry]:
        """Move the clock to `target`, stopping at each due timer's instant to fire it."""
        for _ in range(MAX_TIMER_ROUNDS):
            due = self.waiting_timers(until=target)
            if not due:
                break
            instant = due[0].due_at
            self.clock.set(instant)
            firing = [t for t in due if t.due_at == instant]
            self.rt.run_due(instant)
            yield self.timer_entry(instant, firing)
        else:
            # Rules that keep rescheduling themselves would never let the clock arrive.
            stop = Entry("timer", self.clock.now(), "timers: too many firings")
            stop.failure = f"more than {MAX_TIMER_ROUNDS} timer firings; the run stopped there"
            yield stop
            return
        if target > self.clock.now():
            self.clock.set(target)

    def waiting_timers(self, until: datetime | None = None) -> list[TimerRow]:
        # The runtime has no read for timers; the store's is the one the worker uses.
        with self.rt.store.read() as tx:
            rows = tx.timers(self.sc.tenant)
        return [r for r in rows if r.status == "waiting" and (until is None or r.due_at <= until)]

    def timer_entry(self, instant: datetime, firing: list[TimerRow]) -> Entry:
        what = "; ".join(self.describe_timer(t) for t in firing)
        entry = Entry("timer", instant, f"timer: {what}")
        entry.events = self.collect()
        entry.timers = self.new_timers()
        if not entry.events:
            entry.result = "nothing happened (the ticket has moved on, or the condition is false)"
        return entry

    def describe_timer(self, timer: TimerRow) -> str:
        ticket = self.display(timer.ticket_id) if timer.ticket_id else "-"
        if timer.kind == "rule":
            return f"rule {timer.payload.get('rule')} on {ticket}"
        if timer.kind == "event":
            return f"event {timer.payload.get('event')} on {ticket}"
        if timer.kind == "schedule":
            return f"scheduled rule {timer.payload.get('rule')}"
        if timer.kind == "sla":
            return f"sla {timer.payload.get('metric')} {timer.payload.get('point')} on {ticket}"
        return f"{timer.kind} on {ticket}"

    def new_timers(self) -> list[TimerView]:
        out = []
        for t in self.waiting_timers():
            if t.id in self.timers_seen:
                continue
            self.timers_seen.add(t.id)
            if t.kind == "event":
                continue  # the `scheduled` event on the timeline says it already
            out.append(TimerView(t.ticket_id, t.due_at, self.describe_timer(t)))
        return out

    # -- steps ----------------------------------------------------------------------------

    def run_step(self, index: int, step: Step) -> list[Entry]:
        at = self.clock.now()
        self.new_links = []
        if step.wait is not None:
            return self.run_wait(index, step, at)
        entry = Entry(
            "step",
            at,
            self.headline(step),
            step=index + 1,
            line=self.loaded.line(index),
            actor=step.actor,
            command=command_of(step),
            expect=step.expect,
            note=step.note,
        )
        missing = self.unbound_ticket(step)
        if missing is not None:
            entry.outcome = "skipped"
            entry.failure = (
                f"ticket '{missing}' does not exist: the step that should open it failed"
            )
            return [entry]
        try:
            ticket = self.execute(step)
        except TicketflowError as exc:
            entry.outcome = OUTCOMES.get(exc.code, exc.code)
            entry.error = self.error_view(exc)
        else:
            entry.outcome = "ok"
            entry.result = self.remember(ticket, step)
        entry.events = self.collect()
        entry.timers = self.new_timers()
        self.judge(entry, step)
        self.bind_links(entry, step)
        return [entry]

    def run_wait(self, index: int, step: Step, at: datetime) -> list[Entry]:
        assert step.wait is not None
        until = at + parse_duration(step.wait)
        entry = Entry(
            "wait",
            at,
            f"wait {step.wait} (until {format_instant(until, self.tz)})",
            step=index + 1,
            line=self.loaded.line(index),
            note=step.note,
        )
        fired = list(self.advance(until))
        self.bind_links(fired[-1] if fired else entry, step)
        return [entry, *fired]

    def unbound_ticket(self, step: Step) -> str | None:
        if step.ticket is not None and step.ticket not in self.names:
            return step.ticket
        return None

    def execute(self, step: Step) -> Ticket:
        actor = self.actors[step.actor or ""]
        tid = self.names.get(step.ticket or "", "")
        if step.create is not None:
            return self.rt.create(
                step.create,
                step.fields or {},
                actor,
                channel=step.channel,
                title=step.title,
                requester=step.requester,
            )
        if step.transition is not None:
            return self.rt.transition(
                tid, step.transition, actor, step.fields, step.comment, step.version
            )
        if step.update is not None:
            return self.rt.update(tid, step.update, actor, step.version)
        if step.assign is not None:
            return self.rt.assign(tid, step.assign, actor, step.version)
        if step.claim is not None:
            return self.rt.claim(tid, actor)
        if step.transfer is not None:
            return self.rt.transfer(tid, step.transfer, actor, note=step.comment)
        if step.delegate is not None:
            return self.rt.delegate(tid, step.delegate, actor, note=step.comment)
        assert step.comment is not None
        return self.rt.comment(tid, step.comment, actor, internal=bool(step.internal))

    def remember(self, ticket: Ticket, step: Step) -> str:
        if ticket.id not in self.tickets:
            self.tickets[ticket.id] = TicketInfo(ticket.id, ticket.ref, ticket.template, None)
        if step.as_ is not None:
            self.name(ticket.id, step.as_)
        return f"{self.display(ticket.id)} {ticket.ref} is {ticket.state}"

    def name(self, ticket_id: str, name: str) -> None:
        self.tickets[ticket_id].name = name
        self.names[name] = ticket_id

    def judge(self, entry: Entry, step: Step) -> None:
        wanted = step.expect or ("ok" if self.strict else None)
        if wanted is not None and entry.outcome != wanted:
            entry.failure = f"expected {wanted}, got {entry.outcome}"

    def bind_links(self, entry: Entry, step: Step) -> None:
        """Give names to the tickets rules opened, as the step's `links:` asks."""
        for name, template in (step.links or {}).items():
            found = next(
                (t for t in self.new_links if t.template == template and t.name is None), None
            )
            if found is None:
                problem = f"no {template} ticket was opened to call '{name}'"
                entry.failure = f"{entry.failure}; {problem}" if entry.failure else problem
                continue
            self.name(found.id, name)

    # -- what happened --------------------------------------------------------------------

    def collect(self) -> list[EventView]:
        """New timeline entries of every ticket the scenario knows, following links to the
        tickets rules open."""
        out: list[EventView] = []
        queue = list(self.tickets)
        while queue:
            info = self.tickets[queue.pop(0)]
            for entry in self.rt.timeline(info.id, self.system):
                if entry.seq <= info.seen:
                    continue
                info.seen = entry.seq
                child = self.follow_link(info, entry)
                if child is not None:
                    queue.append(child)
                out.append(self.event_view(info, entry))
            info.state = self.rt.get(info.id, self.system).state
        return out

    def follow_link(self, parent: TicketInfo, entry: TimelineEntry) -> str | None:
        if entry.kind != "linked":
            return None
        child_id = str(entry.data.get("ticket", ""))
        if not child_id or child_id in self.tickets:
            return None
        child = self.rt.get(child_id, self.system)
        info = TicketInfo(child.id, child.ref, child.template, None, parent=parent.id)
        self.tickets[child.id] = info
        self.new_links.append(info)
        return child.id

    def event_view(self, info: TicketInfo, entry: TimelineEntry) -> EventView:
        key = entry.data.get("message")
        preview = None
        if entry.kind == "notify.queued" and isinstance(key, str):
            preview = self.message_preview(info.id, key)
        return EventView(
            info.id,
            info.ref,
            entry.seq,
            entry.at,
            entry.kind,
            entry.actor,
            dict(entry.data),
            preview,
        )

    def display(self, ticket_id: str | None) -> str:
        info = self.tickets.get(ticket_id or "")
        if info is None:
            return ticket_id or "-"
        return info.name or info.ref

    def message_preview(self, ticket_id: str, key: str) -> str | None:
        """The pack's message in its first locale (the runtime's own choice for rule
        comments), with `{{ ticket.x }}` filled in. The runtime queues only the key."""
        text = self.bp.messages.get(key)
        if text is None:
            return None
        if not isinstance(text, str):
            text = text.get(self.bp.model.locales[0]) or next(iter(text.values()), "")
        ticket = self.rt.get(ticket_id, self.system)
        values = {**_attributes(ticket), **ticket.fields}
        bp = self.rt.blueprint(self.sc.tenant, ticket.pack, ticket.pack_version)
        tpl = bp.templates[ticket.template]
        first = bp.model.locales[0]
        state = tpl.workflow.states.get(ticket.state)
        title = localized(state.title if state else None, first, ticket.state, first)
        # As the runtime renders it (runtime.notify), for a recipient of the first locale.
        context = {
            "ticket": {**dict.fromkeys(tpl.field_names), **values, "state_title": title},
            "labels": option_labels(tpl.model.fields, values, first, first),
            "recipient": {"id": "recipient", "name": "(recipient)", "locale": first},
        }
        try:
            return render(text, context)
        except RenderError as exc:
            return f"(message does not render: {exc})"

    def error_view(self, exc: TicketflowError) -> ErrorView:
        problems = []
        if isinstance(exc, InvalidFields):
            problems = [
                {"field": p.field, "code": p.code, "message": p.message} for p in exc.problems
            ]
        # Messages name tickets by internal id; the scenario knows them by name.
        message = exc.message
        for info in self.tickets.values():
            message = message.replace(f"'{info.id}'", f"'{self.display(info.id)}' ({info.ref})")
        return ErrorView(exc.code, message, problems)

    def headline(self, step: Step) -> str:
        return f"{step.actor}: {describe_command(step)}"


def _people(sc: Scenario) -> list[dict[str, Any]]:
    """The scenario's directory: the `people:` entries first (so problems are located at
    them), each completed by the actor of that name, then the other actors."""
    actors: dict[str, dict[str, Any]] = {}
    for name, spec in sc.actors.items():
        actors[name] = {
            "id": name,
            "roles": spec.roles,
            "teams": spec.teams,
            "skills": spec.skills,
            "attributes": dict(spec.attributes),
            **({"name": spec.name} if spec.name else {}),
            **({"locale": spec.locale} if spec.locale else {}),
        }
    listed = [{**actors.get(str(e.get("id")), {}), **e} for e in sc.people]
    named = {str(e.get("id")) for e in sc.people}
    return listed + [entry for name, entry in actors.items() if name not in named]


def _actor(name: str, spec: ActorSpec, tenant: str) -> Actor:
    return Actor.of(
        name,
        spec.roles,
        tenant,
        teams=spec.teams,
        skills=spec.skills,
        attributes=dict(spec.attributes),
        name=spec.name,
        locale=spec.locale,
    )


def _attributes(ticket: Ticket) -> dict[str, Any]:
    return {
        "ref": ticket.ref,
        "title": ticket.title,
        "state": ticket.state,
        "id": ticket.id,
        "requester": ticket.requester,
        "assignee": ticket.assignee,
        "team": ticket.team,
    }


def command_of(step: Step) -> dict[str, Any]:
    """The step's command as data (for the JSON output)."""
    data = step.model_dump(by_alias=True, exclude_none=True, mode="json")
    for key in ("after", "at", "actor", "expect", "note", "links"):
        data.pop(key, None)
    return data


def describe_command(step: Step) -> str:
    if step.create is not None:
        named = f" as {step.as_}" if step.as_ else ""
        text = f"create {step.create}{named}" + (f' "{step.title}"' if step.title else "")
        return text + (f" ({format_values(step.fields)})" if step.fields else "")
    if step.transition is not None:
        text = f"transition {step.transition} on {step.ticket}"
        text += f" ({format_values(step.fields)})" if step.fields else ""
        return text + (f' "{format_value(step.comment)}"' if step.comment else "")
    if step.update is not None:
        return f"update {step.ticket}: {format_values(step.update) or 'nothing'}"
    if step.assign is not None:
        return f"assign {step.ticket} to {step.assign}"
    if step.claim is not None:
        return f"claim {step.ticket}"
    if step.transfer is not None or step.delegate is not None:
        verb, to = ("transfer", step.transfer) if step.transfer else ("delegate", step.delegate)
        note = f' "{format_value(step.comment)}"' if step.comment else ""
        return f"{verb} {step.ticket} to {to}{note}"
    kind = "internal note" if step.internal else "comment"
    return f'{kind} on {step.ticket}: "{format_value(step.comment)}"'


# -- one line per timeline event --------------------------------------------------------------


def describe_event(ev: EventView, names: Mapping[str, str]) -> str:
    """One line for a timeline entry; `names` gives the scenario's names of tickets."""
    d = ev.data
    by = f" by {ev.actor}"
    kind = ev.kind
    if kind == "created":
        return f"created in {d.get('state')}{by}: {format_values(d.get('fields', {}))}"
    if kind == "transitioned":
        text = f"{d.get('from')} → {d.get('to')} ({d.get('transition')}){by}"
        if d.get("changes"):
            text += f"; {format_changes(d['changes'])}"
        return text + (f' "{format_value(d["comment"])}"' if d.get("comment") else "")
    if kind in ("updated", "assigned"):
        return f"{kind}{by}: {format_changes(d.get('changes', {}))}"
    if kind == "commented":
        label = "internal note" if d.get("internal") else "comment"
        return f'{label}{by}: "{format_value(d.get("body"), 120)}"'
    if kind == "rule":
        return f"rule {d.get('rule')} fired"
    if kind == "rule.failed":
        return f"{d.get('source')} FAILED [{d.get('error')}]: {d.get('message')}"
    if kind == "rule.depth_limit":
        return f"rule {d.get('rule')} not run: rule chain too deep ({d.get('depth')})"
    if kind == "routed":
        return f"routed: {d.get('reason')}"
    if kind == "routing.none":
        return f"not routed: {d.get('reason')}"
    if kind in ("notify.queued", "webhook.queued"):
        return _describe_outbox(kind, d, ev.preview)
    if kind == "linked":
        child = names.get(str(d.get("ticket")))
        named = (
            f"{child} ({d.get('ref')})" if child and child != d.get("ref") else str(d.get("ref"))
        )
        return f"opened {d.get('link')} ticket {named}"
    if kind == "scheduled":
        return f"event {d.get('event')} scheduled for {d.get('due')}"
    return f"{kind}{by}: {format_value(d, 100)}"


def _describe_outbox(kind: str, d: Mapping[str, Any], preview: str | None) -> str:
    if kind == "webhook.queued":
        return f"webhook queued: POST {d.get('url')} ({d.get('source')})"
    to = d.get("to")
    recipients = ", ".join(to) if isinstance(to, list) else str(to)
    via = d.get("via")
    channels = f" via {', '.join(via)}" if isinstance(via, list) else ""
    reached = d.get("recipients")
    who = f" → {', '.join(reached) if reached else 'nobody'}" if isinstance(reached, list) else ""
    text = f"notify {recipients}{channels}{who}"
    key = d.get("message")
    if isinstance(key, str):
        text += f": {key}" + (f' "{format_value(preview, 160)}"' if preview else "")
    return text


# -- output -----------------------------------------------------------------------------------

INDENT = " " * 11


def render_text(report: Report) -> str:
    """The timeline for people: one line per step, indented lines for what followed."""
    tz = ZoneInfo(report.timezone)
    lines = [
        f"Scenario {report.scenario}" + (f": {report.title}" if report.title else ""),
        f"Pack {report.pack} v{report.version}; times in {report.timezone}; "
        f"clock starts {format_instant(report.start, tz)}",
        "",
    ]
    for entry in report.entries:
        lines.extend(_entry_lines(entry, report.start, tz, report.names))
    lines.append("")
    lines.extend(_ticket_lines(report))
    lines.append("")
    lines.extend(_summary_lines(report))
    return "\n".join(lines)


def _entry_lines(entry: Entry, start: datetime, tz: tzinfo, names: Mapping[str, str]) -> list[str]:
    when = f"{format_offset(entry.at - start):<10} {format_instant(entry.at, tz)}"
    label = f"[{entry.step}] " if entry.step is not None else ""
    lines = [f"{when}  {label}{entry.headline}"]
    if entry.note:
        lines.append(f"{INDENT}» {entry.note}")
    lines.extend(INDENT + line for line in _outcome_lines(entry))
    width = max((len(names.get(e.ticket, e.ref)) for e in entry.events), default=0)
    for ev in entry.events:
        lines.append(
            f"{INDENT}{names.get(ev.ticket, ev.ref):<{width}}  {describe_event(ev, names)}"
        )
    for timer in entry.timers:
        wait = format_offset(timer.due - entry.at)[1:]
        due = format_instant(timer.due, tz)
        lines.append(f"{INDENT}timer set: {timer.what}, due {due} (in {wait})")
    # The verdict comes last: a `links:` failure is about the events above it.
    if entry.failure is not None:
        lines.append(f"{INDENT}FAILED: {entry.failure}")
    elif entry.expect is not None:
        lines.append(f"{INDENT}as expected ({entry.expect})")
    return lines


def _outcome_lines(entry: Entry) -> list[str]:
    lines: list[str] = []
    if entry.outcome == "ok":
        lines.append(f"ok: {entry.result}")
    elif entry.error is not None:
        lines.append(f"{entry.outcome}: [{entry.error.code}] {entry.error.message}")
        lines.extend(
            f"  - {p['field'] or '(ticket)'}: {p['message']}"
            for p in entry.error.problems
            if p["field"] or p["message"] not in entry.error.message  # a check says it already
        )
    elif entry.outcome == "skipped":
        lines.append("skipped")
    elif entry.result:
        lines.append(entry.result)
    return lines


def _ticket_lines(report: Report) -> list[str]:
    lines = ["Tickets at the end:"]
    for t in report.tickets:
        name = f"{t.name} " if t.name else ""
        parent = next((p for p in report.tickets if p.id == t.parent), None)
        linked = f" (opened by a rule on {parent.name or parent.ref})" if parent else ""
        lines.append(f"  {name}{t.ref} {t.template}: {t.state}{linked}")
    return lines if report.tickets else [*lines, "  none"]


def _summary_lines(report: Report) -> list[str]:
    steps = [e for e in report.entries if e.kind != "timer"]
    timers = sum(e.kind == "timer" for e in report.entries)
    refused = sum(e.outcome not in (None, "ok", "skipped") for e in steps)
    checked = sum(e.expect is not None for e in steps)
    failures = report.failures
    head = (
        f"{_count(len(steps), 'step')}, {_count(timers, 'timer')} fired, {refused} refused; "
        f"{_count(checked, 'expectation')}, {len(failures)} failed"
    )
    if not failures:
        return [f"PASSED: {head}"]
    lines = [f"FAILED: {head}"]
    for e in failures:
        where = f"step {e.step} (line {e.line})" if e.step is not None else "timer"
        lines.append(f"  {where}: {e.failure}")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def report_json(report: Report) -> dict[str, Any]:
    """The same as `render_text`, as data."""
    tz = ZoneInfo(report.timezone)

    def when(instant: datetime) -> dict[str, str]:
        return {
            "at": instant.astimezone(tz).isoformat(),
            "offset": format_offset(instant - report.start),
        }

    return {
        "scenario": report.scenario,
        "title": report.title,
        "pack": report.pack,
        "version": report.version,
        "timezone": report.timezone,
        "start": report.start.astimezone(tz).isoformat(),
        "entries": [_entry_json(e, when, report.names) for e in report.entries],
        "tickets": [
            {
                "id": t.id,
                "name": t.name,
                "ref": t.ref,
                "template": t.template,
                "state": t.state,
                "parent": t.parent,
            }
            for t in report.tickets
        ],
        "passed": report.ok,
        "failures": [
            {"step": e.step, "line": e.line, "message": e.failure} for e in report.failures
        ],
    }


def _entry_json(
    entry: Entry, when: Callable[[datetime], dict[str, str]], names: Mapping[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": entry.kind,
        **when(entry.at),
        "step": entry.step,
        "line": entry.line,
    }
    out.update(
        headline=entry.headline,
        actor=entry.actor,
        command=entry.command or None,
        outcome=entry.outcome,
        result=entry.result,
        expect=entry.expect,
        failure=entry.failure,
        note=entry.note,
        error=None
        if entry.error is None
        else {
            "code": entry.error.code,
            "message": entry.error.message,
            "problems": entry.error.problems,
        },
        events=[
            {
                "ticket": ev.ticket,
                "name": names.get(ev.ticket),
                "ref": ev.ref,
                "seq": ev.seq,
                **when(ev.at),
                "kind": ev.kind,
                "actor": ev.actor,
                "data": ev.data,
                "text": describe_event(ev, names),
            }
            for ev in entry.events
        ],
        timers=[{"ticket": t.ticket, **when(t.due), "what": t.what} for t in entry.timers],
    )
    return out
