"""Types of the expression language and the names a template's expressions may read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.fields import field_options


@dataclass(frozen=True, slots=True)
class Type:
    """A static type; `options` narrows text to known values (choice fields, states)."""

    kind: str
    item: Type | None = None
    options: frozenset[str] | None = None

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list of {self.item}" if self.item and self.item.kind != "any" else "list"
        return self.kind

    def plain(self) -> Type:
        """The type without its option set."""
        return Type(self.kind, self.item)


TEXT = Type("text")
NUMBER = Type("number")
BOOLEAN = Type("boolean")
DURATION = Type("duration")
DATETIME = Type("datetime")
DATE = Type("date")
NULL = Type("null")
ANY = Type("any")
LOCATION = Type("location")


def list_of(item: Type) -> Type:
    """The list type of `item`."""
    return Type("list", item)


def choice(options: Iterable[str]) -> Type:
    """Text limited to `options`."""
    return Type("text", options=frozenset(options))


_FIELD_TYPES: dict[str, Type] = {
    "text": TEXT,
    "long_text": TEXT,
    "email": TEXT,
    "phone": TEXT,
    "url": TEXT,
    "user": TEXT,
    "team": TEXT,
    "asset": TEXT,
    "integer": NUMBER,
    "number": NUMBER,
    "money": NUMBER,
    "rating": NUMBER,
    "boolean": BOOLEAN,
    "date": DATE,
    "datetime": DATETIME,
    "duration": DURATION,
    "location": LOCATION,
    "signature": ANY,
    "attachments": list_of(ANY),
    "table": list_of(ANY),
}


def field_type(spec: Any) -> Type:
    """The expression type of a template field."""
    kind = spec.type
    if kind == "choice":
        return choice(field_options(spec) or [])
    if kind == "multi_choice":
        return list_of(choice(field_options(spec) or []))
    if kind == "computed":
        return _FIELD_TYPES.get(spec.result, ANY)
    return _FIELD_TYPES.get(kind, ANY)


# Ticket attributes every template has (besides its fields), readable as `ticket.<name>`.
TICKET_ATTRIBUTES: dict[str, Type] = {
    "id": TEXT,
    "ref": TEXT,
    "title": TEXT,
    "description": TEXT,
    "template": TEXT,
    "assignee": TEXT,
    "requester": TEXT,
    "team": TEXT,
    "channel": TEXT,
    "tags": list_of(TEXT),
    "watchers": list_of(TEXT),
    "created_at": DATETIME,
    "updated_at": DATETIME,
    "state_entered_at": DATETIME,
}

SLA_ATTRIBUTES: dict[str, Type] = {
    "remaining": DURATION,
    "elapsed": DURATION,
    "progress": NUMBER,
    "due": DATETIME,
    "state": choice(["running", "paused", "warning", "breached", "met", "stopped"]),
}


BUILTIN_ACTOR_ATTRIBUTES = ("id", "name", "email", "locale", "roles", "team", "teams", "skills")


def actor_attributes(
    roles: Iterable[str], teams: Iterable[str], custom: dict[str, Type]
) -> dict[str, Type]:
    """What `actor.<name>` may read: the person acting, with the pack's custom attributes."""
    base = {
        "id": TEXT,
        "name": TEXT,
        "email": TEXT,
        "locale": TEXT,
        "roles": list_of(choice(roles)),
        "team": choice(teams) if teams else TEXT,
        "teams": list_of(choice(teams) if teams else TEXT),
        "skills": list_of(TEXT),
    }
    return {**base, **custom}


ATTRIBUTE_TYPES: dict[str, Type] = {
    "text": TEXT,
    "number": NUMBER,
    "boolean": BOOLEAN,
    "list": list_of(TEXT),
}

ROOTS = ("ticket", "actor", "sla")
# What an expression reads without a prefix, and its keywords: no field may be called so.
RESERVED_NAMES = frozenset(
    {"ticket", "actor", "sla", "now", "state", "and", "or", "not", "in", "true", "false", "null"}
)


@dataclass(slots=True)
class Scope:
    """Everything an expression on one template may read, with types."""

    fields: dict[str, Type]
    states: frozenset[str]
    actor: dict[str, Type]
    template: str = ""
    # Known values of built-in ticket attributes (team, template, channel), when declared.
    ticket_values: dict[str, Type] | None = None

    def top_level(self) -> dict[str, Type]:
        """Names usable without a prefix."""
        return {
            **self.fields,
            "state": choice(self.states),
            "now": DATETIME,
        }

    def members(self, root: str) -> dict[str, Type]:
        """Names under `ticket.`, `actor.` or `sla.`."""
        if root == "ticket":
            return {
                **TICKET_ATTRIBUTES,
                **(self.ticket_values or {}),
                **self.fields,
                "state": choice(self.states),
            }
        if root == "actor":
            return self.actor
        return SLA_ATTRIBUTES
