"""Tickets as callers see them, and the expression environment of a ticket."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from engine.blueprint import TemplateBp
from runtime.actors import Actor
from runtime.records import EventRow, TicketRow

# Ticket attributes stored as columns, with the names expressions read them by.
ATTRIBUTES = ("title", "assignee", "team", "requester", "channel", "watchers", "tags")
_ATTRIBUTE_KEYS = tuple((f"ticket.{name}", name) for name in ATTRIBUTES)


def build_env(
    row: TicketRow, tpl: TemplateBp, actor: Actor | None, now: datetime
) -> dict[str, Any]:
    """The flat mapping expressions evaluate against (see `engine.expr_eval.env_key`)."""
    env = tpl.form.to_env(row.fields)
    env["state"] = row.state
    env["now"] = now.astimezone(tpl.tz)
    env["ticket.id"] = row.id
    env["ticket.ref"] = row.ref
    env["ticket.template"] = row.template
    env["ticket.created_at"] = row.created_at
    env["ticket.updated_at"] = row.updated_at
    env["ticket.state_entered_at"] = row.state_entered_at
    for key, name in _ATTRIBUTE_KEYS:
        env[key] = getattr(row, name)
    if actor is not None:
        env.update(actor.env())
    return env


def to_json_value(value: Any) -> Any:
    """A value computed by an expression, in its stored JSON form."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        text = f"{hours}h" * bool(hours) + f"{minutes}m" * bool(minutes) + f"{secs}s" * bool(secs)
        return text or "0m"
    return value


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket as one actor may see it: unreadable fields are absent."""

    id: str
    ref: str
    template: str
    state: str
    version: int
    fields: dict[str, Any]
    title: str | None
    requester: str | None
    assignee: str | None
    team: str | None
    channel: str | None
    watchers: list[str]
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    state_entered_at: datetime
    closed: bool
    pack: str
    pack_version: int
    parent_id: str | None
    link: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def view(row: TicketRow, readable: frozenset[str]) -> Ticket:
    """The ticket with only the fields in `readable`."""
    return Ticket(
        id=row.id,
        ref=row.ref,
        template=row.template,
        state=row.state,
        version=row.version,
        fields={k: v for k, v in row.fields.items() if k in readable},
        title=row.title,
        requester=row.requester,
        assignee=row.assignee,
        team=row.team,
        channel=row.channel,
        watchers=list(row.watchers),
        tags=list(row.tags),
        created_at=row.created_at,
        updated_at=row.updated_at,
        state_entered_at=row.state_entered_at,
        closed=row.closed,
        pack=row.pack,
        pack_version=row.pack_version,
        parent_id=row.parent_id,
        link=row.link,
    )


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One timeline entry as an actor may see it."""

    seq: int
    at: datetime
    kind: str
    actor: str
    data: dict[str, Any]
    visibility: str


def mask_event(event: EventRow, readable: frozenset[str]) -> TimelineEntry:
    """Drop field values the actor may not read from an event's detail."""
    data = dict(event.data)
    for key in ("changes", "fields"):
        if isinstance(data.get(key), dict):
            data[key] = {k: v for k, v in data[key].items() if k in readable or k in ATTRIBUTES}
    return TimelineEntry(event.seq, event.at, event.kind, event.actor, data, event.visibility)
