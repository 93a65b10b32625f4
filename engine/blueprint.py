"""The compiled blueprint: a validated pack turned into the immutable structure the runtime
executes, so no command re-reads the model, re-parses an expression or rebuilds a schema.

Compile once per published pack version; tickets are pinned to their version's blueprint.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from zoneinfo import ZoneInfo

from dsl.expressions import parse_expression
from engine.expr_eval import Compiled, compile_expression
from engine.fields import ComputedField, FieldSpec, LocalizedText
from engine.model import (
    Action,
    EnteredTrigger,
    EventTrigger,
    LeftTrigger,
    Pack,
    Permission,
    Role,
    Rule,
    ScheduleTrigger,
    ScopeCondition,
    SlaTrigger,
    State,
    Template,
    TransitionedTrigger,
    UpdatedTrigger,
    Workflow,
)
from engine.values import parse_duration

if TYPE_CHECKING:
    from engine.form_schema import TemplateForm

T = TypeVar("T")
ALL = "*"
SYSTEM_ROLE = "system"


@dataclass(frozen=True, slots=True)
class Condition:
    """A checked expression, compiled; `text` is kept for explanations."""

    text: str
    run: Compiled

    @classmethod
    def build(cls, text: str, fields: frozenset[str]) -> Condition:
        return cls(text, compile_expression(parse_expression(text), fields))

    def holds(self, env: Mapping[str, Any]) -> bool:
        return bool(self.run(env))


def _maybe(text: str | None, fields: frozenset[str]) -> Condition | None:
    return Condition.build(text, fields) if text else None


# -- workflows ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """A validation of a transition: a false condition refuses it with `message`."""

    condition: Condition
    message: LocalizedText


@dataclass(frozen=True, slots=True)
class TransitionBp:
    """One transition, ready to check and take."""

    name: str
    title: LocalizedText | None
    sources: frozenset[str]
    to: str
    roles: frozenset[str]  # empty: any staff role
    only: Literal["assignee", "requester"] | None
    requires: tuple[str, ...]
    form: tuple[str, ...]
    guard: Condition | None
    checks: tuple[Check, ...]
    comment: Literal["required", "optional", "none"]
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class WorkflowBp:
    """States and transitions, indexed by (state, name) and by state."""

    name: str
    initial: str
    states: Mapping[str, State]
    finals: frozenset[str]
    index: Mapping[tuple[str, str], TransitionBp]
    by_state: Mapping[str, tuple[TransitionBp, ...]]

    def transition(self, state: str, name: str) -> TransitionBp | None:
        return self.index.get((state, name))

    def names(self) -> frozenset[str]:
        return frozenset(name for _, name in self.index)


def _sources(value: Any, wf: Workflow) -> frozenset[str]:
    items = value if isinstance(value, list) else [value]
    if ALL in items:
        return frozenset(s for s, st in wf.states.items() if not st.final)
    return frozenset(items)


def compile_workflow(name: str, wf: Workflow, fields: frozenset[str]) -> WorkflowBp:
    index: dict[tuple[str, str], TransitionBp] = {}
    by_state: dict[str, list[TransitionBp]] = defaultdict(list)
    for tname, tr in wf.transitions.items():
        bp = TransitionBp(
            name=tname,
            title=tr.title,
            sources=_sources(tr.from_, wf),
            to=tr.to,
            roles=frozenset(tr.roles),
            only=tr.only,
            requires=tuple(tr.requires),
            form=tuple(tr.form),
            guard=_maybe(tr.when, fields),
            checks=tuple(Check(Condition.build(v.check, fields), v.message) for v in tr.validate_),
            comment=tr.comment,
            actions=tuple(tr.do),
        )
        for state in sorted(bp.sources):
            index[(state, tname)] = bp
            by_state[state].append(bp)
    return WorkflowBp(
        name=name,
        initial=wf.initial,
        states=MappingProxyType(dict(wf.states)),
        finals=frozenset(s for s, st in wf.states.items() if st.final),
        index=MappingProxyType(index),
        by_state=MappingProxyType({s: tuple(ts) for s, ts in by_state.items()}),
    )


# -- templates ------------------------------------------------------------------------------


_UTC = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class TemplateBp:
    """A template with its workflow, form validator and field rules compiled."""

    name: str
    model: Template
    workflow: WorkflowBp
    fields: Mapping[str, FieldSpec]
    field_names: frozenset[str]
    form: TemplateForm
    required: tuple[str, ...]  # required on create
    required_in: Mapping[str, tuple[str, ...]]  # state → fields required while in it
    required_if: tuple[tuple[str, Condition], ...]
    readonly_if: Mapping[str, Condition]
    visible_if: Mapping[str, Condition]
    computed: tuple[tuple[str, Condition], ...]  # in declaration order
    # The pack's time zone: `now` in conditions is local, so a date compares with today's
    # date where the tickets are, not in UTC.
    tz: ZoneInfo = _UTC


def compile_template(pack: Pack, name: str, tpl: Template) -> TemplateBp:
    from engine.form_schema import TemplateForm

    names = frozenset(tpl.fields)
    required_in: dict[str, list[str]] = defaultdict(list)
    for fname, spec in tpl.fields.items():
        for state in spec.required_in:
            required_in[state].append(fname)

    def conditions(attr: str) -> dict[str, Condition]:
        return {
            fname: Condition.build(getattr(spec, attr), names)
            for fname, spec in tpl.fields.items()
            if getattr(spec, attr)
        }

    return TemplateBp(
        name=name,
        model=tpl,
        workflow=compile_workflow(tpl.workflow, pack.workflows[tpl.workflow], names),
        fields=MappingProxyType(dict(tpl.fields)),
        field_names=names,
        form=TemplateForm.build(pack, name),
        required=tuple(f for f, spec in tpl.fields.items() if spec.required),
        required_in=MappingProxyType({s: tuple(fs) for s, fs in required_in.items()}),
        required_if=tuple(conditions("required_if").items()),
        readonly_if=MappingProxyType(conditions("readonly_if")),
        visible_if=MappingProxyType(conditions("visible_if")),
        computed=tuple(
            (fname, Condition.build(spec.expr, names))
            for fname, spec in tpl.fields.items()
            if isinstance(spec, ComputedField)
        ),
        tz=ZoneInfo(pack.timezone),
    )


# -- permissions ----------------------------------------------------------------------------

FieldSet = frozenset[str] | None  # None: every field


def _field_set(value: Any) -> FieldSet:
    return None if value == ALL else frozenset(value)


@dataclass(frozen=True, slots=True)
class Grant:
    """One permission entry of a role, compiled."""

    role: str
    templates: frozenset[str] | None  # None: every template
    see: tuple[str, ...]  # own, assigned, team, all
    see_if: Condition | None
    create: FieldSet
    read: FieldSet
    write: FieldSet
    hide: frozenset[str]
    states: Mapping[str, tuple[FieldSet | Literal[False], FieldSet | Literal[False]]]

    def covers(self, template: str) -> bool:
        return self.templates is None or template in self.templates


def _grant(role: str, perm: Permission, fields: frozenset[str]) -> Grant:
    see: tuple[str, ...]
    see_if = None
    if isinstance(perm.see, ScopeCondition):
        see, see_if = (), Condition.build(perm.see.condition, fields)
    else:
        scopes = perm.see if isinstance(perm.see, list) else [perm.see]
        see = tuple(s for s in scopes if s != "none")
    states: dict[str, tuple[FieldSet | Literal[False], FieldSet | Literal[False]]] = {
        state: (
            False if sp.read is None else _field_set(sp.read),
            False if sp.write is None else _field_set(sp.write),
        )
        for state, sp in perm.states.items()
    }
    return Grant(
        role=role,
        templates=frozenset(perm.templates) or None,
        see=see,
        see_if=see_if,
        create=_field_set(perm.create),
        read=_field_set(perm.read),
        write=_field_set(perm.write),
        hide=frozenset(perm.hide),
        states=MappingProxyType(states),
    )


def _all_field_names(pack: Pack) -> frozenset[str]:
    return frozenset(f for tpl in pack.templates.values() for f in tpl.fields)


def compile_grants(pack: Pack) -> Mapping[str, tuple[Grant, ...]]:
    names = _all_field_names(pack)
    grants: dict[str, tuple[Grant, ...]] = {}
    for role, perms in pack.permissions.items():
        items = perms if isinstance(perms, list) else [perms]
        grants[role] = tuple(_grant(role, p, names) for p in items)
    return MappingProxyType(grants)


# -- rules ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleBp:
    """A rule with its trigger reduced to an event key and its condition compiled.

    Event keys: `created`, `updated`, `transitioned`, `transitioned:<name>`,
    `entered:<state>`, `left:<state>`, `commented`, `assigned`, `sla.warning`,
    `sla.breached`, `event:<name>`, `schedule`.
    """

    name: str
    priority: int
    event: str
    fields: frozenset[str]  # for `updated: [...]`: fires only when one of these changed
    after: timedelta | None
    metric: str | None  # for sla triggers: only this metric
    cron: str | None
    calendar: str | None
    templates: frozenset[str] | None
    condition: Condition | None
    actions: tuple[Action, ...]

    @property
    def order(self) -> tuple[int, str]:
        """Higher priority first, then by name: never by declaration order."""
        return (-self.priority, self.name)


def _event_key(rule: Rule) -> tuple[str, frozenset[str], timedelta | None]:
    on = rule.on
    if isinstance(on, str):
        return on, frozenset(), None
    if isinstance(on, EnteredTrigger):
        return f"entered:{on.entered}", frozenset(), _delay(on.after)
    if isinstance(on, LeftTrigger):
        return f"left:{on.left}", frozenset(), _delay(on.after)
    if isinstance(on, TransitionedTrigger):
        return f"transitioned:{on.transitioned}", frozenset(), _delay(on.after)
    if isinstance(on, UpdatedTrigger):
        return "updated", frozenset(on.updated), None
    if isinstance(on, EventTrigger):
        return f"event:{on.event}", frozenset(), None
    if isinstance(on, SlaTrigger):
        return f"sla.{on.sla}", frozenset(), None
    return "schedule", frozenset(), None


def _delay(after: str | None) -> timedelta | None:
    return parse_duration(after) if after else None


def compile_rule(name: str, rule: Rule, fields: frozenset[str]) -> RuleBp:
    event, watched, after = _event_key(rule)
    on = rule.on
    return RuleBp(
        name=name,
        priority=rule.priority,
        event=event,
        fields=watched,
        after=after,
        metric=on.metric if isinstance(on, SlaTrigger) else None,
        cron=on.schedule if isinstance(on, ScheduleTrigger) else None,
        calendar=on.calendar if isinstance(on, ScheduleTrigger) else None,
        templates=frozenset(rule.templates) or None,
        condition=_maybe(rule.condition, fields),
        actions=tuple(rule.do),
    )


def index_rules(
    rules: list[RuleBp], templates: list[str]
) -> Mapping[tuple[str, str], tuple[RuleBp, ...]]:
    """Rules by (event key, template), each list in execution order."""
    index: dict[tuple[str, str], list[RuleBp]] = defaultdict(list)
    for rule in rules:
        for tpl in templates:
            if rule.templates is None or tpl in rule.templates:
                index[(rule.event, tpl)].append(rule)
    return MappingProxyType(
        {key: tuple(sorted(found, key=lambda r: r.order)) for key, found in index.items()}
    )


# -- the blueprint --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Blueprint:
    """Everything the runtime needs of one pack version."""

    pack: str
    version: int
    model: Pack
    templates: Mapping[str, TemplateBp]
    roles: frozenset[str]
    staff_roles: frozenset[str]
    grants: Mapping[str, tuple[Grant, ...]]
    rules: Mapping[tuple[str, str], tuple[RuleBp, ...]]
    scheduled: tuple[RuleBp, ...]
    rules_by_name: Mapping[str, RuleBp]
    messages: Mapping[str, LocalizedText]
    teams: frozenset[str] = field(default_factory=frozenset)
    # Derived answers (e.g. the fields a set of roles may write in a state), computed on
    # first use: the blueprint never changes, so neither do they.
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def rules_for(self, event: str, template: str) -> tuple[RuleBp, ...]:
        return self.rules.get((event, template), ())

    def memoised(self, key: Any, compute: Callable[[], T]) -> T:
        """`compute()` the first time `key` is asked for, the stored answer after."""
        if key not in self.memo:
            self.memo[key] = compute()
        return cast(T, self.memo[key])


def _staff_roles(pack: Pack) -> frozenset[str]:
    if isinstance(pack.roles, list):
        return frozenset(pack.roles)
    return frozenset(name for name, role in pack.roles.items() if _is_staff(role))


def _is_staff(role: Role) -> bool:
    return role.staff


def compile_pack(pack: Pack, version: int = 0) -> Blueprint:
    """Compile a validated pack (one whose load had no errors)."""
    templates = {name: compile_template(pack, name, tpl) for name, tpl in pack.templates.items()}
    names = _all_field_names(pack)
    rules = [compile_rule(n, r, names) for n, r in pack.rules.items() if r.enabled]
    return Blueprint(
        pack=pack.pack,
        version=version,
        model=pack,
        templates=MappingProxyType(templates),
        roles=frozenset(pack.role_names()),
        staff_roles=_staff_roles(pack),
        grants=compile_grants(pack),
        rules=index_rules(rules, list(templates)),
        scheduled=tuple(sorted((r for r in rules if r.cron), key=lambda r: r.order)),
        rules_by_name=MappingProxyType({r.name: r for r in rules}),
        messages=MappingProxyType(dict(pack.messages)),
        teams=frozenset(pack.teams),
    )
