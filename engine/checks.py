"""Semantic checks of a pack: references resolve, workflows are sound, values make sense.

Every check reports through `PackChecker.report` with a data path, which the source map
turns into file:line:col; all problems are collected, none stops the others.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

from dsl.diagnostics import Diagnostic, Severity, did_you_mean, known_list
from dsl.source_map import JsonPath, SourceMap, json_pointer
from engine.expr_types import BUILTIN_ACTOR_ATTRIBUTES, RESERVED_NAMES
from engine.fields import FieldSpec, TableField, field_options, option_values
from engine.message_check import check_message_templates
from engine.model import (
    STANDARD_METRICS,
    AssignAction,
    Calendar,
    CommentAction,
    CreateTicketAction,
    EnteredTrigger,
    EventTrigger,
    HolidaySource,
    LeftTrigger,
    NotifyAction,
    Pack,
    Permission,
    RaisePriorityAction,
    Rule,
    ScheduleAction,
    ScheduleTrigger,
    SetAction,
    SlaPolicy,
    SlaTrigger,
    Template,
    TransitionAction,
    TransitionedTrigger,
    UpdatedTrigger,
    Workflow,
)
from engine.rule_graph import unconditional_cycles
from engine.values import DAYS, parse_clock, parse_days, parse_duration, parse_hours

# Ticket attributes every template has, usable wherever a field name is expected.
BUILTIN_FIELDS = frozenset(
    {"title", "description", "assignee", "team", "requester", "watchers", "tags", "channel"}
)
# What a scheduled rule (no ticket of its own) can do.
SCHEDULED_ACTIONS = frozenset({"create_ticket", "notify", "webhook"})
REF_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
REF_NAMES = re.compile(r"^(yyyy|yy|mm|dd|seq(:0?[1-9][0-9]?)?)$")
ASSIGNEE = re.compile(r"^(requester|assignee|(role|team|user|field):(\S+))$")
TERMINAL_STRATEGIES = frozenset({"round_robin", "claim_pool", "manual"})
RECIPIENT = re.compile(
    r"^(requester|assignee|watchers|mentioned|team_lead|(role|team|user|field):(\S+))$"
)
LOCALIZED_KEYS = frozenset(
    {"title", "label", "help", "description", "placeholder", "customer_label", "body", "message"}
)

Action = Any  # one of the action models of engine.model


def _items(value: str | list[str]) -> list[tuple[str, JsonPath]]:
    """A `str | list[str]` value with the path suffix of each item."""
    if isinstance(value, list):
        return [(v, (i,)) for i, v in enumerate(value)]
    return [(value, ())]


class PackChecker:
    """Runs every semantic check on a validated pack and collects diagnostics."""

    def __init__(self, pack: Pack, source: SourceMap) -> None:
        self.pack = pack
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        self.roles = set(pack.role_names())
        self.skills = set(pack.skill_names())
        self.used_messages: set[str] = set()
        self.scheduled_events: set[str] = set()
        self.assigns_by_strategy = False

    # -- reporting -------------------------------------------------------------------------
    def report(
        self,
        code: str,
        message: str,
        path: JsonPath,
        hint: str | None = None,
        *,
        key: bool = False,
        warning: bool = False,
    ) -> None:
        """Record a diagnostic located at the data path `path`."""
        self.diagnostics.append(
            Diagnostic(
                code,
                message,
                self.source.locate(path, prefer_key=key),
                Severity.WARNING if warning else Severity.ERROR,
                hint,
                json_pointer(path),
            )
        )

    def reference(
        self,
        kind: str,
        name: str,
        known: Iterable[str],
        path: JsonPath,
        context: str = "",
        *,
        key: bool = False,
    ) -> bool:
        """Check that `name` is one of `known`; report an unknown reference otherwise."""
        pool = list(known)
        if name in pool:
            return True
        where = f" {context}" if context else ""
        self.report(
            "unknown-reference",
            f"unknown {kind} '{name}'{where}",
            path,
            did_you_mean(name, pool) or known_list(pool),
            key=key,
        )
        return False

    # -- entry point -----------------------------------------------------------------------
    def run(self) -> list[Diagnostic]:
        """Run all checks; the result is in no particular order."""
        self.check_lists()
        self.check_actor_attributes()
        for name, cal in self.pack.calendars.items():
            self.check_calendar(name, cal)
        self.check_teams()
        for name, wf in self.pack.workflows.items():
            self.check_workflow(name, wf)
        for name, tpl in self.pack.templates.items():
            self.check_template(name, tpl)
        self.check_permissions()
        for name, rule in self.pack.rules.items():
            self.check_rule(name, rule)
        self.check_rule_cycles()
        for name, policy in self.pack.sla.items():
            self.check_sla(name, policy)
        self.check_messages()
        check_message_templates(self.pack, self.report)
        self.check_unused()
        self.check_translations()
        return self.diagnostics

    # -- small lists -----------------------------------------------------------------------
    def check_actor_attributes(self) -> None:
        for name in self.pack.actor_attributes:
            if name in BUILTIN_ACTOR_ATTRIBUTES:
                self.report(
                    "reserved-name",
                    f"actor.{name} is built in and cannot be redefined",
                    ("actor_attributes", name),
                    f"built in: {', '.join(BUILTIN_ACTOR_ATTRIBUTES)}; choose another name",
                    key=True,
                )

    def check_lists(self) -> None:
        for section in ("roles", "skills", "locales"):
            value = getattr(self.pack, section)
            if isinstance(value, list):
                self._no_duplicates(value, (section,), section[:-1])

    def _no_duplicates(self, values: Sequence[str], path: JsonPath, noun: str) -> None:
        seen: dict[str, int] = {}
        for i, v in enumerate(values):
            if v not in seen:
                seen[v] = i
                continue
            first = self.source.locate((*path, seen[v]))
            where = f"{first.file}:{first.line}" if first else f"item {seen[v] + 1}"
            self.diagnostics.append(
                Diagnostic(
                    "duplicate-name",
                    f"{noun} '{v}' is listed twice (first at {where})",
                    self.source.locate((*path, i)),
                    Severity.ERROR,
                    "remove one of them",
                    json_pointer((*path, i)),
                    (first,) if first else (),
                )
            )

    # -- calendars -------------------------------------------------------------------------
    def check_calendar(self, name: str, cal: Calendar) -> None:
        base: JsonPath = ("calendars", name)
        if isinstance(cal.week, dict):
            self._check_week(cal.week, (*base, "week"))
            if not self._ever_open(cal.week) and not cal.extra_workdays:
                self.report(
                    "calendar-never-open",
                    f"calendar '{name}' has no open hours on any day",
                    (*base, "week"),
                    "give at least one day hours, e.g. mon-fri: 09:00-18:00, or use 24x7; "
                    "SLA clocks on a closed calendar would never run",
                )
        self._check_holidays(cal, base)
        both = set(cal.extra_holidays) & set(cal.extra_workdays)
        for day in sorted(both):
            i = cal.extra_workdays.index(day)
            self.report(
                "conflicting-dates",
                f"{day} is both an extra holiday and an extra workday",
                (*base, "extra_workdays", i),
                "keep it in one of the two lists",
            )

    @staticmethod
    def _ever_open(week: dict[str, Any]) -> bool:
        for hours in week.values():
            for value in hours if isinstance(hours, list) else [hours]:
                try:
                    if parse_hours(value):
                        return True
                except ValueError:
                    return True  # a malformed value has its own diagnostic
        return False

    def _days(self, spec: str) -> list[str] | None:
        try:
            return [DAYS[i] for i in parse_days(spec)]
        except ValueError:
            return None

    def _check_week(self, week: dict[str, Any], path: JsonPath) -> None:
        owner: dict[str, str] = {}
        for spec, hours in week.items():
            days = self._days(spec)
            if days is None:
                bad = next(
                    (p for p in re.split(r"[,-]", spec.lower().replace(" ", "")) if p not in DAYS),
                    spec,
                )
                self.report(
                    "invalid-day",
                    f"'{spec}' is not a day or day range",
                    (*path, spec),
                    did_you_mean(bad, DAYS)
                    or "use mon, tue, wed, thu, fri, sat, sun, "
                    "ranges like mon-fri, or lists like sat,sun",
                    key=True,
                )
                continue
            for day in days:
                if day in owner:
                    self.report(
                        "duplicate-day",
                        f"{day} is given hours twice ('{owner[day]}' and '{spec}')",
                        (*path, spec),
                        "give each day its hours once",
                        key=True,
                    )
                owner.setdefault(day, spec)
            spans = hours if isinstance(hours, list) else [hours]
            self._check_overlaps(spans, (*path, spec))

    def _check_overlaps(self, values: list[str], path: JsonPath) -> None:
        minutes: list[tuple[int, int, str]] = []
        for value in values:
            for start, end in parse_hours(value):
                a, b = _minute(start), _minute(end)
                if b <= a:
                    b += 24 * 60  # overnight span runs into the next day
                minutes.append((a, b, f"{start}-{end}"))
        minutes.sort()
        for (_, b1, s1), (a2, _, s2) in itertools.pairwise(minutes):
            if a2 < b1:
                self.report(
                    "overlapping-hours",
                    f"opening hours {s1} and {s2} overlap",
                    path,
                    "merge them into one span",
                )

    def _check_holidays(self, cal: Calendar, base: JsonPath) -> None:
        if cal.holidays is None:
            return
        if isinstance(cal.holidays, list):
            entries = [(h, (*base, "holidays", i)) for i, h in enumerate(cal.holidays)]
        else:
            entries = [(cal.holidays, (*base, "holidays"))]
        for entry, path in entries:
            if isinstance(entry, str):
                self._check_country(entry, None, path)
            else:
                self._check_country(entry.country, entry.subdivision, path, entry)

    def _check_country(
        self,
        country: str,
        subdivision: str | None,
        path: JsonPath,
        entry: HolidaySource | None = None,
    ) -> None:
        supported = _holiday_countries()
        cpath = (*path, "country") if entry is not None else path
        if country not in supported:
            self.report(
                "unknown-country",
                f"no public holiday data for country '{country}'",
                cpath,
                did_you_mean(country, supported)
                or "use an ISO 3166 code such as CN, US, DE, GB, JP",
            )
            return
        if subdivision is not None and subdivision not in supported[country]:
            self.report(
                "unknown-subdivision",
                f"'{subdivision}' is not a subdivision of {country}",
                (*path, "subdivision"),
                did_you_mean(subdivision, supported[country]) or known_list(supported[country]),
            )

    # -- teams -----------------------------------------------------------------------------
    def check_teams(self) -> None:
        for name, team in self.pack.teams.items():
            base: JsonPath = ("teams", name)
            if team.parent is not None:
                self.reference("team", team.parent, self.pack.teams, (*base, "parent"))
            if team.calendar is not None:
                self.reference("calendar", team.calendar, self.pack.calendars, (*base, "calendar"))
            if team.lead_role is not None:
                self.reference("role", team.lead_role, self.roles, (*base, "lead_role"))
            skills = team.skills if isinstance(team.skills, list) else list(team.skills)
            for i, skill in enumerate(skills):
                spath = (
                    (*base, "skills", i)
                    if isinstance(team.skills, list)
                    else (*base, "skills", skill)
                )
                self.reference("skill", skill, self.skills, spath, "(declare it under skills:)")
            if isinstance(team.skills, dict):
                for skill, level in team.skills.items():
                    if not 1 <= level <= 5:
                        self.report(
                            "out-of-range",
                            f"skill level {level} for '{skill}' is outside 1-5",
                            (*base, "skills", skill),
                            "1 is a beginner, 5 an expert",
                        )
        self._check_team_cycles()

    def _check_team_cycles(self) -> None:
        reported: set[frozenset[str]] = set()
        for start in self.pack.teams:
            seen = [start]
            current = self.pack.teams[start].parent
            while current is not None and current in self.pack.teams:
                if current == start:
                    if frozenset(seen) not in reported:
                        reported.add(frozenset(seen))
                        chain = " → ".join([*seen, start])
                        self.report(
                            "cyclic-reference",
                            f"team parents form a cycle: {chain}",
                            ("teams", start, "parent"),
                            "a team cannot be its own parent, directly or through others; "
                            "remove one 'parent:'",
                        )
                    break
                if current in seen:
                    break
                seen.append(current)
                current = self.pack.teams[current].parent

    # -- workflows -------------------------------------------------------------------------
    def templates_using(self, workflow: str) -> list[str]:
        """Templates whose tickets follow `workflow`."""
        return [n for n, t in self.pack.templates.items() if t.workflow == workflow]

    def check_workflow(self, name: str, wf: Workflow) -> None:
        base: JsonPath = ("workflows", name)
        states = wf.states
        self.reference("state", wf.initial, states, (*base, "initial"), f"in workflow '{name}'")
        edges: dict[str, set[str]] = {s: set() for s in states}
        before = len(self.diagnostics)
        for tname, tr in wf.transitions.items():
            tpath = (*base, "transitions", tname)
            targets_ok = self.reference(
                "state", tr.to, states, (*tpath, "to"), f"in workflow '{name}'"
            )
            sources = self._transition_sources(name, wf, tname)
            for src in sources:
                if targets_ok:
                    edges[src].add(tr.to)
            for i, role in enumerate(tr.roles):
                self.reference("role", role, self.roles, (*tpath, "roles", i))
            for key in ("requires", "form"):
                for i, field in enumerate(getattr(tr, key)):
                    self.field_in_templates(field, self.templates_using(name), (*tpath, key, i))
            for i, action in enumerate(tr.do):
                self.check_action(action, (*tpath, "do", i), self.templates_using(name))
        unresolved = (
            any(
                d.code == "unknown-reference" and "state" in d.message
                for d in self.diagnostics[before:]
            )
            or wf.initial not in states
        )
        if not unresolved:
            # With a broken state reference every later state would look unreachable.
            self._check_graph(name, wf, edges)

    def _transition_sources(self, wf_name: str, wf: Workflow, tname: str) -> list[str]:
        tr = wf.transitions[tname]
        tpath: JsonPath = ("workflows", wf_name, "transitions", tname, "from")
        sources: list[str] = []
        for src, suffix in _items(tr.from_):
            if src == "*":
                sources.extend(s for s, st in wf.states.items() if not st.final)
                continue
            if not self.reference(
                "state", src, wf.states, (*tpath, *suffix), f"in workflow '{wf_name}'"
            ):
                continue
            if wf.states[src].final:
                self.report(
                    "final-state-exit",
                    f"transition '{tname}' leaves final state '{src}'",
                    (*tpath, *suffix),
                    f"a final state ends the ticket; remove '{src}' from 'from' or make the "
                    "state non-final (a reopen goes from a resolved, non-final state)",
                )
            sources.append(src)
        return sources

    def _check_graph(self, name: str, wf: Workflow, edges: dict[str, set[str]]) -> None:
        base: JsonPath = ("workflows", name, "states")
        if wf.initial in wf.states:
            reached = {wf.initial}
            frontier = [wf.initial]
            while frontier:
                for nxt in edges.get(frontier.pop(), ()):
                    if nxt not in reached:
                        reached.add(nxt)
                        frontier.append(nxt)
            for state in wf.states:
                if state not in reached:
                    self.report(
                        "unreachable-state",
                        f"state '{state}' cannot be reached from '{wf.initial}'",
                        (*base, state),
                        "add a transition into it, or remove it",
                        key=True,
                    )
        if not any(s.final for s in wf.states.values()):
            self.report(
                "no-final-state",
                f"workflow '{name}' has no final state, so no ticket can ever finish",
                ("workflows", name, "states"),
                "mark the end state with 'final: true'",
                key=True,
            )
        for state, st in wf.states.items():
            if not st.final and not (edges[state] - {state}):
                self.report(
                    "dead-end-state",
                    f"state '{state}' is not final and has no transition out",
                    (*base, state),
                    "add a transition from it, or mark it 'final: true'",
                    key=True,
                )

    # -- templates and fields --------------------------------------------------------------
    def fields_of(self, template: str) -> dict[str, FieldSpec]:
        """The custom fields of a template (empty if it does not exist)."""
        tpl = self.pack.templates.get(template)
        return tpl.fields if tpl is not None else {}

    def field_in_templates(self, field: str, templates: Iterable[str], path: JsonPath) -> bool:
        """Check a field name against each template; report the first that lacks it."""
        if field in BUILTIN_FIELDS:
            return True
        for tname in templates:
            fields = self.fields_of(tname)
            if field not in fields:
                self.report(
                    "unknown-reference",
                    f"unknown field '{field}' (template '{tname}' has no such field)",
                    path,
                    did_you_mean(field, [*fields, *BUILTIN_FIELDS]) or known_list(list(fields)),
                )
                return False
        return True

    def field_anywhere(self, field: str, templates: Sequence[str], path: JsonPath) -> bool:
        """Check that a field exists in at least one of `templates` (or any template)."""
        if field in BUILTIN_FIELDS:
            return True
        scope = list(templates) or list(self.pack.templates)
        pool = {f for t in scope for f in self.fields_of(t)}
        return self.reference("field", field, pool | BUILTIN_FIELDS, path)

    def check_template(self, name: str, tpl: Template) -> None:
        base: JsonPath = ("templates", name)
        wf = self.pack.workflows.get(tpl.workflow)
        self.reference("workflow", tpl.workflow, self.pack.workflows, (*base, "workflow"))
        for i, policy in enumerate(tpl.sla):
            self.reference("SLA policy", policy, self.pack.sla, (*base, "sla", i))
        self._check_ref(tpl.ref, (*base, "ref"))
        states = list(wf.states) if wf else []
        for fname, spec in tpl.fields.items():
            if fname in RESERVED_NAMES:
                self.report(
                    "reserved-name",
                    f"a field cannot be called '{fname}': conditions use that name already",
                    (*base, "fields", fname),
                    f"rename it, e.g. '{name}_{fname}'",
                    key=True,
                )
            self.check_field(spec, (*base, "fields", fname), states if wf else None, tpl.workflow)
        if tpl.routing is not None:
            self._check_routing(name, tpl, (*base, "routing"))

    def _check_ref(self, ref: str, path: JsonPath) -> None:
        names = REF_PLACEHOLDER.findall(ref)
        for placeholder in names:
            if not REF_NAMES.match(placeholder):
                self.report(
                    "invalid-ref-pattern",
                    f"unknown placeholder '{{{placeholder}}}' in reference pattern '{ref}'",
                    path,
                    "use {yyyy} {yy} {mm} {dd} {seq} or {seq:05} (zero-padded to 5 digits)",
                )
        if not any(n.startswith("seq") for n in names):
            self.report(
                "invalid-ref-pattern",
                f"reference pattern '{ref}' has no {{seq}}, so references would repeat",
                path,
                "add {seq} or {seq:05}",
            )

    def check_field(
        self, spec: Any, path: JsonPath, states: list[str] | None, workflow: str = ""
    ) -> None:
        """Checks of one field or table column: options, defaults, ranges, states."""
        options = field_options(spec)
        if options is not None:
            self._no_duplicates(options, (*path, "options"), "option")
            default = getattr(spec, "default", None)
            defaults = default if isinstance(default, list) else [default]
            for i, value in enumerate(defaults):
                if value is not None and value not in options:
                    dpath = (
                        (*path, "default", i) if isinstance(default, list) else (*path, "default")
                    )
                    self.report(
                        "unknown-option",
                        f"default '{value}' is not one of the options",
                        dpath,
                        did_you_mean(str(value), options) or "options: " + ", ".join(options),
                    )
        self._check_range(spec, path, "min", "max")
        self._check_range(spec, path, "min_length", "max_length")
        self._check_range(spec, path, "min_items", "max_items")
        self._check_range(spec, path, "min_rows", "max_rows")
        if states is not None:
            for i, state in enumerate(getattr(spec, "required_in", [])):
                self.reference(
                    "state", state, states, (*path, "required_in", i), f"in workflow '{workflow}'"
                )
        for i, role in enumerate(getattr(spec, "roles", None) or []):
            self.reference("role", role, self.roles, (*path, "roles", i))
        team = getattr(spec, "team", None)
        if spec.type in ("user",) and team is not None:
            self.reference("team", team, self.pack.teams, (*path, "team"))
        if spec.type == "team" and getattr(spec, "default", None):
            self.reference("team", spec.default, self.pack.teams, (*path, "default"))
        if isinstance(spec, TableField):
            for cname, column in spec.columns.items():
                if isinstance(column, BaseModel):
                    self.check_field(column, (*path, "columns", cname), None)
                elif column == "money":
                    self.report(
                        "missing-key",
                        f"money column '{cname}' needs a currency",
                        (*path, "columns", cname),
                        f"write {cname}: {{type: money, currency: CNY}}",
                    )

    def _check_range(self, spec: Any, path: JsonPath, low: str, high: str) -> None:
        lo, hi = getattr(spec, low, None), getattr(spec, high, None)
        if lo is None or hi is None:
            return
        if isinstance(lo, str):
            lo, hi = parse_duration(lo), parse_duration(hi)
        if lo > hi:
            self.report(
                "invalid-range",
                f"'{low}' ({getattr(spec, low)}) is greater than '{high}' ({getattr(spec, high)})",
                (*path, low),
                f"'{low}' must not exceed '{high}'; swap the two values",
            )

    def _check_routing(self, tname: str, tpl: Template, path: JsonPath) -> None:
        routing = tpl.routing
        assert routing is not None
        if routing.team is not None:
            self.reference("team", routing.team, self.pack.teams, (*path, "team"))
        if routing.role is not None:
            self.reference("role", routing.role, self.roles, (*path, "role"))
        strategies = routing.strategy if isinstance(routing.strategy, list) else [routing.strategy]
        self._check_chain(strategies, (*path, "strategy"))
        if "nearest" in strategies and routing.location_field is None:
            location = [f for f, s in tpl.fields.items() if s.type == "location"]
            if len(location) != 1:
                self.report(
                    "missing-key",
                    "the 'nearest' strategy needs the ticket's location",
                    (*path, "strategy"),
                    "add 'location_field:' naming a location field of the template",
                )
        if routing.location_field is not None and self.field_in_templates(
            routing.location_field, [tname], (*path, "location_field")
        ):
            spec = tpl.fields.get(routing.location_field)
            if spec is not None and spec.type != "location":
                location = [f for f, s in tpl.fields.items() if s.type == "location"]
                self.report(
                    "wrong-field-type",
                    f"'{routing.location_field}' is a {spec.type} field, not a location",
                    (*path, "location_field"),
                    f"use a field of type location ({', '.join(location)})"
                    if location
                    else "add a field with 'type: location' and name it here",
                )
        for field, mapping in routing.skills_from.items():
            fpath = (*path, "skills_from", field)
            if not self.field_in_templates(field, [tname], fpath):
                continue
            options = field_options(tpl.fields[field]) if field in tpl.fields else None
            for value, skills in mapping.items():
                if options is not None and value not in options:
                    self.report(
                        "unknown-option",
                        f"'{value}' is not an option of field '{field}'",
                        (*fpath, value),
                        did_you_mean(value, options) or "options: " + ", ".join(options),
                        key=True,
                    )
                named = enumerate(skills) if isinstance(skills, list) else ((k, k) for k in skills)
                for key, skill in named:
                    self.reference("skill", skill, self.skills, (*fpath, value, key))

    def _check_chain(self, strategies: Sequence[str], path: JsonPath) -> None:
        """round_robin, claim_pool and manual choose the outcome, so they end a chain;
        a strategy twice would only repeat itself."""
        for i, name in enumerate(strategies):
            if name in TERMINAL_STRATEGIES and i < len(strategies) - 1:
                self.report(
                    "invalid-chain",
                    f"'{name}' decides who gets the ticket, so nothing can follow it",
                    (*path, i),
                    f"move '{name}' to the end of the chain",
                )
            if name in strategies[:i]:
                self.report(
                    "invalid-chain", f"'{name}' is in the chain twice", (*path, i), "remove one"
                )

    # -- permissions -----------------------------------------------------------------------
    def check_permissions(self) -> None:
        for role, entry in self.pack.permissions.items():
            base: JsonPath = ("permissions", role)
            self.reference("role", role, self.roles, base, "in permissions", key=True)
            entries = entry if isinstance(entry, list) else [entry]
            for i, perm in enumerate(entries):
                self._check_permission(perm, (*base, i) if isinstance(entry, list) else base)

    def _check_permission(self, perm: Permission, path: JsonPath) -> None:
        for i, tname in enumerate(perm.templates):
            self.reference("template", tname, self.pack.templates, (*path, "templates", i))
        scope = [t for t in perm.templates if t in self.pack.templates]
        if isinstance(perm.create, list):
            for i, tname in enumerate(perm.create):
                self.reference("template", tname, self.pack.templates, (*path, "create", i))
        for key in ("read", "write", "hide"):
            value = getattr(perm, key)
            if isinstance(value, list):
                for i, field in enumerate(value):
                    self.field_anywhere(field, scope, (*path, key, i))
        workflows = {self.pack.templates[t].workflow for t in scope or self.pack.templates}
        states = {
            s for w in workflows if w in self.pack.workflows for s in self.pack.workflows[w].states
        }
        for state, sp in perm.states.items():
            spath = (*path, "states", state)
            if not self._broken(scope or self.pack.templates):
                self.reference("state", state, states, spath)
            for key in ("read", "write"):
                value = getattr(sp, key)
                if isinstance(value, list):
                    for i, field in enumerate(value):
                        self.field_anywhere(field, scope, (*spath, key, i))

    # -- rules and actions -----------------------------------------------------------------
    def _scope(self, templates: list[str], path: JsonPath) -> list[str]:
        for i, tname in enumerate(templates):
            self.reference("template", tname, self.pack.templates, (*path, i))
        return [t for t in templates if t in self.pack.templates] or list(self.pack.templates)

    def _broken(self, templates: Iterable[str]) -> bool:
        """True when a template's workflow is unknown: its states cannot be checked, and
        that error is already reported once."""
        return any(self.pack.templates[t].workflow not in self.pack.workflows for t in templates)

    def _states_of(self, templates: Iterable[str]) -> set[str]:
        return {
            s
            for t in templates
            if (wf := self.pack.workflows.get(self.pack.templates[t].workflow)) is not None
            for s in wf.states
        }

    def _transitions_of(self, templates: Iterable[str]) -> set[str]:
        return {
            n
            for t in templates
            if (wf := self.pack.workflows.get(self.pack.templates[t].workflow)) is not None
            for n in wf.transitions
        }

    def check_rule_cycles(self) -> None:
        if any(d.is_error for d in self.diagnostics):
            return  # cycles are only meaningful once every reference resolves
        for cycle in unconditional_cycles(self.pack):
            self.report(
                "rule-cycle",
                "rules set each other off without end: " + " → ".join(cycle),
                ("rules", cycle[0]),
                "give one of them an `if:` condition its own actions make false, "
                "or a delay (`after:`)",
                key=True,
            )

    def check_rule(self, name: str, rule: Rule) -> None:
        base: JsonPath = ("rules", name)
        scope = self._scope(rule.templates, (*base, "templates"))
        trig, tpath = rule.on, (*base, "on")
        if isinstance(trig, EnteredTrigger | LeftTrigger):
            state = trig.entered if isinstance(trig, EnteredTrigger) else trig.left
            key = "entered" if isinstance(trig, EnteredTrigger) else "left"
            if not self._broken(scope):
                self.reference("state", state, self._states_of(scope), (*tpath, key))
        elif isinstance(trig, TransitionedTrigger) and not self._broken(scope):
            self.reference(
                "transition",
                trig.transitioned,
                self._transitions_of(scope),
                (*tpath, "transitioned"),
            )
        elif isinstance(trig, UpdatedTrigger):
            for i, field in enumerate(trig.updated):
                self.field_anywhere(field, scope, (*tpath, "updated", i))
        elif isinstance(trig, ScheduleTrigger):
            self._check_cron(trig.schedule, (*tpath, "schedule"))
            self._check_scheduled_actions(rule, base)
            if trig.calendar is not None:
                self.reference("calendar", trig.calendar, self.pack.calendars, (*tpath, "calendar"))
        elif isinstance(trig, SlaTrigger) and trig.metric is not None:
            self.reference("SLA metric", trig.metric, self._all_metrics(), (*tpath, "metric"))
        for i, action in enumerate(rule.do):
            self.check_action(action, (*base, "do", i), scope)

    def _check_scheduled_actions(self, rule: Rule, base: JsonPath) -> None:
        """A scheduled rule runs without a ticket: only actions that need none can run."""
        for i, action in enumerate(rule.do):
            kind = next(iter(type(action).model_fields))
            if kind not in SCHEDULED_ACTIONS:
                self.report(
                    "needs-ticket",
                    f"a scheduled rule has no ticket to {kind.replace('_', ' ')}",
                    (*base, "do", i),
                    "on a schedule use create_ticket, notify or webhook; "
                    "act on the new ticket with a rule `on: created`",
                    key=True,
                )
            elif kind == "notify":
                self._check_scheduled_recipients(action, (*base, "do", i, "notify", "to"))

    def _check_scheduled_recipients(self, action: Any, path: JsonPath) -> None:
        targets = action.notify.to if isinstance(action.notify.to, list) else [action.notify.to]
        for target in targets:
            if not target.startswith(("role:", "team:", "user:")):
                self.report(
                    "needs-ticket",
                    f"a scheduled rule has no ticket, so no '{target}' to notify",
                    path,
                    "notify role:<name>, team:<name> or user:<id>",
                )

    def _all_metrics(self) -> set[str]:
        return set(STANDARD_METRICS) | {m for p in self.pack.sla.values() for m in p.metrics}

    def _check_cron(self, expr: str, path: JsonPath) -> None:
        ranges = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
        names = ("minute", "hour", "day of month", "month", "day of week")
        week = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
        months = {
            m: i + 1
            for i, m in enumerate(
                ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
            )
        }
        for part, (lo, hi), what, words in zip(
            expr.split(), ranges, names, ({}, {}, {}, months, week), strict=True
        ):
            for item in part.split(","):
                body, _, step = item.partition("/")
                if step and not step.isdigit():
                    self._bad_cron(expr, what, item, path)
                    return
                if body == "*":
                    continue
                for bound in body.split("-"):
                    value = words.get(bound.lower()) if not bound.isdigit() else int(bound)
                    if value is None or not lo <= value <= hi:
                        self._bad_cron(expr, what, item, path)
                        return

    def _bad_cron(self, expr: str, what: str, item: str, path: JsonPath) -> None:
        self.report(
            "invalid-schedule",
            f"invalid {what} '{item}' in schedule '{expr}'",
            path,
            "cron fields are: minute hour day-of-month month day-of-week, e.g. '0 8 * * MON'",
        )

    def check_action(self, action: Action, path: JsonPath, scope: list[str]) -> None:
        """Check what an action refers to, against the templates it can run on."""
        if isinstance(action, SetAction):
            for field in action.set:
                self.field_anywhere(field, scope, (*path, "set", field))
        elif isinstance(action, TransitionAction) and not self._broken(scope):
            name = (
                action.transition
                if isinstance(action.transition, str)
                else (action.transition.name)
            )
            tpath = (*path, "transition") + (
                () if isinstance(action.transition, str) else ("name",)
            )
            self.reference("transition", name, self._transitions_of(scope), tpath)
        elif isinstance(action, AssignAction):
            spec = action.assign
            if spec.to is not None and ASSIGNEE.match(spec.to) is None:
                self.report(
                    "invalid-assignee",
                    f"a ticket cannot be assigned to '{spec.to}'",
                    (*path, "assign", "to"),
                    "use requester, assignee, role:<name>, team:<name> or user:<id>",
                )
            elif spec.to is not None:
                self._check_recipient(spec.to, (*path, "assign", "to"), scope)
            if spec.team is not None:
                self.reference("team", spec.team, self.pack.teams, (*path, "assign", "team"))
            if spec.to is None and spec.strategy not in (None, "manual"):
                self.assigns_by_strategy = True
            if isinstance(spec.strategy, list):
                self._check_chain(spec.strategy, (*path, "assign", "strategy"))
        elif isinstance(action, NotifyAction):
            for to, suffix in _items(action.notify.to):
                self._check_recipient(to, (*path, "notify", "to", *suffix), scope)
            if action.notify.message is not None:
                self._message(action.notify.message, (*path, "notify", "message"))
        elif isinstance(action, CommentAction):
            self._message(action.comment.message, (*path, "comment", "message"))
        elif isinstance(action, CreateTicketAction):
            spec_t = action.create_ticket
            cpath = (*path, "create_ticket")
            if self.reference(
                "template", spec_t.template, self.pack.templates, (*cpath, "template")
            ):
                for field in spec_t.fields:
                    self.field_in_templates(field, [spec_t.template], (*cpath, "fields", field))
        elif isinstance(action, ScheduleAction):
            self.scheduled_events.add(action.schedule.event)
        elif isinstance(action, RaisePriorityAction):
            self._check_raise(action, (*path, "raise_priority"), scope)

    def _check_raise(self, action: RaisePriorityAction, path: JsonPath, scope: list[str]) -> None:
        spec = action.raise_priority
        if not self.field_anywhere(spec.field, scope, (*path, "field")):
            return
        for tname in scope:
            options = field_options(self.fields_of(tname).get(spec.field))
            if options is None:
                continue
            if spec.to is not None and spec.to not in options:
                self.report(
                    "unknown-option",
                    f"'{spec.to}' is not an option of '{spec.field}' in template '{tname}'",
                    (*path, "to"),
                    did_you_mean(spec.to, options) or "options: " + ", ".join(options),
                )
                return

    def _check_recipient(self, to: str, path: JsonPath, scope: Sequence[str] | None = None) -> None:
        m = RECIPIENT.match(to)
        if m is None:
            self.report(
                "invalid-recipient",
                f"'{to}' is not a recipient",
                path,
                "use requester, assignee, watchers, mentioned, team_lead, role:<name>, "
                "team:<name>, user:<id> or field:<user field>",
            )
            return
        kind, name = m.group(2), m.group(3)
        if kind == "role":
            self.reference("role", name, self.roles, path)
        elif kind == "team":
            self.reference("team", name, self.pack.teams, path)
        elif kind == "field":
            self._check_user_field(name, list(scope or self.pack.templates), path)

    def _check_user_field(self, name: str, scope: list[str], path: JsonPath) -> None:
        """`field:<name>` names the person in a `user` field of the ticket."""
        if not self.field_anywhere(name, scope, path):
            return
        for tname in scope:
            spec = self.fields_of(tname).get(name)
            if spec is not None and spec.type != "user":
                self.report(
                    "wrong-field-type",
                    f"'{name}' is a {spec.type} field; field:<name> needs a user field",
                    path,
                    "name a field with 'type: user'",
                )
                return

    def _message(self, name: str, path: JsonPath) -> None:
        self.used_messages.add(name)
        self.reference("message", name, self.pack.messages, path)

    # -- SLA -------------------------------------------------------------------------------
    def check_sla(self, name: str, policy: SlaPolicy) -> None:
        base: JsonPath = ("sla", name)
        if policy.calendar is not None:
            self.reference("calendar", policy.calendar, self.pack.calendars, (*base, "calendar"))
        users = [t for t, tpl in self.pack.templates.items() if name in tpl.sla]
        metrics = set(STANDARD_METRICS) | set(policy.metrics)
        for metric, target in policy.targets.items():
            mpath = (*base, "targets", metric)
            if metric not in metrics:
                self.report(
                    "unknown-reference",
                    f"unknown SLA metric '{metric}'",
                    mpath,
                    did_you_mean(metric, metrics)
                    or "use first_response, next_response, resolution, or define it under "
                    "'metrics:'",
                    key=True,
                )
            if isinstance(target, dict):
                self._check_priority_targets(policy, target, mpath, users)
        scope = users or list(self.pack.templates)
        for i, state in enumerate(policy.pause_in):
            if not self._broken(scope):
                self.reference("state", state, self._states_of(scope), (*base, "pause_in", i))
        for key in ("on_warning", "on_breach"):
            for i, action in enumerate(getattr(policy, key)):
                self.check_action(action, (*base, key, i), users or list(self.pack.templates))
        for i, level in enumerate(policy.escalations):
            lpath = (*base, "escalations", i)
            self._check_escalation_at(level.at, (*lpath, "at"))
            if level.metric is not None:
                self.reference("SLA metric", level.metric, metrics, (*lpath, "metric"))
            for j, action in enumerate(level.do):
                self.check_action(action, (*lpath, "do", j), users or list(self.pack.templates))

    def _check_priority_targets(
        self, policy: SlaPolicy, target: dict[str, str], path: JsonPath, users: list[str]
    ) -> None:
        policy_path = path[:2]
        explicit = self.source.value((*policy_path, "priority_field")) is not None
        for tname in users:
            fields = self.fields_of(tname)
            spec = fields.get(policy.priority_field)
            if spec is None:
                choices = [f for f, sp in fields.items() if field_options(sp) is not None]
                self.report(
                    "unknown-reference",
                    f"unknown priority field '{policy.priority_field}': template '{tname}' "
                    "has no such field",
                    (*policy_path, "priority_field") if explicit else path,
                    did_you_mean(policy.priority_field, choices)
                    or (
                        f"choice fields of '{tname}': {', '.join(choices)}"
                        if choices
                        else "add a choice field for the priority to the template"
                    ),
                )
                return
            options = field_options(spec) if spec.type == "choice" else None
            if options is None:
                self.report(
                    "wrong-field-type",
                    f"priority field '{policy.priority_field}' of template '{tname}' is not a "
                    "choice",
                    path,
                )
                return
            for option in target:
                if option not in options:
                    self.report(
                        "unknown-option",
                        f"'{option}' is not an option of '{policy.priority_field}' "
                        f"in template '{tname}'",
                        (*path, option),
                        did_you_mean(option, options) or "options: " + ", ".join(options),
                        key=True,
                    )
            missing = [o for o in dict.fromkeys(options) if o not in target]
            # With applies_if the policy may cover only some priorities; do not guess.
            if missing and policy.applies_if is None:
                self.report(
                    "missing-target",
                    f"no target for {', '.join(missing)} (template '{tname}')",
                    path,
                    "give every priority a target, or one duration for all",
                    warning=True,
                )

    def _check_escalation_at(self, at: str, path: JsonPath) -> None:
        text = at.replace(" ", "")
        if text.endswith("%"):
            if not 0 < float(text[:-1]) <= 100:
                self.report(
                    "invalid-percent",
                    f"'{at}' must be between 0% and 100%",
                    path,
                    "for a level after the breach write 'breach + 2h'",
                )
        elif text.startswith("breach+"):
            try:
                parse_duration(text[len("breach+") :])
            except ValueError:
                self.report(
                    "invalid-duration",
                    f"invalid duration after 'breach +' in '{at}'",
                    path,
                    "e.g. 'breach + 2h'",
                )

    # -- messages, unused definitions, translations ----------------------------------------
    def check_messages(self) -> None:
        for name, reply in self.pack.canned_replies.items():
            for i, tname in enumerate(reply.templates):
                self.reference(
                    "template", tname, self.pack.templates, ("canned_replies", name, "templates", i)
                )

    def check_unused(self) -> None:
        used_wf = {t.workflow for t in self.pack.templates.values()}
        dangling_wf = used_wf - set(self.pack.workflows)
        for name in self.pack.workflows:
            # A misspelt reference already says "did you mean"; "unused" would repeat it.
            if name not in used_wf and not did_you_mean(name, dangling_wf):
                self.report(
                    "unused",
                    f"workflow '{name}' is not used by any template",
                    ("workflows", name),
                    key=True,
                    warning=True,
                )
        used_sla = {p for t in self.pack.templates.values() for p in t.sla}
        dangling_sla = used_sla - set(self.pack.sla)
        for name in self.pack.sla:
            if name not in used_sla and not did_you_mean(name, dangling_sla):
                self.report(
                    "unused",
                    f"SLA policy '{name}' is not used by any template",
                    ("sla", name),
                    key=True,
                    warning=True,
                )
        raised = self.scheduled_events | self._runtime_events()
        for name, rule in self.pack.rules.items():
            trig = rule.on
            if isinstance(trig, EventTrigger) and trig.event not in raised:
                self.report(
                    "unused",
                    f"no action schedules event '{trig.event}', so rule '{name}' never fires",
                    ("rules", name, "on", "event"),
                    did_you_mean(trig.event, self.scheduled_events)
                    or "raise it with an action: {schedule: {event: "
                    f"{trig.event}, after: 24h}}}}",
                    warning=True,
                )

    def _runtime_events(self) -> set[str]:
        """Events the runtime raises itself: `unrouted` when a routing strategy finds
        nobody (templates with automatic routing, or assign actions with a strategy)."""
        routed = any(
            t.routing is not None and t.routing.strategy != "manual"
            for t in self.pack.templates.values()
        )
        return {"unrouted"} if routed or self.assigns_by_strategy else set()

    def check_translations(self) -> None:
        expected = list(dict.fromkeys(self.pack.locales))
        for path, text in _localized(self.pack, ()):
            if not text:
                self.report(
                    "empty-text",
                    "no text is given here",
                    path,
                    f"write the text per locale, e.g. {{{expected[0]}: ...}}",
                )
                continue
            missing = [loc for loc in expected if loc not in text]
            if missing and len(missing) < len(expected):
                self.report(
                    "missing-translation",
                    f"no {', '.join(missing)} text here, while the pack's locales are "
                    f"{', '.join(expected)}",
                    path,
                    "add the missing translation",
                    warning=True,
                )
            for loc in text:
                if loc not in expected:
                    self.report(
                        "unknown-locale",
                        f"locale '{loc}' is not among the pack's locales ({', '.join(expected)})",
                        (*path, loc),
                        did_you_mean(loc, expected) or "add it to 'locales:'",
                        key=True,
                        warning=True,
                    )


def _localized(node: Any, path: JsonPath) -> Iterable[tuple[JsonPath, dict[str, str]]]:
    """Every text-per-locale mapping in the model, with its data path."""
    if isinstance(node, BaseModel):
        for name, info in type(node).model_fields.items():
            value = getattr(node, name)
            key = info.alias or name
            if key in LOCALIZED_KEYS and isinstance(value, dict):
                yield (*path, key), value
            elif key == "messages" and isinstance(value, dict):
                for mname, text in value.items():
                    if isinstance(text, dict):
                        yield (*path, key, mname), text
            else:
                yield from _localized(value, (*path, key))
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _localized(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _localized(v, (*path, i))


def _minute(clock: str) -> int:
    parsed = parse_clock(clock)
    return 24 * 60 if parsed is None else parsed.hour * 60 + parsed.minute


_COUNTRIES: dict[str, list[str]] | None = None


def _holiday_countries() -> dict[str, list[str]]:
    global _COUNTRIES
    if _COUNTRIES is None:
        import holidays

        _COUNTRIES = {k: list(v) for k, v in holidays.list_supported_countries().items()}
    return _COUNTRIES


def check_pack(pack: Pack, source: SourceMap) -> list[Diagnostic]:
    """All semantic diagnostics of a validated pack."""
    return PackChecker(pack, source).run()


__all__ = ["BUILTIN_FIELDS", "PackChecker", "check_pack", "option_values"]
