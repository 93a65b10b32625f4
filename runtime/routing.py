"""Routing: who gets a new ticket. Pure functions over a snapshot of a tenant's people.

The runtime builds a `Roster` (an immutable, indexed snapshot of the directory), describes the
ticket's needs in a `RouteRequest`, and calls `route(roster, request, load, next_turn)`. The
answer, a `Decision`, names the assignee (or nobody, or a claim pool), every step that narrowed
the candidates, and one human sentence saying why. Nothing here touches a database: `load`
returns people's open (possibly weighted) ticket counts, `next_turn` is a durable counter.

Semantics
---------

*Candidates.* Active people in the request's `team` (when given) who have its `role` (when
given). People at or over their open-ticket cap are dropped: the cap is the lower of the
request's `max_open` and the person's own `max_open`; a person is over it when `load` ≥ cap.
`load(ids)` returns {id: open tickets}; an id it leaves out has 0. It is called only when a
cap or `least_loaded` needs it, only for the current candidates (for caps: only the people a
cap applies to), and never twice for one person in one decision. Because caps are a filter, the
cap step runs just before the first step that ranks or picks (after the leading `skills` /
`on_shift` filters), which asks `load` about as few people as possible and gives the same
result as dropping capped people first.

*The chain.* `strategies` is applied in order, each step narrowing the candidates:

- `skills` keeps people who have every required skill at least at its minimum level (no
  requirement: keeps everyone).
- `on_shift` keeps people whose `on_shift(now)` is true; a person without a schedule is on
  shift. `on_shift_only=True` is the same as an `on_shift` step first.
- `nearest` keeps people whose distance to the ticket is within `near_tie_km` of the nearest
  candidate's, and not over `max_km`. Distance is great-circle (haversine, Earth radius
  6371.0088 km) from the person's last known location. With `location_max_age`, a location
  older than that (or of unknown age) does not count. People without a (fresh) location are
  dropped when any candidate has one; when none has, the step keeps everyone and says so —
  unless `max_km` is set, which only a known location can satisfy. When the ticket has no
  location the step keeps everyone and says so.
- `least_loaded` keeps the people with the lowest load (ties within 1e-9 count as equal).
- `round_robin` picks one: the candidates sorted by id (code-point order) and the one at
  `next_turn(pool_key) % n`. `pool_key` is the request's, by default the team (or `*`)
  joined with the role when given, e.g. `north`, `north/engineer`, `*`. The counter is the
  runtime's; with a fixed pool, k turns give each of n people k/n of them.
- `claim_pool` ends the chain: nobody is assigned, `pooled=True`, and whoever is left may
  claim the ticket (`Decision.pool`, checked again at claim time by `eligible_for_claim`).
- `manual` ends the chain: nobody is assigned and the ticket is not pooled.

`round_robin`, `claim_pool` and `manual` may only come last (a `RouteRequest` refuses
anything after them). When more than one candidate is left at the end of a chain that ends
otherwise, the tie is broken deterministically: the lowest load if load was fetched for all of
them, then the lowest id; the reason says "tie among n broken by …".

*Nobody.* When a step leaves nobody, routing stops: `assignee=None`, `pooled=False`,
`emptied_by` names the step and `reason` says why, e.g. "nobody assigned — skills: nobody in
team north has hvac ≥ 3". The runtime leaves the ticket unassigned and fires an event.

*Claims.* `eligible_for_claim` answers whether a person may claim a ticket routed with this
request: the person must be among the candidates left by the steps before the chain's final
`claim_pool` (or `round_robin` / `manual`; the whole chain when it has none of those) — the
filters, and the ranking steps too, which narrow the pool. When not, the reason says which
check failed ("not in team engineers", "lacks skill hvac ≥ 3", "has 8 open tickets, the cap
is 8", "off shift", "not among the nearest: …").

*Decision.candidates* is how many were left for the final choice: the pool for `claim_pool`,
the people `manual` leaves to a dispatcher, the set `round_robin` or the tie-break picked from.
*Decision.steps* are `candidates`, the chain's steps in the order they ran (with `cap` where
it ran, when a cap applied to anyone), and the ending: `round_robin`, `tie_break`,
`claim_pool` or `manual`; each says how many it got, how many it left, and why.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from math import inf
from types import MappingProxyType
from typing import Any, Final

from runtime.geo import GeoGrid, check_point

Load = Callable[[Collection[str]], Mapping[str, float]]
NextTurn = Callable[[str], int]

STRATEGIES: Final = frozenset(
    {"manual", "round_robin", "least_loaded", "skills", "nearest", "on_shift", "claim_pool"}
)
# Steps that choose the final answer; they may only come last in a chain.
TERMINAL: Final = frozenset({"round_robin", "claim_pool", "manual"})
# Steps whose result for one person depends on the others (unlike filters).
RANKING: Final = frozenset({"nearest", "least_loaded", "round_robin"})
LOAD_TIE: Final = 1e-9  # loads are weighted sums of floats: treat rounding noise as a tie
MEMO_MAX: Final = 4096  # team × skill intersections a roster keeps

_EMPTY: Final[frozenset[str]] = frozenset()


# -- the directory snapshot ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """One person of the directory, as routing sees them."""

    id: str
    roles: frozenset[str] = _EMPTY
    teams: frozenset[str] = _EMPTY
    skills: Mapping[str, int] = field(default_factory=dict)  # skill -> level, 1..5 usually
    location: tuple[float, float] | None = None  # last known (lat, lon) in degrees
    location_at: datetime | None = None  # when it was known; timezone-aware
    on_shift: Callable[[datetime], bool] | None = None  # None: no schedule, always on shift
    active: bool = True
    max_open: int | None = None  # the person's own cap on open tickets

    def __post_init__(self) -> None:
        if self.location is not None:
            check_point(*self.location)
        if self.location_at is not None and self.location_at.tzinfo is None:
            raise ValueError(f"{self.id}: location_at must be timezone-aware")
        # The roster indexes skills once; a private read-only copy keeps a later change to the
        # caller's dict from making the indexes lie.
        object.__setattr__(self, "skills", MappingProxyType(dict(self.skills)))

    def cap(self, request_cap: int | None) -> int | None:
        """The open-ticket cap that applies to this person: the lower of the two."""
        if self.max_open is None:
            return request_cap
        return self.max_open if request_cap is None else min(self.max_open, request_cap)


class _Skill:
    """Who has a skill at each level: cumulative sets, so "≥ m" is one lookup."""

    __slots__ = ("at_least", "levels")

    def __init__(self, holders: Mapping[str, int]) -> None:
        self.levels = tuple(sorted(set(holders.values())))
        at_least: list[frozenset[str]] = []
        acc: set[str] = set()
        by_level: dict[int, list[str]] = {}
        for pid, level in holders.items():
            by_level.setdefault(level, []).append(pid)
        for level in reversed(self.levels):
            acc.update(by_level[level])
            at_least.append(frozenset(acc))
        self.at_least = tuple(reversed(at_least))  # aligned with self.levels

    def get(self, minimum: int) -> frozenset[str]:
        i = bisect_left(self.levels, minimum)
        return self.at_least[i] if i < len(self.levels) else _EMPTY


class Roster:
    """An immutable snapshot of a tenant's people with the indexes routing needs.

    Indexes cover active people only (nobody else is ever a candidate): by team, by role, by
    skill and level, people with a schedule, people with their own cap, and a spatial grid of
    known locations. Small memos (base sets per team/role, id order of those sets) fill on
    first use (spatial grids of those sets too); they only ever hold the roster's own sets, so
    they stay bounded. A roster may be shared between threads: each memo write is a single
    dict or set operation, and two threads racing only build the same thing twice.
    """

    __slots__ = (
        "_active", "_base", "_capped", "_geo", "_grids", "_narrowed", "_order", "_ordered",
        "_owned", "_people", "_roles", "_scheduled", "_skills", "_teams",
    )  # fmt: skip

    def __init__(self, people: Iterable[Person]) -> None:
        self._people: dict[str, Person] = {}
        for p in people:
            if p.id in self._people:
                raise ValueError(f"person {p.id!r} appears twice")
            self._people[p.id] = p
        active = [p for p in self._people.values() if p.active]
        self._active = frozenset(p.id for p in active)
        self._teams = _index(active, lambda p: p.teams)
        self._roles = _index(active, lambda p: p.roles)
        self._skills = _skill_index(active)
        self._capped = frozenset(p.id for p in active if p.max_open is not None)
        self._scheduled = frozenset(p.id for p in active if p.on_shift is not None)
        self._geo = GeoGrid(_located(active))
        self._order = tuple(sorted(self._active))
        self._base: dict[tuple[str | None, str | None], frozenset[str]] = {}
        self._ordered: dict[int, tuple[frozenset[str], tuple[str, ...]]] = {}
        self._grids: dict[int, GeoGrid] = {}
        self._narrowed: dict[tuple[int, str, int], frozenset[str]] = {}
        owned = [self._active, *self._teams.values(), *self._roles.values()]
        owned += [s for sk in self._skills.values() for s in sk.at_least]
        self._owned = {id(s) for s in owned}

    def __len__(self) -> int:
        return len(self._people)

    def __iter__(self) -> Iterator[Person]:
        return iter(self._people.values())

    def get(self, pid: str) -> Person | None:
        return self._people.get(pid)

    @property
    def active(self) -> frozenset[str]:
        return self._active

    @property
    def geo(self) -> GeoGrid:
        return self._geo

    @property
    def capped(self) -> frozenset[str]:
        """Active people with a cap of their own."""
        return self._capped

    @property
    def scheduled(self) -> frozenset[str]:
        """Active people with a shift schedule."""
        return self._scheduled

    def base(self, team: str | None, role: str | None) -> frozenset[str]:
        """Active people in `team` (any when None) with `role` (any when None)."""
        hit = self._base.get((team, role))
        if hit is not None:
            return hit
        found = self._active if team is None else self._teams.get(team, _EMPTY)
        if role is not None:
            found = found & self._roles.get(role, _EMPTY)
        # Memoize only names the directory knows, so odd requests cannot grow the memo.
        if (team is None or team in self._teams) and (role is None or role in self._roles):
            self._base[(team, role)] = found
            self._owned.add(id(found))
        return found

    def at_least(self, skill: str, minimum: int) -> frozenset[str]:
        """Active people with `skill` at level ≥ `minimum`."""
        sk = self._skills.get(skill)
        return _EMPTY if sk is None else sk.get(minimum)

    def narrow(self, ids: Set[str], skill: str, minimum: int) -> Set[str]:
        """`ids` ∩ the people with `skill` ≥ `minimum`. For one of the roster's own sets (a
        team, say) the answer is kept and becomes one of its own sets, so the next ticket
        for that team and skill reuses it, with its id order and spatial grid."""
        have = self.at_least(skill, minimum)
        if ids is self._active:  # the skill sets hold active people only
            return have
        if not self.owns(ids) or not isinstance(ids, frozenset):
            return ids & have
        key = (id(ids), skill, minimum)
        hit = self._narrowed.get(key)
        if hit is None:
            hit = ids & have
            if len(self._narrowed) < MEMO_MAX:  # bounded whatever the requests look like
                self._narrowed[key] = hit
                self._owned.add(id(hit))
        return hit

    def owns(self, ids: Set[str]) -> bool:
        """Is `ids` one of the roster's own sets (everyone, a team, a role, a skill level)?"""
        return id(ids) in self._owned

    def grid_for(self, ids: Set[str]) -> GeoGrid:
        """A spatial grid of exactly the located people of `ids` when the roster owns `ids`
        (built on first use, then kept), else the grid of everyone. Searching a set's own
        grid skips everybody outside it: the grid of the 1,250 people with a skill finds the
        nearest of them several times faster than the grid of all 10,000 does."""
        if ids is self._active or not self.owns(ids):
            return self._geo
        grid = self._grids.get(id(ids))
        if grid is None:
            grid = self._grids[id(ids)] = self._geo.subset(ids)
        return grid

    def ordered(self, ids: Set[str]) -> tuple[str, ...]:
        """`ids` sorted; memoized for the roster's own sets (a whole team, say)."""
        hit = self._ordered.get(id(ids))
        if hit is not None and hit[0] is ids:
            return hit[1]
        if len(ids) * 8 > len(self._order):  # a large share: filter the presorted ids
            out = tuple(pid for pid in self._order if pid in ids)
        else:
            out = tuple(sorted(ids))
        if id(ids) in self._owned and isinstance(ids, frozenset):
            self._ordered[id(ids)] = (ids, out)
        return out


def _index(
    people: list[Person], keys: Callable[[Person], Iterable[str]]
) -> dict[str, frozenset[str]]:
    acc: dict[str, list[str]] = {}
    for p in people:
        for k in keys(p):
            acc.setdefault(k, []).append(p.id)
    return {k: frozenset(v) for k, v in acc.items()}


def _skill_index(people: list[Person]) -> dict[str, _Skill]:
    holders: dict[str, dict[str, int]] = {}
    for p in people:
        for skill, level in p.skills.items():
            holders.setdefault(skill, {})[p.id] = level
    return {skill: _Skill(h) for skill, h in holders.items()}


def _located(people: list[Person]) -> Iterable[tuple[str, float, float, float]]:
    for p in people:
        if p.location is not None:
            # A location of unknown age gets -inf: stale under any location_max_age.
            stamp = -inf if p.location_at is None else p.location_at.timestamp()
            yield p.id, p.location[0], p.location[1], stamp


# -- requests and decisions ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteRequest:
    """What a ticket needs of its assignee (see the module doc for the semantics)."""

    strategies: tuple[str, ...]
    now: datetime
    team: str | None = None
    role: str | None = None
    skills: Mapping[str, int] = field(default_factory=dict)  # skill -> minimum level
    location: tuple[float, float] | None = None
    max_open: int | None = None
    on_shift_only: bool = False
    near_tie_km: float = 1.0
    max_km: float | None = None
    location_max_age: timedelta | None = None
    pool_key: str | None = None  # round_robin's counter key; default from team and role

    def __post_init__(self) -> None:
        for problem in _chain_problems(tuple(self.strategies)):
            raise ValueError(problem)
        if self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if self.location is not None:
            check_point(*self.location)
        for skill, level in self.skills.items():
            if level < 1:
                raise ValueError(f"skill {skill}: the minimum level must be ≥ 1, not {level}")
        if self.near_tie_km < 0 or (self.max_km is not None and self.max_km < 0):
            raise ValueError("near_tie_km and max_km must not be negative")
        if self.max_open is not None and self.max_open < 1:
            raise ValueError(f"max_open must be ≥ 1, not {self.max_open}")

    @property
    def key(self) -> str:
        """The round-robin counter key: `pool_key`, else team (or `*`) and role."""
        if self.pool_key is not None:
            return self.pool_key
        team = self.team if self.team is not None else "*"
        return team if self.role is None else f"{team}/{self.role}"


def chain_problems(strategies: Iterable[str]) -> list[str]:
    """What is wrong with a chain of strategies (empty when it is fine). For validators."""
    return list(_chain_problems(tuple(strategies)))


@lru_cache(maxsize=256)
def _chain_problems(chain: tuple[str, ...]) -> tuple[str, ...]:
    # Cached: a pack has a handful of chains and a request is built for every ticket.
    if not chain:
        return ("a routing chain needs at least one strategy",)
    out = [f"unknown routing strategy {s!r}" for s in chain if s not in STRATEGIES]
    out += [
        f"{s} picks the answer, so it must come last (found before {chain[i + 1]})"
        for i, s in enumerate(chain[:-1])
        if s in TERMINAL
    ]
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a decision: how many candidates it got and left, and why."""

    strategy: str  # a strategy, or "candidates", "cap", "tie_break"
    before: int
    after: int
    detail: str  # e.g. "3 of 12 have hvac ≥ 3"

    def as_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "before": self.before,
            "after": self.after,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of routing one ticket."""

    assignee: str | None
    pooled: bool  # claim_pool: left for the people in `pool` to claim
    candidates: int  # how many were left for the final choice (see the module doc)
    steps: tuple[Step, ...]
    reason: str  # one sentence: why this person, or why nobody
    emptied_by: str | None = None  # the step that left nobody
    pool: tuple[str, ...] = ()  # who may claim, sorted by id (claim_pool only)

    def as_json(self) -> dict[str, Any]:
        """For the ticket's timeline. The pool itself is left out (it can be thousands of
        ids); `candidates` gives its size."""
        return {
            "assignee": self.assignee,
            "pooled": self.pooled,
            "candidates": self.candidates,
            "reason": self.reason,
            "emptied_by": self.emptied_by,
            "steps": [s.as_json() for s in self.steps],
        }


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    """May a person claim a pooled ticket? `reason` says why not (or why so)."""

    allowed: bool
    reason: str
    step: str | None = None  # the check that failed

    def __bool__(self) -> bool:
        return self.allowed


# -- routing ------------------------------------------------------------------------------


def route(roster: Roster, request: RouteRequest, load: Load, next_turn: NextTurn) -> Decision:
    """Route one ticket: apply the request's chain to the roster (see the module doc)."""
    run = _Run(roster, request, load, roster.base(request.team, request.role))
    body, last = _plan(request)
    for name in ("candidates", *body):
        if not run.apply(name):
            return run.nobody()
    if last in ("manual", "claim_pool"):
        run.apply(last)  # recorded, so the timeline shows how the chain ended
        return run.left(pooled=last == "claim_pool")
    n = len(run.cands)
    if last == "round_robin":
        run.apply("round_robin", next_turn)
    elif n > 1:
        run.apply("tie_break")
    return run.chosen(n)


def eligible_for_claim(
    roster: Roster, request: RouteRequest, person_id: str, load: Load
) -> ClaimCheck:
    """May `person_id` claim a ticket routed with `request`? (See the module doc.)"""
    base = roster.base(request.team, request.role)
    body, _ = _plan(request)
    # Filters judge each person alone, so without a ranking step checking just this one
    # person gives the same answer and asks `load` about nobody else.
    alone = not any(name in RANKING for name in body)
    start = (base & {person_id}) if alone else base
    run = _Run(roster, request, load, start)
    for name in ("candidates", *body):
        run.apply(name)
        if person_id not in run.cands:
            return ClaimCheck(False, run.why_not(person_id), run.last_step)
    why = ", ".join(p for p in run.praise(person_id) if p)
    return ClaimCheck(True, f"{person_id} may claim" + (f": {why}" if why else ""))


def _plan(request: RouteRequest) -> tuple[tuple[str, ...], str | None]:
    """The steps to run (with on_shift_only and the cap placed) and the final picker."""
    chain = list(request.strategies)
    if request.on_shift_only and chain[0] != "on_shift":
        chain.insert(0, "on_shift")
    last = chain.pop() if chain[-1] in TERMINAL else None
    # The cap goes before the first step whose outcome depends on who else is there.
    at = next((i for i, s in enumerate(chain) if s in RANKING), len(chain))
    chain.insert(at, "cap")
    return tuple(chain), last


# -- one routing run ----------------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    kept: Set[str]
    detail: str
    empty: Callable[[], str]  # why nobody is left (called only then)
    why_not: Callable[[str], str]  # why this person was dropped
    praise: Callable[[str], str | None]  # what this step says for the chosen person
    record: bool = True  # show it among the steps


class _Run:
    """The state of routing one ticket: candidates, loads and distances fetched so far."""

    __slots__ = ("base_n", "cands", "dist", "last_step", "load_fn", "loads", "outcomes", "owner",
                 "req", "roster", "steps")  # fmt: skip

    def __init__(self, roster: Roster, req: RouteRequest, load: Load, start: Set[str]) -> None:
        self.roster, self.req, self.load_fn = roster, req, load
        self.cands: Set[str] = start
        # The smallest of the roster's own sets known to hold every candidate: `nearest`
        # searches that set's spatial grid.
        self.owner: Set[str] = start
        self.base_n = len(start)
        self.loads: dict[str, float] = {}
        self.dist: dict[str, float] = {}
        self.steps: list[Step] = []
        self.outcomes: list[_Outcome] = []
        self.last_step: str | None = None

    # -- driving

    def apply(self, name: str, next_turn: NextTurn | None = None) -> bool:
        """Run one step; False when it left nobody."""
        before = len(self.roster) if name == "candidates" else len(self.cands)
        if name == "round_robin":
            assert next_turn is not None
            out = _round_robin(self, next_turn)
        else:
            out = _STEPS[name](self)
        self.cands, self.last_step = out.kept, name
        self.outcomes.append(out)
        if out.record:
            self.steps.append(Step(name, before, len(out.kept), out.detail))
        return bool(out.kept)

    def fetch(self, ids: Iterable[str]) -> None:
        """Make sure self.loads has every id; ask `load` only about the missing ones."""
        missing = [pid for pid in ids if pid not in self.loads]
        if missing:
            got = self.load_fn(missing)
            for pid in missing:
                self.loads[pid] = float(got.get(pid, 0.0))

    def praise(self, pid: str) -> list[str | None]:
        return [o.praise(pid) for o in self.outcomes]

    def why_not(self, pid: str) -> str:
        return self.outcomes[-1].why_not(pid)

    # -- describing

    def scope(self) -> str:
        """in team north with role engineer"""
        parts = []
        if self.req.team is not None:
            parts.append(f"in team {self.req.team}")
        if self.req.role is not None:
            parts.append(f"with role {self.req.role}")
        return "".join(" " + p for p in parts)

    def who(self, before: int) -> str:
        """The subject of an emptied step: "nobody in team north" or "none of the 4 left"."""
        # Steps only ever narrow, so an unchanged count means nothing was dropped yet.
        if before == self.base_n:
            return "nobody" + self.scope()
        return f"none of the {before} left" + self.scope()

    # -- endings

    def nobody(self) -> Decision:
        why = self.outcomes[-1].empty()
        return Decision(
            None,
            False,
            0,
            tuple(self.steps),
            f"nobody assigned — {self.last_step}: {why}",
            self.last_step,
        )

    def left(self, pooled: bool) -> Decision:
        n = len(self.cands)
        details = "; ".join(s.detail for s in self.steps[1:] if s.before != s.after)
        if pooled:
            head = f"pooled: {n} may claim"
            pool = self.roster.ordered(self.cands)
        else:
            head, pool = f"left for manual assignment: {n} eligible", ()
        reason = head + (f" ({details})" if details else "")
        return Decision(None, pooled, n, tuple(self.steps), reason, None, pool)

    def chosen(self, n: int) -> Decision:
        (pid,) = self.cands
        why = ", ".join(p for p in self.praise(pid) if p)
        reason = f"chosen: {pid} — " + (why or f"the only eligible person{self.scope()}")
        return Decision(pid, False, n, tuple(self.steps), reason)


# -- the steps ----------------------------------------------------------------------------


# For what a step has nothing to say about: the chosen person (`_never`), an emptied set
# (steps that never empty it: `_no_text`), a dropped person (steps that drop nobody).


def _never(_: str) -> None:
    return None


def _no_text() -> str:
    return ""


def _no_reason(_: str) -> str:
    return ""


def _candidates(run: _Run) -> _Outcome:
    roster, req = run.roster, run.req
    kept = run.cands

    def why_not(pid: str) -> str:
        person = roster.get(pid)
        if person is None:
            return f"{pid} is not in the directory"
        if not person.active:
            return f"{pid} is not active"
        if req.team is not None and req.team not in person.teams:
            return f"not in team {req.team}"
        return f"does not have role {req.role}"

    scope = run.scope()
    return _Outcome(
        kept,
        f"{run.base_n} of {len(roster)} people active{scope}",
        lambda: f"nobody active{scope}" if scope else "nobody is active",
        why_not,
        _never,
    )


def _cap(run: _Run) -> _Outcome:
    req, roster, cands = run.req, run.roster, run.cands
    subject = cands if req.max_open is not None else cands & roster.capped
    if not subject:  # no cap applies to anyone here: no step, no load
        return _Outcome(cands, "", _no_text, _no_reason, _never, record=False)
    run.fetch(subject)

    def cap(pid: str) -> int:
        person = roster.get(pid)
        value = person.cap(req.max_open) if person is not None else req.max_open
        assert value is not None  # `subject` holds only people with a cap
        return value

    before = len(cands)
    over = {pid for pid in subject if run.loads[pid] >= cap(pid)}
    kept = cands - over if over else cands
    return _Outcome(
        kept,
        f"dropped {len(over)} of {before} at or over their open-ticket cap"
        + (f" (the request's cap is {req.max_open})" if req.max_open else ""),
        lambda: f"{_everyone(run, before)} at or over the open-ticket cap",
        lambda pid: f"has {_num(run.loads[pid])} open tickets, the cap is {cap(pid)}",
        _never,
    )


def _on_shift(run: _Run) -> _Outcome:
    roster, cands, now = run.roster, run.cands, run.req.now
    off = set()
    for pid in cands & roster.scheduled:
        person = roster.get(pid)
        if person is not None and person.on_shift is not None and not person.on_shift(now):
            off.add(pid)
    kept = cands - off if off else cands
    before = len(cands)
    return _Outcome(
        kept,
        f"{len(kept)} of {before} on shift",
        lambda: f"{run.who(before)} is on shift",
        lambda _: "off shift",
        lambda _: "on shift",
    )


def _skills(run: _Run) -> _Outcome:
    roster, cands, before = run.roster, run.cands, len(run.cands)
    needs = sorted(run.req.skills.items())
    if not needs:
        return _Outcome(cands, "no skills required", _no_text, _no_reason, _never)
    kept: Set[str] = cands
    for skill, minimum in needs:
        kept = roster.narrow(kept, skill, minimum)
        have = kept if roster.owns(kept) else roster.at_least(skill, minimum)
        if len(have) < len(run.owner):
            run.owner = have
    text = " and ".join(f"{s} ≥ {m}" for s, m in needs)

    def why_not(pid: str) -> str:
        person = roster.get(pid)
        levels = person.skills if person is not None else {}
        for skill, minimum in needs:
            level = levels.get(skill, 0)
            if level < minimum:
                return f"lacks skill {skill} ≥ {minimum}" + (f" (has {level})" if level else "")
        return f"lacks {text}"

    return _Outcome(
        kept,
        f"{len(kept)} of {before} have {text}",
        lambda: f"{run.who(before)} has {text}",
        why_not,
        lambda _: f"has {text}" + (f" ({len(kept)} of {before})" if before > 1 else ""),
    )


def _nearest(run: _Run) -> _Outcome:
    req, geo, cands, before = run.req, run.roster.geo, run.cands, len(run.cands)
    if req.location is None:
        note = f"the ticket has no location; kept all {before}"
        return _Outcome(cands, note, _no_text, _no_reason, _never)
    lat, lon = req.location
    tie, max_km = req.near_tie_km, req.max_km
    min_stamp = (
        -inf if req.location_max_age is None else (req.now - req.location_max_age).timestamp()
    )
    grid = run.roster.grid_for(run.owner)
    # Candidates are a subset of the owner set: equal sizes mean the same people, and then
    # the owner's own grid needs no membership test.
    exact = run.roster.owns(run.owner) and len(cands) == len(run.owner)
    among = None if exact else cands
    group = grid.nearest(lat, lon, among=among, tie_km=tie, max_km=max_km, min_stamp=min_stamp)
    fresh = "" if req.location_max_age is None else f" from the last {_age(req.location_max_age)}"

    def located(pid: str) -> float | None:
        stamp = geo.stamp(pid)
        return None if stamp is None or stamp < min_stamp else geo.distance_km(lat, lon, pid)

    if not group and max_km is None:  # nobody has a usable location: nothing to rank by
        note = f"none of the {before} has a location{fresh}; kept all"
        return _Outcome(cands, note, _no_text, _no_reason, _never)
    if not group:
        return _nearest_none(run, among, min_stamp, fresh, located)
    best = group[0][0]
    run.dist.update((pid, d) for d, pid in group)
    kept = frozenset(pid for _, pid in group)

    def why_not(pid: str) -> str:
        d = located(pid)
        if d is None:
            return f"has no location{fresh}"
        if max_km is not None and d > max_km:
            return f"{_km(d)} away, farther than {_lim(max_km)}"
        return f"not among the nearest: {_km(d)} away, the nearest is {_km(best)}"

    def praise(pid: str) -> str:
        d = run.dist[pid]
        if d == best:
            return f"nearest at {_km(d)}"
        return f"{_km(d)} away, within {_lim(tie)} of the nearest ({_km(best)})"

    limit = "" if max_km is None else f", none farther than {_lim(max_km)}"
    detail = f"{len(kept)} of {before} within {_lim(tie)} of the nearest ({_km(best)}){limit}"
    return _Outcome(kept, detail, _no_text, why_not, praise)


def _nearest_none(
    run: _Run,
    among: Set[str] | None,
    min_stamp: float,
    fresh: str,
    located: Callable[[str], float | None],
) -> _Outcome:
    """`nearest` with max_km when nobody is within it: name the nearest for the reason."""
    req, before = run.req, len(run.cands)
    assert req.location is not None and req.max_km is not None
    lat, lon = req.location
    closest = run.roster.grid_for(run.owner).nearest(lat, lon, among=among, min_stamp=min_stamp)
    limit = _lim(req.max_km)
    if closest:
        d, pid = closest[0]
        why = f"{run.who(before)} is within {limit} (the nearest, {pid}, is {_km(d)} away)"
    else:
        why = f"{run.who(before)} has a location{fresh} to check against {limit}"

    def why_not(pid: str) -> str:
        d = located(pid)
        return f"has no location{fresh}" if d is None else f"{_km(d)} away, farther than {limit}"

    return _Outcome(_EMPTY, f"nobody within {limit}", lambda: why, why_not, _never)


def _least_loaded(run: _Run) -> _Outcome:
    cands, before = run.cands, len(run.cands)
    run.fetch(cands)
    loads = run.loads
    low = min(loads[pid] for pid in cands)
    kept = frozenset(pid for pid in cands if loads[pid] <= low + LOAD_TIE)
    return _Outcome(
        kept,
        f"{len(kept)} of {before} with the fewest open tickets ({_num(low)})",
        _no_text,
        lambda pid: (
            f"not among the least loaded: {_num(loads[pid])} open tickets, "
            f"the lowest is {_num(low)}"
        ),
        lambda _: f"fewest open tickets ({_num(low)})",
    )


def _round_robin(run: _Run, next_turn: NextTurn) -> _Outcome:
    order = run.roster.ordered(run.cands)
    key = run.req.key
    turn = next_turn(key)
    i = turn % len(order)
    pid = order[i]
    return _Outcome(
        frozenset((pid,)),
        f"turn {turn} of pool {key}: #{i + 1} of {len(order)} by id",
        _no_text,
        _no_reason,
        lambda _: f"round-robin turn {turn} in {key} (#{i + 1} of {len(order)} by id)",
    )


def _tie_break(run: _Run) -> _Outcome:
    cands, loads = run.cands, run.loads
    n = len(cands)
    if all(pid in loads for pid in cands):
        pid = min(cands, key=lambda p: (loads[p], p))
        how = f"lowest open load ({_num(loads[pid])}), then id"
    else:
        pid = min(cands)
        how = "lowest id"
    return _Outcome(
        frozenset((pid,)),
        f"{how}, among {n}",
        _no_text,
        _no_reason,
        lambda _: f"tie among {n} broken by {how}",
    )


def _manual(run: _Run) -> _Outcome:
    n = len(run.cands)
    return _Outcome(
        run.cands, f"left for manual assignment, {n} eligible", _no_text, _no_reason, _never
    )


def _claim_pool(run: _Run) -> _Outcome:
    n = len(run.cands)
    return _Outcome(run.cands, f"pooled: {n} may claim", _no_text, _no_reason, _never)


_STEPS: Final[dict[str, Callable[[_Run], _Outcome]]] = {
    "candidates": _candidates,
    "cap": _cap,
    "on_shift": _on_shift,
    "skills": _skills,
    "nearest": _nearest,
    "least_loaded": _least_loaded,
    "tie_break": _tie_break,
    "manual": _manual,
    "claim_pool": _claim_pool,
}


# -- wording ------------------------------------------------------------------------------


def _everyone(run: _Run, before: int) -> str:
    if before == run.base_n:
        return f"everyone{run.scope()} is"
    if before == 1:
        return f"the only one left{run.scope()} is"
    return f"all {before} left{run.scope()} are"


def _num(x: float) -> str:
    return f"{round(x, 2):g}"


def _km(x: float) -> str:
    return f"{x:,.1f} km" if x >= 0.1 or x == 0 else f"{x * 1000:.0f} m"


def _lim(x: float) -> str:
    """A configured distance, as the admin wrote it: "1 km", "0.5 km"."""
    return f"{x:g} km"


def _age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
