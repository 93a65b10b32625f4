"""The people directory at run time: stored per tenant, cached per process as an indexed
snapshot that routing reads, reloaded only when the tenant's directory revision moves.

Writes are all-or-nothing: a batch with one unknown team is refused whole, with every
problem located, and the stored directory is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from threading import Lock
from typing import Any

from dsl.source_map import SourceMap
from engine.blueprint import Blueprint
from engine.people import DirectoryError, PersonSpec, check_people
from runtime.actors import Actor
from runtime.calendars import BusinessCalendar, calendars_of
from runtime.records import PersonRow
from runtime.routing import Person, Roster
from runtime.store.base import Tx


@dataclass(frozen=True, slots=True)
class TenantDirectory:
    """One revision of a tenant's directory: the people as loaded, and a routing roster."""

    rev: int
    people: Mapping[str, PersonSpec]
    roster: Roster

    def get(self, person_id: str) -> PersonSpec | None:
        return self.people.get(person_id)

    def with_role(self, role: str, team: str | None = None) -> tuple[str, ...]:
        """Active people holding `role` (in `team` when given), by id."""
        return self.roster.ordered(self.roster.base(team, role))

    def members(self, team: str) -> tuple[str, ...]:
        """Active members of `team`, by id."""
        return self.roster.ordered(self.roster.base(team, None))

    def actor(self, person_id: str, tenant: str) -> Actor | None:
        """The person as an actor (roles, teams, skills, attributes), or None if unknown."""
        spec = self.people.get(person_id)
        return None if spec is None else actor_of(spec, tenant)


def actor_of(spec: PersonSpec, tenant: str) -> Actor:
    return Actor.of(
        spec.id,
        spec.roles,
        tenant,
        name=spec.name,
        email=spec.email,
        locale=spec.locale,
        teams=spec.teams,
        skills=spec.skill_levels(),
        attributes=dict(spec.attributes),
    )


def build(
    rev: int, specs: Iterable[PersonSpec], calendars: Mapping[str, BusinessCalendar]
) -> TenantDirectory:
    people = {s.id: s for s in specs}
    return TenantDirectory(rev, people, Roster(_person(s, calendars) for s in people.values()))


def _person(spec: PersonSpec, calendars: Mapping[str, BusinessCalendar]) -> Person:
    loc = spec.location
    cal = calendars.get(spec.schedule) if spec.schedule else None
    return Person(
        id=spec.id,
        roles=frozenset(spec.roles),
        teams=frozenset(spec.teams),
        skills=spec.skill_levels(),
        location=(loc.lat, loc.lon) if loc is not None else None,
        location_at=loc.at if loc is not None else None,
        on_shift=cal.is_open if cal is not None else None,
        active=spec.active,
        max_open=spec.max_open,
    )


def tenant_calendars(blueprints: Iterable[Blueprint]) -> dict[str, BusinessCalendar]:
    """Every calendar the tenant's current packs declare (a person's `schedule` names one)."""
    out: dict[str, BusinessCalendar] = {}
    for bp in blueprints:
        out.update(calendars_of(bp))
    return out


class Directory:
    """Per-process cache of each tenant's directory, keyed by the stored revision."""

    def __init__(self, blueprints: Callable[[str], list[Blueprint]]) -> None:
        self._blueprints = blueprints
        self._cache: dict[str, TenantDirectory] = {}
        self._lock = Lock()

    def snapshot(self, tx: Tx, tenant: str) -> TenantDirectory:
        """The tenant's directory as of this transaction (one cheap revision read)."""
        rev = tx.directory_rev(tenant)
        cached = self._cache.get(tenant)
        if cached is not None and cached.rev == rev:
            return cached
        specs = [PersonSpec.model_validate(row.data) for row in tx.people(tenant)]
        fresh = build(rev, specs, tenant_calendars(self._blueprints(tenant)))
        with self._lock:
            self._cache[tenant] = fresh
        return fresh

    def put(
        self,
        tx: Tx,
        tenant: str,
        people: Sequence[PersonSpec],
        now: datetime,
        *,
        replace: bool = False,
        source: SourceMap | None = None,
        file: str = "<people>",
    ) -> tuple[int, int]:
        """Insert or update people (all or none); with `replace`, remove everyone else.
        Returns (written, removed)."""
        models = [bp.model for bp in self._blueprints(tenant)]
        problems = check_people(people, models, source or SourceMap(), file)
        if problems:
            raise DirectoryError(problems)
        rows = [PersonRow(tenant, p.id, _dump(p), now) for p in people]
        if rows:
            tx.put_people(tenant, rows)
        removed = 0
        if replace:
            keep = {p.id for p in people}
            gone = [row.id for row in tx.people(tenant) if row.id not in keep]
            removed = tx.remove_people(tenant, gone) if gone else 0
        return len(rows), removed


def _dump(spec: PersonSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude_defaults=True)
