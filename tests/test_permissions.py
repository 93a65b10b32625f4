"""Permissions of the example packs, checked generically against the runtime.

For every pack under `examples/workflows/`, every role and every template, what the role may
do is derived from the pack's own model (its `permissions`, `roles` and workflow
transitions), never written down per pack, and then tried on the runtime:

- create: allowed iff one of the role's permission entries covering the template lists it
  (or `*`) under `create`; otherwise PermissionDenied naming the template;
- transitions: a role outside a transition's `roles` (outside the staff roles when `roles`
  is empty) gets PermissionDenied naming the roles that may take it, and nothing changes;
  a listed role takes it;
- fields: hidden fields (`hide`, or not covered by `read`) are absent from `get`, `query`
  items, the timeline and command results; fields outside `write` cannot be changed;
- tickets the role may not see (another requester, not assigned, another team, a
  condition that does not hold) and tickets of another tenant are NotFound on every method
  and absent from `query`.

Tickets are driven to a state by `Actor.system()` (which bypasses role checks) with sample
values built per field *type* from the template's form. The visibility tests run on every
store (PostgreSQL when TICKETFLOW_TEST_DATABASE_URL is set); command checks on the
in-memory store.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import pytest
from runtime_fixtures import PG_URL, START, pg_schema_url

from engine.blueprint import (
    Blueprint,
    Condition,
    TemplateBp,
    TransitionBp,
    WorkflowBp,
    compile_pack,
)
from engine.fields import field_options
from engine.form_schema import table_columns
from engine.load import load_pack_path
from engine.model import Pack, Permission, ScopeCondition
from runtime.actors import Actor
from runtime.api import Runtime
from runtime.clock import ManualClock
from runtime.records import NotFound, PermissionDenied, TicketflowError
from runtime.tickets import Ticket, build_env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "workflows"
PACK_NAMES = ("retail_store", "manufacturing", "property")
OTHER_TENANT = "elsewhere"
SYSTEM = Actor.system()
STRANGER = "someone-else"  # requester / assignee of tickets a test actor must not see
ASSIGNMENT = frozenset({"assignee", "team"})
COMMENT = "Checked on site"


def _load(name: str) -> Pack:
    result = load_pack_path(EXAMPLES / name)
    assert result.pack is not None, f"example pack {name} does not load"
    return result.pack


PACKS: dict[str, Pack] = {name: _load(name) for name in PACK_NAMES}
BLUEPRINTS: dict[str, Blueprint] = {name: compile_pack(pack, 1) for name, pack in PACKS.items()}


# -- what the pack's model says --------------------------------------------------------------


def entries(pack: Pack, role: str, template: str) -> list[Permission]:
    """The role's permission entries that cover the template."""
    found = pack.permissions.get(role)
    items = [] if found is None else found if isinstance(found, list) else [found]
    return [p for p in items if not p.templates or template in p.templates]


def may_create(pack: Pack, role: str, template: str) -> bool:
    return any(p.create == "*" or template in p.create for p in entries(pack, role, template))


def is_staff(pack: Pack, role: str) -> bool:
    return isinstance(pack.roles, list) or pack.roles[role].staff


def scopes(pack: Pack, role: str, template: str) -> set[str]:
    out: set[str] = set()
    for p in entries(pack, role, template):
        if not isinstance(p.see, ScopeCondition):
            out |= set(p.see if isinstance(p.see, list) else [p.see]) - {"none"}
    return out


def see_conditions(pack: Pack, role: str, template: str) -> list[str]:
    return [p.see.condition for p in entries(pack, role, template) if isinstance(p.see, ScopeCondition)]


def _selection(value: Any, universe: frozenset[str]) -> frozenset[str]:
    return universe if value == "*" else frozenset(value) & universe


def readable(pack: Pack, role: str, template: str, state: str) -> frozenset[str]:
    universe = frozenset(pack.templates[template].fields)
    out: set[str] = set()
    for p in entries(pack, role, template):
        override = p.states.get(state)
        read = override.read if override is not None and override.read is not None else p.read
        out |= _selection(read, universe) - set(p.hide)
    return frozenset(out)


def writable(pack: Pack, role: str, template: str, state: str) -> frozenset[str]:
    universe = frozenset(pack.templates[template].fields) | ASSIGNMENT
    out: set[str] = set()
    for p in entries(pack, role, template):
        override = p.states.get(state)
        write = override.write if override is not None and override.write is not None else p.write
        out |= _selection(write, universe) - set(p.hide)
    return frozenset(out)


def may_take(pack: Pack, role: str, template: str, transition: str) -> bool:
    tr = pack.workflows[pack.templates[template].workflow].transitions[transition]
    return role in tr.roles if tr.roles else is_staff(pack, role)


def visible(rt: Runtime, pack: Pack, role: str, actor: Actor, ticket: Ticket) -> bool:
    """Whether the model lets `actor` (in `role`) see the ticket as it now stands."""
    allowed = scopes(pack, role, ticket.template)
    if "all" in allowed:
        return True
    if "own" in allowed and ticket.requester == actor.id:
        return True
    if "assigned" in allowed and ticket.assignee in (actor.id, f"role:{role}"):
        return True
    if "team" in allowed and ticket.team is not None and ticket.team in actor.teams:
        return True
    texts = see_conditions(pack, role, ticket.template)
    if not texts:
        return False
    with rt.store.read() as tx:
        row = tx.get_ticket("default", ticket.id)
    assert row is not None
    tpl = rt.blueprint("default", row.pack, row.pack_version).templates[row.template]
    env = build_env(row, tpl, actor, START)
    return any(Condition.build(text, tpl.field_names).holds(env) for text in texts)


# -- sample values, by field type ------------------------------------------------------------


def regex_sample(pattern: str) -> str:
    """A short string matching `pattern` (the first alternative, fewest repeats)."""

    def one_of(items: list[Any]) -> str:
        if items and items[0][0] is sre.NEGATE:
            return next(c for c in "a0A_-." if not re.fullmatch(_class_text(items), c))
        for op, av in items:
            if op is sre.LITERAL:
                return chr(av)
            if op is sre.RANGE:
                return chr(av[0])
            if op is sre.CATEGORY:
                return {sre.CATEGORY_DIGIT: "0", sre.CATEGORY_SPACE: " "}.get(av, "a")
        return "a"

    def _class_text(items: list[Any]) -> str:
        return "[^" + "".join(re.escape(chr(av)) for op, av in items if op is sre.LITERAL) + "]"

    def walk(items: Any) -> str:
        out = []
        for op, av in items:
            if op is sre.LITERAL:
                out.append(chr(av))
            elif op is sre.NOT_LITERAL:
                out.append("b" if av == ord("a") else "a")
            elif op is sre.ANY:
                out.append("a")
            elif op is sre.IN:
                out.append(one_of(av))
            elif op is sre.CATEGORY:
                out.append(one_of([(op, av)]))
            elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
                out.append(walk(av[2]) * av[0])
            elif op is sre.SUBPATTERN:
                out.append(walk(av[-1]))
            elif op is sre.BRANCH:
                out.append(walk(av[1][0]))
            elif op is not sre.AT:
                raise ValueError(f"no sample for {op} in {pattern!r}")
        return "".join(out)

    text = walk(sre_parse.parse(pattern))
    assert re.search(pattern, text), f"sample {text!r} does not match {pattern!r}"
    return text


def sample(spec: Any, teams: frozenset[str]) -> Any:
    """A valid value for a field or table column, by its type and constraints. Numbers
    and booleans lean to values that make checks like `hours > 0` or `loto_applied` hold."""
    kind = spec.type
    if kind in ("integer", "number", "money"):
        value = 5
        if getattr(spec, "min", None) is not None:
            value = max(value, spec.min)
        if getattr(spec, "max", None) is not None:
            value = min(value, spec.max)
        return value if kind == "integer" else float(value)
    if kind == "table":
        row = {name: sample(col, teams) for name, col in table_columns(spec).items()}
        return [row] * max(1, spec.min_rows or 0)
    if kind == "text":
        return regex_sample(spec.pattern) if spec.pattern else "sample"
    simple = {
        "long_text": "Sample text",
        "boolean": True,
        "date": "2026-03-03",
        "datetime": "2026-03-02T09:00:00+00:00",
        "duration": "1h",
        "email": "someone@example.com",
        "phone": "+852 2345 6789",
        "url": "https://example.com/x",
        "user": "u-sample",
        "asset": "ASSET-1",
        "location": {"lat": 22.3, "lon": 114.2, "address": "1 Sample Road"},
        "attachments": [{"id": "f1", "name": "photo.jpg", "content_type": "image/jpeg", "size": 1000}],
        "signature": {"image": "data:image/png;base64,AAAA", "signed_by": "u-sample"},
    }
    if kind in simple:
        return simple[kind]
    if kind == "choice":
        return field_options(spec)[0]
    if kind == "multi_choice":
        return field_options(spec)[:1]
    if kind == "team":
        return min(teams) if teams else "team"
    if kind == "rating":
        return spec.scale
    raise ValueError(f"no sample value for field type {kind!r}")


def samples(pack_name: str, template: str) -> dict[str, Any]:
    bp = BLUEPRINTS[pack_name]
    tpl = bp.templates[template]
    values = {n: sample(s, bp.teams) for n, s in tpl.fields.items() if s.type != "computed"}
    assert list(tpl.form.validate(values)) == [], f"sample values of {template} are invalid"
    return values


def attribute_values(pack_name: str) -> list[str]:
    """Every text sample of the pack: a list attribute holding them all makes conditions
    such as `store_no in actor.stores` hold for a ticket with sample values."""
    found = {
        v for tpl in BLUEPRINTS[pack_name].templates for v in samples(pack_name, tpl).values()
        if isinstance(v, str)
    }
    return sorted(found)


# -- workflows ------------------------------------------------------------------------------


def transitions(wf: WorkflowBp) -> dict[str, TransitionBp]:
    return {tr.name: tr for tr in wf.index.values()}


def paths(wf: WorkflowBp) -> dict[str, list[TransitionBp]]:
    """The shortest run of transitions from the initial state to each reachable state."""
    out: dict[str, list[TransitionBp]] = {wf.initial: []}
    queue = deque([wf.initial])
    while queue:
        state = queue.popleft()
        for tr in wf.by_state.get(state, ()):
            if tr.to not in out:
                out[tr.to] = [*out[state], tr]
                queue.append(tr.to)
    return out


def source_of(wf: WorkflowBp, tr: TransitionBp) -> str:
    """The transition's source state that is quickest to reach."""
    reach = paths(wf)
    return min((s for s in tr.sources if s in reach), key=lambda s: (len(reach[s]), s))


# -- the runtime, actors and tickets --------------------------------------------------------


@pytest.fixture(scope="module")
def runtimes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str, str], Runtime]]:
    """runtime(pack, store kind): one runtime per pack and store for the module, the pack
    published to the `default` tenant and to OTHER_TENANT."""
    made: dict[tuple[str, str], Runtime] = {}
    with ExitStack() as stack:

        def get(pack_name: str, kind: str = "memory") -> Runtime:
            key = (pack_name, kind)
            if key not in made:
                if kind == "memory":
                    url = "memory"
                elif kind == "sqlite":
                    url = f"sqlite:///{tmp_path_factory.mktemp(pack_name) / 'tickets.db'}"
                elif not PG_URL:
                    pytest.skip("TICKETFLOW_TEST_DATABASE_URL is not set: no PostgreSQL to test on")
                else:
                    url = stack.enter_context(pg_schema_url(PG_URL))
                rt = Runtime.open(EXAMPLES / pack_name, database_url=url, clock=ManualClock(START))
                stack.callback(rt.close)
                rt.publish(EXAMPLES / pack_name, tenant=OTHER_TENANT)
                made[key] = rt
            return made[key]

        yield get


def actor_for(pack_name: str, role: str, *, related: bool = True, tenant: str = "default") -> Actor:
    """A person in `role` alone. `related`: in the pack's first team and with every list
    attribute holding every sample value; else in no team, with empty list attributes."""
    pack = PACKS[pack_name]
    lists = [name for name, kind in pack.actor_attributes.items() if kind == "list"]
    values = attribute_values(pack_name) if related else []
    teams = sorted(pack.teams)[:1] if related else []
    return Actor.of(
        f"{role}-{uuid.uuid4().hex[:8]}", [role], tenant=tenant, teams=teams,
        attributes={name: list(values) for name in lists},
    )


def new_title() -> str:
    return f"case {uuid.uuid4().hex}"


def ticket_at(
    rt: Runtime, pack_name: str, template: str, state: str, *,
    requester: str = STRANGER, assignee: str | None = None, team: str | None = None,
) -> Ticket:
    """A ticket with every field filled, driven to `state` by the system. It is created
    with the fields required at once and the rest set by one update, so its timeline has
    both a `created` and an `updated` entry carrying field values."""
    tpl: TemplateBp = rt.current("default")[0].templates[template]
    values = samples(pack_name, template)
    first = {*tpl.required, *tpl.required_in.get(tpl.workflow.initial, ())}
    t = rt.create(
        template, {k: v for k, v in values.items() if k in first}, SYSTEM,
        requester=requester, title=new_title(),
    )
    t = rt.update(t.id, {k: v for k, v in values.items() if k not in first}, SYSTEM)
    for tr in paths(tpl.workflow)[state]:
        fields = {"assignee": STRANGER} if "assignee" in tr.requires else None
        comment = COMMENT if tr.comment == "required" else None
        t = rt.transition(t.id, tr.name, SYSTEM, fields=fields, comment=comment)
    assert t.state == state, f"the system could not drive {template} to {state}"
    if assignee is not None:
        t = rt.assign(t.id, assignee, SYSTEM)
    if team is not None:
        t = rt.assign(t.id, f"team:{team}", SYSTEM)
    return t  # rules may have moved it on from `state` if it was assigned


def related_ticket(rt: Runtime, pack_name: str, template: str, state: str, actor: Actor) -> Ticket:
    """A ticket in `state` the actor requested, is assigned and whose team it is in; as
    much of that as the pack allows: where assigning moves a ticket on (a rule such as
    "assigned while new means dispatched"), the ticket is left unassigned."""
    for assignee, team in ((actor.id, actor.team), (None, actor.team), (None, None)):
        t = ticket_at(rt, pack_name, template, state, requester=actor.id, assignee=assignee, team=team)
        if t.state == state:
            return t
    raise AssertionError(f"{template} cannot be held in {state} with a requester")


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except TicketflowError as error:
        return error


def bulk_one(results: list[Any]) -> Any:
    (result,) = results
    if result.error is not None:
        raise result.error
    return result.ticket


def every_method(rt: Runtime, pack_name: str, ticket: Ticket, actor: Actor) -> dict[str, Any]:
    """The outcome of each ticket endpoint of the API for this actor on this ticket."""
    tpl = BLUEPRINTS[pack_name].templates[ticket.template]
    tr = next(iter(tpl.workflow.by_state.get(ticket.state, ())), None)
    name = tr.name if tr is not None else "no_such_transition"
    field, value = next(iter(samples(pack_name, ticket.template).items()))
    calls: dict[str, Callable[[], Any]] = {
        "get": lambda: rt.get(ticket.id, actor),
        "update": lambda: rt.update(ticket.id, {field: value}, actor),
        "transition": lambda: rt.transition(ticket.id, name, actor, comment=COMMENT),
        "comment": lambda: rt.comment(ticket.id, COMMENT, actor),
        "assign": lambda: rt.assign(ticket.id, actor.id, actor),
        "available_transitions": lambda: rt.available_transitions(ticket.id, actor, include_hidden=True),
        "timeline": lambda: rt.timeline(ticket.id, actor),
        "bulk_assign": lambda: bulk_one(rt.bulk_assign([ticket.id], actor.id, actor)),
        "bulk_transition": lambda: bulk_one(rt.bulk_transition([ticket.id], name, actor)),
    }
    return {method: outcome(call) for method, call in calls.items()}


def found(rt: Runtime, actor: Actor, ticket: Ticket) -> list[Ticket]:
    """The ticket as `query` lists it for the actor (searching its unique title)."""
    assert ticket.title is not None
    return [t for t in rt.query(actor, text=ticket.title, limit=500).items if t.id == ticket.id]


def says(error: Any, *words: str) -> None:
    """A clear error: a message that names what was refused and why."""
    assert isinstance(error, TicketflowError), f"expected an error, got {error!r}"
    assert error.message.strip(), f"{type(error).__name__} with an empty message"
    missing = [w for w in words if w not in error.message]
    assert not missing, f"{error.message!r} does not mention {missing}"


# -- cases ----------------------------------------------------------------------------------


def _case(*parts: str) -> Any:
    return pytest.param(*parts, id="-".join(parts))


def template_role_cases(keep: Callable[[str, str, str], bool] = lambda p, t, r: True) -> list[Any]:
    return [
        _case(pack_name, template, role)
        for pack_name, pack in PACKS.items()
        for template in pack.templates
        for role in pack.role_names()
        if keep(pack_name, template, role)
    ]


def transition_cases(allowed: bool) -> list[Any]:
    return [
        _case(pack_name, template, name, role)
        for pack_name, pack in PACKS.items()
        for template, tpl in BLUEPRINTS[pack_name].templates.items()
        for name in sorted(transitions(tpl.workflow))
        for role in pack.role_names()
        if may_take(pack, role, template, name) == allowed
    ]


def state_cases() -> list[Any]:
    return [
        _case(pack_name, template, state, role)
        for pack_name, pack in PACKS.items()
        for template, tpl in BLUEPRINTS[pack_name].templates.items()
        for state in sorted(paths(tpl.workflow))
        for role in pack.role_names()
        if _sees(pack_name, template, role)
    ]


def _sees(p: str, t: str, r: str) -> bool:
    """Whether the role sees any of the template's tickets at all."""
    return bool(scopes(PACKS[p], r, t) or see_conditions(PACKS[p], r, t))


STORES = pytest.mark.parametrize("kind", ["memory", "sqlite", "postgresql"])


# -- create ---------------------------------------------------------------------------------


def intake_fields(pack_name: str, template: str) -> dict[str, Any]:
    """What a create must give: the fields required at intake that have no default."""
    tpl = BLUEPRINTS[pack_name].templates[template]
    needed = {*tpl.required, *tpl.required_in.get(tpl.workflow.initial, ())}
    return {
        k: v for k, v in samples(pack_name, template).items()
        if k in needed and getattr(tpl.fields[k], "default", None) is None
    }


def create_cases() -> list[Any]:
    """Every (pack, template, role)."""
    return list(template_role_cases())


@pytest.mark.parametrize(("pack_name", "template", "role"), create_cases())
def test_create_allowed_iff_permission_lists_the_template(
    runtimes: Callable[..., Runtime], pack_name: str, template: str, role: str
) -> None:
    rt = runtimes(pack_name)
    pack, tpl = PACKS[pack_name], BLUEPRINTS[pack_name].templates[template]
    actor = actor_for(pack_name, role)
    values = intake_fields(pack_name, template)
    title = new_title()
    made = outcome(lambda: rt.create(template, values, actor, title=title))
    in_bulk = rt.bulk_create([{"template": template, "fields": values, "title": title}], actor)[0]
    if may_create(pack, role, template):
        assert isinstance(made, Ticket), f"{role} may create {template}: {made!r}"
        assert (made.template, made.requester, made.state) == (template, actor.id, tpl.workflow.initial)
        assert set(made.fields) <= readable(pack, role, template, made.state)
        assert in_bulk.ok, in_bulk.error
    else:
        assert isinstance(made, PermissionDenied), f"{role} may not create {template}: {made!r}"
        says(made, "create", template)
        assert isinstance(in_bulk.error, PermissionDenied)
        assert rt.query(SYSTEM, text=title).items == [], "a refused create leaves nothing"


# -- transitions ----------------------------------------------------------------------------


@pytest.mark.parametrize(("pack_name", "template", "transition", "role"), transition_cases(False))
def test_transition_denied_to_role_not_listed(
    runtimes: Callable[..., Runtime], pack_name: str, template: str, transition: str, role: str
) -> None:
    rt = runtimes(pack_name)
    pack, tpl = PACKS[pack_name], BLUEPRINTS[pack_name].templates[template]
    tr = transitions(tpl.workflow)[transition]
    actor = actor_for(pack_name, role)
    t = related_ticket(rt, pack_name, template, source_of(tpl.workflow, tr), actor)
    before = rt.get(t.id, SYSTEM)
    taken = outcome(lambda: rt.transition(t.id, transition, actor, comment=COMMENT))
    in_bulk = outcome(lambda: bulk_one(rt.bulk_transition([t.id], transition, actor)))
    if visible(rt, pack, role, actor, t):
        allowed = sorted(tr.roles) or ["staff"]
        assert isinstance(taken, PermissionDenied), f"{role} may not take {transition}: {taken!r}"
        says(taken, f"'{transition}'", "may be taken by", *allowed)
        if tr.roles:
            says(taken, f"you act as {role}")
        assert isinstance(in_bulk, PermissionDenied)
        offered = {a.name: a for a in rt.available_transitions(t.id, actor, include_hidden=True)}
        assert not offered[transition].allowed
        assert offered[transition].reason and all(r in offered[transition].reason for r in allowed)
    else:
        assert isinstance(taken, NotFound), f"{role} cannot see this ticket: {taken!r}"
        assert isinstance(in_bulk, NotFound)
    after = rt.get(t.id, SYSTEM)
    assert (after.state, after.version) == (before.state, before.version), "a refused command changes nothing"


@pytest.mark.parametrize(("pack_name", "template", "transition", "role"), transition_cases(True))
def test_transition_open_to_listed_role(
    runtimes: Callable[..., Runtime], pack_name: str, template: str, transition: str, role: str
) -> None:
    rt = runtimes(pack_name)
    pack, tpl = PACKS[pack_name], BLUEPRINTS[pack_name].templates[template]
    tr = transitions(tpl.workflow)[transition]
    actor = actor_for(pack_name, role)
    t = related_ticket(rt, pack_name, template, source_of(tpl.workflow, tr), actor)
    if not visible(rt, pack, role, actor, t):
        # The pack lets the role take the transition on tickets it can never see.
        assert isinstance(outcome(lambda: rt.transition(t.id, transition, actor)), NotFound)
        return
    offered = {a.name: a for a in rt.available_transitions(t.id, actor)}[transition]
    # Allowed, or refused only until the fields it lists are filled in.
    assert offered.allowed or offered.missing, offered.reason
    fill = {"assignee": actor.id, "team": actor.team, **samples(pack_name, template)}
    fields = {name: fill[name] for name in offered.missing} or None
    comment = COMMENT if tr.comment != "none" else None
    rt.transition(t.id, transition, actor, fields=fields, comment=comment)
    moved = [e for e in rt.timeline(t.id, SYSTEM) if e.kind == "transitioned"][-1]
    assert (moved.actor, moved.data["transition"], moved.data["to"]) == (actor.id, transition, tr.to)


def only_cases() -> list[Any]:
    return [
        _case(pack_name, template, name, role)
        for pack_name, pack in PACKS.items()
        for template, tpl in BLUEPRINTS[pack_name].templates.items()
        for name, tr in sorted(transitions(tpl.workflow).items())
        if tr.only is not None
        for role in pack.role_names()
        if may_take(pack, role, template, name)
    ]


@pytest.mark.parametrize(("pack_name", "template", "transition", "role"), only_cases())
def test_only_assignee_or_requester_may_take(
    runtimes: Callable[..., Runtime], pack_name: str, template: str, transition: str, role: str
) -> None:
    """A listed role that sees the ticket but is not its assignee (requester) is refused a
    transition marked `only: assignee` (`requester`), saying so."""
    rt = runtimes(pack_name)
    tpl = BLUEPRINTS[pack_name].templates[template]
    tr = transitions(tpl.workflow)[transition]
    actor = actor_for(pack_name, role)
    t = ticket_at(rt, pack_name, template, source_of(tpl.workflow, tr), team=actor.team)
    if t.state not in tr.sources:  # assigning the team moved it on: leave it unassigned
        t = ticket_at(rt, pack_name, template, source_of(tpl.workflow, tr))
    assert actor.id not in (t.assignee, t.requester)
    taken = outcome(lambda: rt.transition(t.id, transition, actor, comment=COMMENT))
    if visible(rt, PACKS[pack_name], role, actor, t):
        assert isinstance(taken, PermissionDenied), taken
        says(taken, f"only the ticket's {tr.only}", f"'{transition}'")
    else:
        assert isinstance(taken, NotFound), taken
    assert rt.get(t.id, SYSTEM).version == t.version


# -- fields ---------------------------------------------------------------------------------


@STORES
@pytest.mark.parametrize(("pack_name", "template", "role"), template_role_cases(_sees))
def test_hidden_fields_are_absent_everywhere(
    runtimes: Callable[..., Runtime], kind: str, pack_name: str, template: str, role: str
) -> None:
    rt = runtimes(pack_name, kind)
    pack = PACKS[pack_name]
    actor = actor_for(pack_name, role)
    t = related_ticket(rt, pack_name, template, BLUEPRINTS[pack_name].templates[template].workflow.initial, actor)
    if not visible(rt, pack, role, actor, t):
        pytest.skip(f"{role} cannot see {template} tickets it is related to")
    may_read = readable(pack, role, template, t.state)
    full = rt.get(t.id, SYSTEM).fields
    shown = {k: v for k, v in full.items() if k in may_read}
    hidden = set(full) - may_read

    assert rt.get(t.id, actor).fields == shown
    (listed,) = found(rt, actor, t)
    assert listed.fields == shown
    assert rt.comment(t.id, COMMENT, actor).fields == shown, "a command's result is masked too"
    entries_seen = rt.timeline(t.id, actor)
    leaks = {
        (e.seq, e.kind, key): sorted(set(e.data[key]) & hidden)
        for e in entries_seen for key in ("fields", "changes")
        if isinstance(e.data.get(key), dict) and set(e.data[key]) & hidden
    }
    assert leaks == {}, f"hidden fields in {role}'s timeline"
    system_created = next(e for e in rt.timeline(t.id, SYSTEM) if e.kind == "created").data["fields"]
    created = next(e for e in entries_seen if e.kind == "created").data["fields"]
    assert created == {k: v for k, v in system_created.items() if k in may_read}


def secret(spec: Any) -> tuple[Any, str] | None:
    """A value no other field holds, and the text to search for it; None when the type
    leaves no room for one (choices, patterns, numbers)."""
    room = (getattr(spec, "max_length", None) or 38) - len("secret")
    token = uuid.uuid4().hex[: max(8, min(32, room))]
    kind = spec.type
    if kind == "long_text" or (kind == "text" and not spec.pattern) or kind == "asset":
        return f"secret{token}", f"secret{token}"
    if kind == "email":
        return f"secret{token}@example.com", f"secret{token}"
    if kind == "url":
        return f"https://secret{token}.example.com/", f"secret{token}"
    if kind == "phone":
        digits = str(uuid.uuid4().int)[:11]
        return f"+86 {digits}", digits
    return None


def hidden_secrets(pack_name: str, template: str, role: str) -> list[str]:
    """Fields of the template the role may not read at intake that can hold a secret."""
    tpl = BLUEPRINTS[pack_name].templates[template]
    may_read = readable(PACKS[pack_name], role, template, tpl.workflow.initial)
    return [n for n, spec in tpl.fields.items() if n not in may_read and secret(spec) is not None]


@STORES
@pytest.mark.parametrize(
    ("pack_name", "template", "role"),
    template_role_cases(lambda p, t, r: _sees(p, t, r) and bool(hidden_secrets(p, t, r))),
)
def test_search_does_not_match_hidden_fields(
    runtimes: Callable[..., Runtime], kind: str, pack_name: str, template: str, role: str
) -> None:
    rt = runtimes(pack_name, kind)
    tpl = BLUEPRINTS[pack_name].templates[template]
    actor = actor_for(pack_name, role)
    t = related_ticket(rt, pack_name, template, tpl.workflow.initial, actor)
    assert visible(rt, PACKS[pack_name], role, actor, t)
    leaked = {}
    for name in hidden_secrets(pack_name, template, role):
        value, text = secret(tpl.fields[name])  # type: ignore[misc]
        rt.update(t.id, {name: value}, SYSTEM)
        assert [x.id for x in rt.query(SYSTEM, text=text).items] == [t.id]
        if rt.query(actor, text=text).items:
            leaked[name] = text
    assert leaked == {}, f"searching reveals what {role} may not read"


@pytest.mark.parametrize(("pack_name", "template", "state", "role"), state_cases())
def test_writes_limited_to_write_fields(
    runtimes: Callable[..., Runtime], pack_name: str, template: str, state: str, role: str
) -> None:
    rt = runtimes(pack_name)
    pack = PACKS[pack_name]
    actor = actor_for(pack_name, role)
    t = related_ticket(rt, pack_name, template, state, actor)
    if not visible(rt, pack, role, actor, t):
        pytest.skip(f"{role} cannot see {template} tickets it is related to")
    may_write = writable(pack, role, template, state)
    values = samples(pack_name, template)
    denied = {}
    for name in sorted(set(values) - may_write):
        result = outcome(lambda name=name: rt.update(t.id, {name: values[name]}, actor))
        if not (isinstance(result, PermissionDenied) and name in result.message and f"'{state}'" in result.message):
            denied[name] = result
    assert denied == {}, f"{role} may not write these in {state}; the runtime said otherwise"
    allowed = {k: v for k, v in values.items() if k in may_write}
    if allowed:
        assert isinstance(rt.update(t.id, allowed, actor), Ticket)
    assignment = outcome(lambda: rt.assign(t.id, "u-other", actor))
    if "assignee" in may_write:
        assert isinstance(assignment, Ticket) and assignment.assignee == "u-other"
    else:
        assert isinstance(assignment, PermissionDenied), assignment
        says(assignment, "assignee", template)
    # Refused writes change nothing; the allowed ones wrote the values the ticket had.
    assert rt.get(t.id, SYSTEM).version == t.version + ("assignee" in may_write)


# -- comments -------------------------------------------------------------------------------


@pytest.mark.parametrize(("pack_name", "template", "role"), template_role_cases(_sees))
def test_internal_notes_are_for_staff_only(
    runtimes: Callable[..., Runtime], pack_name: str, template: str, role: str
) -> None:
    rt = runtimes(pack_name)
    pack = PACKS[pack_name]
    actor = actor_for(pack_name, role)
    t = related_ticket(rt, pack_name, template, BLUEPRINTS[pack_name].templates[template].workflow.initial, actor)
    if not visible(rt, pack, role, actor, t):
        pytest.skip(f"{role} cannot see {template} tickets it is related to")
    rt.comment(t.id, "internal: check the warranty", SYSTEM, internal=True)
    note = outcome(lambda: rt.comment(t.id, "a note", actor, internal=True))
    notes = [e for e in rt.timeline(t.id, actor) if e.kind == "commented" and e.data["internal"]]
    if is_staff(pack, role):
        assert isinstance(note, Ticket)
        assert len(notes) == 2
    else:
        assert isinstance(note, PermissionDenied)
        says(note, "internal")
        assert notes == []
        assert {e.visibility for e in rt.timeline(t.id, actor)} == {"public"}


# -- tickets out of sight -------------------------------------------------------------------


@STORES
@pytest.mark.parametrize(
    ("pack_name", "template", "role"),
    template_role_cases(lambda p, t, r: "all" not in scopes(PACKS[p], r, t)),
)
def test_ticket_out_of_sight_is_not_found_everywhere(
    runtimes: Callable[..., Runtime], kind: str, pack_name: str, template: str, role: str
) -> None:
    rt = runtimes(pack_name, kind)
    pack, tpl = PACKS[pack_name], BLUEPRINTS[pack_name].templates[template]
    actor = actor_for(pack_name, role, related=False)
    t = ticket_at(rt, pack_name, template, tpl.workflow.initial)
    if visible(rt, pack, role, actor, t):
        pytest.skip(f"{role} sees every {template} ticket in state {t.state}")
    before = rt.get(t.id, SYSTEM)
    outcomes = every_method(rt, pack_name, t, actor)
    assert {m: type(o).__name__ for m, o in outcomes.items()} == dict.fromkeys(outcomes, "NotFound")
    for error in outcomes.values():
        says(error, "no ticket", t.id)
    assert found(rt, actor, t) == []
    assert rt.get(t.id, SYSTEM).version == before.version


@STORES
@pytest.mark.parametrize(
    ("pack_name", "role"),
    [_case(p, r) for p, pack in PACKS.items() for r in [*pack.role_names(), "system"]],
)
def test_other_tenants_ticket_is_not_found_everywhere(
    runtimes: Callable[..., Runtime], kind: str, pack_name: str, role: str
) -> None:
    """An actor of OTHER_TENANT, related to the ticket in every way it could be (same id as
    its requester and assignee, same team and attributes), sees nothing of it."""
    rt = runtimes(pack_name, kind)
    if role == "system":
        outsider = Actor.system(OTHER_TENANT)
    else:
        outsider = actor_for(pack_name, role, tenant=OTHER_TENANT)
    for template, tpl in BLUEPRINTS[pack_name].templates.items():
        t = related_ticket(rt, pack_name, template, tpl.workflow.initial, outsider)
        outcomes = every_method(rt, pack_name, t, outsider)
        assert {m: type(o).__name__ for m, o in outcomes.items()} == dict.fromkeys(outcomes, "NotFound"), template
        for error in outcomes.values():
            says(error, "no ticket", t.id)
        assert found(rt, outsider, t) == []
        assert rt.get(t.id, SYSTEM).version == t.version
