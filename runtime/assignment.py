"""Who works a ticket: routing a ticket by its template's strategy chain, the claim pool,
transfers between teams and delegation. Every change is an `assigned` signal, a public
timeline entry and an audit row; every automatic choice also records why (`routed`).

A pooled ticket's assignee is `pool:<team>` (`pool:*` without a team): members of the
team see it as assigned to them for visibility, but only a claim makes one of them its
assignee, and the first claim wins — a later one finds the assignee changed (Conflict).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from dsl.diagnostics import did_you_mean
from engine.model import Routing
from engine.values import parse_duration
from runtime import commands
from runtime.actors import Actor
from runtime.records import Conflict, InvalidCommand, PermissionDenied
from runtime.routing import STRATEGIES, Decision, RouteRequest, eligible_for_claim, route
from runtime.unit import Signal, Tracked, Unit, snapshot

POOL = "pool:"


def strategies_of(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def request_for(
    unit: Unit, t: Tracked, routing: Routing, strategies: tuple[str, ...], team: str | None
) -> RouteRequest:
    """The routing question for this ticket: its required skills and location come from
    its field values through the template's routing settings."""
    return RouteRequest(
        strategies=strategies,
        team=team,
        role=routing.role,
        skills=_required_skills(t, routing),
        location=_location(t, routing),
        now=unit.now,
        max_open=routing.max_open,
        on_shift_only=routing.on_shift_only,
        near_tie_km=routing.near_tie_km,
        max_km=routing.max_km,
        location_max_age=parse_duration(routing.location_max_age)
        if routing.location_max_age
        else None,
    )


def _required_skills(t: Tracked, routing: Routing) -> dict[str, int]:
    out: dict[str, int] = {}
    for field, mapping in routing.skills_from.items():
        value = t.row.fields.get(field)
        needed = mapping.get(str(value)) if value is not None else None
        if needed is None:
            continue
        levels = dict.fromkeys(needed, 1) if isinstance(needed, list) else needed
        for skill, level in levels.items():
            out[skill] = max(out.get(skill, 0), level)
    return out


def _location(t: Tracked, routing: Routing) -> tuple[float, float] | None:
    name = routing.location_field
    if name is None:
        found = [n for n, f in t.tpl.model.fields.items() if f.type == "location"]
        name = found[0] if len(found) == 1 else None
    value = t.row.fields.get(name) if name else None
    if isinstance(value, dict) and "lat" in value and "lon" in value:
        return float(value["lat"]), float(value["lon"])
    return None


def _load(unit: Unit, routing: Routing) -> Any:
    """Weighted open tickets of the people routing asks about (each read once a command)."""
    cache: dict[str, float] = {}
    field = routing.load_field if routing.load_weights else None

    def load(ids: Collection[str]) -> Mapping[str, float]:
        missing = [i for i in ids if i not in cache]
        if missing:
            counts = unit.tx.open_load(unit.tenant, field, missing)
            for person in missing:
                by_value = counts.get(person, {})
                cache[person] = sum(
                    n * routing.load_weights.get(str(v), 1.0) if v is not None else n
                    for v, n in by_value.items()
                )
        return {i: cache[i] for i in ids}

    return load


def _turn(unit: Unit, template: str) -> Any:
    # A durable counter per template and pool: round robin stays fair across processes.
    return lambda key: unit.tx.next_sequence(unit.tenant, f"route:{template}:{key}")


def route_ticket(
    unit: Unit,
    t: Tracked,
    depth: int,
    strategies: tuple[str, ...] | None = None,
    team: str | None = None,
) -> Decision | None:
    """Route by the template's routing (strategies and team may be overridden by an
    `assign` action); None when the template has no routing and none was asked for."""
    routing = t.tpl.model.routing
    if routing is None:
        if not strategies:
            return None
        routing = Routing(strategy=list(strategies))
    chain = strategies or strategies_of(routing.strategy)
    team = team or routing.team or t.row.team
    people = unit.people()
    decision = route(
        people.roster,
        request_for(unit, t, routing, chain, team),
        _load(unit, routing),
        _turn(unit, t.row.template),
    )
    _apply(unit, t, decision, team, depth)
    return decision


def _apply(unit: Unit, t: Tracked, decision: Decision, team: str | None, depth: int) -> None:
    detail = decision.as_json()
    if decision.assignee is not None:
        unit.event(t, "routed", "system", detail)
        _set(unit, t, "system", {"assignee": decision.assignee, "team": team}, "assign", depth)
    elif decision.pooled:
        unit.event(t, "routed", "system", detail)
        _set(unit, t, "system", {"assignee": POOL + (team or "*"), "team": team}, "pool", depth)
    elif "manual" not in [s.strategy for s in decision.steps]:
        unit.event(t, "routing.none", "system", detail)
        unit.notes.append(f"{t.row.ref} not routed: {decision.reason}")
        unit.signal(Signal(t.row.id, "event:unrouted", depth, data={"reason": decision.reason}))


def _set(
    unit: Unit,
    t: Tracked,
    actor: Actor | str,
    values: dict[str, Any],
    action: str,
    depth: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Change assignee/team with the event, audit row and signal every hand-off gets."""
    changes = commands.changes_of(
        t, {k: v for k, v in values.items() if v is not None or k == "assignee"}
    )
    if not changes:
        return {}
    before = snapshot(t.row)
    commands.apply_changes(t, changes, unit.now)
    data: dict[str, Any] = {"changes": changes, "how": action, **(extra or {})}
    unit.event(t, "assigned", actor, data, "public")
    unit.record(
        actor,
        action,
        t.row.id,
        {k: before[k] for k in changes},
        {k: c["after"] for k, c in changes.items()},
    )
    unit.signal(Signal(t.row.id, "assigned", depth, frozenset(changes)))
    return changes


# -- claim, transfer, delegate --------------------------------------------------------------


def claim(unit: Unit, t: Tracked, actor: Actor) -> None:
    """Take a pooled ticket: the first eligible claimant wins."""
    assignee = t.row.assignee
    if assignee is None or not assignee.startswith(POOL):
        if assignee == actor.id:
            raise Conflict(f"{t.row.ref} is already yours", ticket_id=t.row.id)
        who = f"claimed by {assignee}" if assignee else "not in a claim pool"
        raise Conflict(f"{t.row.ref} is {who}", ticket_id=t.row.id, assignee=assignee)
    people = unit.people()
    if people.get(actor.id) is None:
        raise PermissionDenied(f"you ({actor.id}) are not in the directory, so you cannot claim")
    check = _claim_check(unit, t, actor)
    if not check:
        raise PermissionDenied(
            f"you may not claim {t.row.ref}: {check.reason}", reason="not-eligible"
        )
    _set(unit, t, actor, {"assignee": actor.id}, "claim", 0)


def _claim_check(unit: Unit, t: Tracked, actor: Actor) -> Any:
    """Whether the actor passes the steps of the chain that pooled the ticket (the
    template's, or an assign action's), in the pool's team."""
    routing = t.tpl.model.routing or Routing(strategy="claim_pool")
    pool_team = (t.row.assignee or POOL + "*")[len(POOL) :]
    team = None if pool_team == "*" else pool_team
    request = request_for(unit, t, routing, pooling_chain(unit, t, routing), team)
    return eligible_for_claim(unit.people().roster, request, actor.id, _load(unit, routing))


def pooling_chain(unit: Unit, t: Tracked, routing: Routing) -> tuple[str, ...]:
    """The strategies that put the ticket in its pool, read from its last `routed` entry
    (an assign action may pool with another chain than the template's)."""
    for event in reversed(unit.tx.events(unit.tenant, t.row.id)):
        if event.kind == "routed" and event.data.get("pooled"):
            names = [s.get("strategy") for s in event.data.get("steps", ())]
            chain = tuple(n for n in names if n in STRATEGIES)
            if chain:
                return chain
    return strategies_of(routing.strategy)


def lost_claim(unit: Unit, t: Tracked, actor: Actor) -> bool:
    """The actor was in the ticket's last pool (so it could see the ticket) and someone
    else has claimed it since: the loser hears who won instead of 'not found'."""
    assignee = t.row.assignee
    if assignee is None or assignee.startswith(POOL) or assignee == actor.id:
        return False
    for event in reversed(unit.tx.events(unit.tenant, t.row.id)):
        if event.kind == "assigned" and event.data.get("how") == "pool":
            pool = str(event.data.get("changes", {}).get("assignee", {}).get("after", ""))
            return pool == POOL + "*" or pool[len(POOL) :] in actor.teams
    return False


def transfer(
    unit: Unit, t: Tracked, actor: Actor, team: str, note: str | None, reroute: bool
) -> None:
    """Hand the ticket to another team (department): the assignee is cleared (or chosen
    again by routing within the new team) and the hand-off is in the timeline."""
    commands.ensure_visible(unit, t, actor)
    if team not in t.bp.teams:
        hint = did_you_mean(team, sorted(t.bp.teams))
        raise InvalidCommand(f"no team '{team}'" + (f"; {hint}" if hint else ""), team=team)
    commands.check_writable(t.bp, actor, t.tpl, t.row.state, {"team": team, "assignee": None})
    if team == t.row.team:
        raise InvalidCommand(f"{t.row.ref} is already with team {team}")
    extra = {"from_team": t.row.team, "to_team": team, **({"note": note} if note else {})}
    _set(unit, t, actor, {"team": team, "assignee": None}, "transfer", 0, extra)
    if reroute:
        routing = t.tpl.model.routing
        chain = strategies_of(routing.strategy) if routing else ("least_loaded",)
        route_ticket(unit, t, 0, chain, team)


def delegate(unit: Unit, t: Tracked, actor: Actor, to: str, note: str | None) -> None:
    """The assignee hands the ticket to a colleague and keeps watching it."""
    commands.ensure_visible(unit, t, actor)
    if t.row.assignee != actor.id and not actor.is_automation:
        raise PermissionDenied(f"only the assignee of {t.row.ref} may delegate it")
    people = unit.people()
    target = people.get(to)
    if target is None or not target.active:
        raise InvalidCommand(f"no active person '{to}' in the directory", to=to)
    if to == actor.id:
        raise InvalidCommand("you cannot delegate a ticket to yourself")
    watchers = list(t.row.watchers)
    if actor.id not in watchers:
        watchers.append(actor.id)
        t.row.watchers = watchers
    extra = {"from": actor.id, **({"note": note} if note else {})}
    _set(unit, t, actor, {"assignee": to}, "delegate", 0, extra)


def may_claim(unit: Unit, t: Tracked, actor: Actor) -> bool:
    """Whether the actor could claim this ticket now (for listings of claimable work)."""
    assignee = t.row.assignee
    if assignee is None or not assignee.startswith(POOL) or unit.people().get(actor.id) is None:
        return False
    return bool(_claim_check(unit, t, actor))


__all__ = ["claim", "delegate", "may_claim", "route_ticket", "transfer"]
