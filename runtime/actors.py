"""Who acts: a person (or the system) with roles, teams and directory attributes, always
within one tenant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

SYSTEM_ID = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller of a command. Every command and read is scoped to `tenant`."""

    id: str
    roles: frozenset[str]
    tenant: str = "default"
    name: str | None = None
    email: str | None = None
    locale: str | None = None
    teams: frozenset[str] = frozenset()
    skills: frozenset[str] = frozenset()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # Set only by the runtime's own automations (rules, timers): never derived from an id, so
    # a user who happens to be called "system" gains nothing.
    automated: bool = False
    _env: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, id: str, roles: Iterable[str], tenant: str = "default", **kw: Any) -> Actor:
        """Convenience constructor taking any iterables."""
        for key in ("teams", "skills"):
            if key in kw:
                kw[key] = frozenset(kw[key])
        return cls(id=id, roles=frozenset(roles), tenant=tenant, **kw)

    @classmethod
    def system(cls, tenant: str = "default") -> Actor:
        """Automations: rules, timers, migrations. Bypasses role checks, not field rules."""
        return _system(tenant)

    @classmethod
    def automation_as(cls, role: str, tenant: str) -> Actor:
        """A rule taking a transition in a role: the role's transition rules apply."""
        return cls(id=f"{SYSTEM_ID}:{role}", roles=frozenset({role}), tenant=tenant, automated=True)

    @property
    def is_system(self) -> bool:
        return self.automated and not self.roles

    @property
    def is_automation(self) -> bool:
        """Rules and timers, also when acting in a role (`system:<role>`)."""
        return self.automated

    @property
    def team(self) -> str | None:
        return min(self.teams) if self.teams else None

    def env(self) -> dict[str, Any]:
        """What expressions read as `actor.<name>` (built once per actor; do not change it)."""
        if self._env is None:
            object.__setattr__(self, "_env", self._build_env())
        assert self._env is not None
        return self._env

    def _build_env(self) -> dict[str, Any]:
        env: dict[str, Any] = {
            "actor.id": self.id,
            "actor.name": self.name,
            "actor.email": self.email,
            "actor.locale": self.locale,
            "actor.roles": sorted(self.roles),
            "actor.team": self.team,
            "actor.teams": sorted(self.teams),
            "actor.skills": sorted(self.skills),
        }
        for key, value in self.attributes.items():
            env[f"actor.{key}"] = value
        return env


@lru_cache(maxsize=1024)
def _system(tenant: str) -> Actor:
    # One per tenant, shared: an actor never changes, and every rule action asks for it.
    return Actor(id=SYSTEM_ID, roles=frozenset(), tenant=tenant, automated=True)
