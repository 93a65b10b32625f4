"""Permissions: which tickets an actor sees, which fields it reads and writes, which
transitions it may take. Every command and every read goes through here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.blueprint import Blueprint, FieldSet, Grant, TemplateBp, TransitionBp
from runtime.actors import Actor
from runtime.records import SeeClause, TicketRow

# Ticket attributes besides the template's fields that a write mask may name.
ASSIGNMENT = frozenset({"assignee", "team"})


def grants_for(bp: Blueprint, actor: Actor, template: str) -> list[Grant]:
    """The actor's permission entries that cover `template`."""
    return bp.memoised(
        ("grants", actor.roles, template),
        lambda: [g for role in actor.roles for g in bp.grants.get(role, ()) if g.covers(template)],
    )


def is_assignee(row: TicketRow, actor: Actor) -> bool:
    """Assigned to the actor, or to a role the actor holds (`role:<name>`)."""
    if row.assignee is None:
        return False
    if row.assignee == actor.id:
        return True
    return row.assignee.startswith("role:") and row.assignee[5:] in actor.roles


def in_pool(row: TicketRow, actor: Actor) -> bool:
    """A pooled ticket (`pool:<team>`) waits for a claim from its team: its members see it
    as assigned to them, though only a claim makes one of them the assignee."""
    pool = row.assignee
    if pool is None or not pool.startswith("pool:"):
        return False
    return pool == "pool:*" or pool[5:] in actor.teams


def _scope_holds(scope: str, row: TicketRow, actor: Actor) -> bool:
    if scope == "all":
        return True
    if scope == "own":
        return row.requester == actor.id
    if scope == "assigned":
        return is_assignee(row, actor) or in_pool(row, actor)
    if scope == "team":
        return row.team is not None and row.team in actor.teams
    return False


def can_see(
    bp: Blueprint, actor: Actor, row: TicketRow, env: Mapping[str, Any] | None = None
) -> bool:
    """Whether any of the actor's grants lets it see this ticket. `env` is needed only
    for grants with a condition (`see: {if: ...}`)."""
    if actor.is_system:
        return True
    for grant in grants_for(bp, actor, row.template):
        if any(_scope_holds(s, row, actor) for s in grant.see):
            return True
        if grant.see_if is not None and env is not None and grant.see_if.holds(env):
            return True
    return False


def needs_env_to_see(bp: Blueprint, actor: Actor, template: str) -> bool:
    """True when only a condition grant could show this template's tickets."""
    return any(g.see_if is not None for g in grants_for(bp, actor, template))


def _union(sets: Iterable[FieldSet], universe: frozenset[str]) -> frozenset[str]:
    out: set[str] = set()
    for s in sets:
        out |= universe if s is None else (s & universe)
    return frozenset(out)


def _state_sets(grant: Grant, state: str) -> tuple[FieldSet | None, FieldSet | None]:
    """(read, write) overridden in `state`, or the grant's own; False means not overridden."""
    over = grant.states.get(state)
    read: FieldSet | None = grant.read
    write: FieldSet | None = grant.write
    if over is not None:
        if over[0] is not False:
            read = over[0]
        if over[1] is not False:
            write = over[1]
    return read, write


def readable(bp: Blueprint, actor: Actor, tpl: TemplateBp, state: str) -> frozenset[str]:
    """Fields of the template the actor may read in `state` (hidden ones removed)."""
    if actor.is_system:
        return tpl.field_names
    key = ("read", actor.roles, tpl.name, state)
    return bp.memoised(key, lambda: _granted(bp, actor, tpl, state, 0, tpl.field_names))


def writable(bp: Blueprint, actor: Actor, tpl: TemplateBp, state: str) -> frozenset[str]:
    """Fields (and `assignee`/`team`) the actor may change in `state`."""
    universe = tpl.field_names | ASSIGNMENT
    if actor.is_system:
        return universe
    key = ("write", actor.roles, tpl.name, state)
    return bp.memoised(key, lambda: _granted(bp, actor, tpl, state, 1, universe))


def _granted(
    bp: Blueprint, actor: Actor, tpl: TemplateBp, state: str, side: int, universe: frozenset[str]
) -> frozenset[str]:
    """The union over the actor's grants of their read (side 0) or write (side 1) fields in
    `state`, each without its hidden fields."""
    out: set[str] = set()
    for grant in grants_for(bp, actor, tpl.name):
        out |= _union([_state_sets(grant, state)[side]], universe) - grant.hide
    return frozenset(out)


def can_create(bp: Blueprint, actor: Actor, template: str) -> bool:
    if actor.is_system:
        return True
    return any(g.create is None or template in g.create for g in grants_for(bp, actor, template))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an actor may not take a transition."""

    code: str
    message: str


def transition_refusal(
    bp: Blueprint, actor: Actor, row: TicketRow, tr: TransitionBp
) -> Refusal | None:
    """None when the actor's roles and relation to the ticket allow the transition."""
    if actor.is_system:
        return None
    if tr.roles:
        if not tr.roles & actor.roles:
            return Refusal(
                "role",
                f"'{tr.name}' may be taken by {_names(tr.roles)}; "
                f"you act as {_names(actor.roles) or 'no role'}",
            )
    elif not actor.roles & bp.staff_roles:
        return Refusal("role", f"'{tr.name}' may be taken by staff only")
    if tr.only == "assignee" and not is_assignee(row, actor):
        return Refusal("only", f"only the ticket's assignee may take '{tr.name}'")
    if tr.only == "requester" and row.requester != actor.id:
        return Refusal("only", f"only the ticket's requester may take '{tr.name}'")
    return None


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))


def is_staff(bp: Blueprint, actor: Actor) -> bool:
    """Staff see internal notes; customers and residents do not."""
    return actor.is_system or bool(actor.roles & bp.staff_roles)


def see_clauses(bp: Blueprint, actor: Actor) -> list[SeeClause]:
    """The store-side filter of a listing: tickets any of the actor's grants shows.

    Condition grants become an `all` clause for their templates; the runtime then checks
    the condition on each candidate row.
    """
    if actor.is_system:
        return [SeeClause("all")]
    clauses: list[SeeClause] = []
    for role in sorted(actor.roles):
        for grant in bp.grants.get(role, ()):
            tpls = tuple(sorted(grant.templates)) if grant.templates is not None else None
            clauses.extend(_clauses(grant, actor, tpls))
    return clauses


def _clauses(grant: Grant, actor: Actor, tpls: tuple[str, ...] | None) -> list[SeeClause]:
    out: list[SeeClause] = []
    if grant.see_if is not None or "all" in grant.see:
        return [SeeClause("all", (), tpls)]
    if "own" in grant.see:
        out.append(SeeClause("requester", (actor.id,), tpls))
    if "assigned" in grant.see:
        values = (
            actor.id,
            *(f"role:{r}" for r in sorted(actor.roles)),
            *(f"pool:{t}" for t in sorted(actor.teams)),
            "pool:*",
        )
        out.append(SeeClause("assignee", values, tpls))
    if "team" in grant.see and actor.teams:
        out.append(SeeClause("team", tuple(sorted(actor.teams)), tpls))
    return out
