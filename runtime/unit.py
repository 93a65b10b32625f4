"""One command's unit of work: the tickets it read and changed, the events, audit entries,
outbox messages and timers it produced, and the rule signals still to dispatch. Everything
is written by `flush` inside the command's single transaction."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.blueprint import Blueprint, TemplateBp
from runtime.actors import Actor
from runtime.records import (
    AuditDraft,
    EventRow,
    EventVisibility,
    NotFound,
    OutboxRow,
    TicketRow,
    TimerRow,
)
from runtime.store.base import Tx

if TYPE_CHECKING:
    from runtime.directory import TenantDirectory

BlueprintLookup = Callable[[str, str, int], Blueprint]


@dataclass(slots=True)
class Tracked:
    """A ticket read or created by this command."""

    row: TicketRow
    bp: Blueprint
    tpl: TemplateBp
    expected_version: int | None  # None: created by this command
    dirty: bool = False
    seen_by: str | None = None  # the actor already found to see it in this command


@dataclass(slots=True)
class Activity:
    """What a command did that SLA clocks care about, per ticket."""

    staff_response: bool = False  # a staff person answered publicly or moved the ticket
    requester_comment: bool = False  # the requester wrote publicly


@dataclass(frozen=True, slots=True)
class Signal:
    """Something that happened to a ticket that rules may react to."""

    ticket_id: str
    key: str  # blueprint event key, e.g. `entered:resolved`
    depth: int
    changed: frozenset[str] = frozenset()
    data: dict[str, Any] = field(default_factory=dict)


class Unit:
    """Collects a command's writes; `flush` writes them in one go."""

    def __init__(
        self,
        tx: Tx,
        tenant: str,
        now: datetime,
        blueprints: BlueprintLookup,
        new_id: Callable[[], str],
        actor: Actor | None = None,
    ) -> None:
        self.tx = tx
        self.actor = actor  # who issued the command (None: a timer)
        self.tenant = tenant
        self.now = now
        self.blueprints = blueprints
        self.new_id = new_id
        self.tracked: dict[str, Tracked] = {}
        self.events: list[EventRow] = []
        self.audit: list[AuditDraft] = []
        self.outbox: list[OutboxRow] = []
        self.timers: list[TimerRow] = []
        self.signals: deque[Signal] = deque()
        self.notes: list[str] = []  # rule outcomes, for simulate's output
        self.fired = 0  # rules run so far in this command
        self.cancels: list[tuple[str, str]] = []  # (ticket id, timer key) to cancel
        self.activity: dict[str, Activity] = {}
        self.mentions: dict[str, list[str]] = {}  # people mentioned by this command's comments
        # The tenant's directory, read on first use (most commands never need it).
        self.directory: Callable[[Tx, str], TenantDirectory] | None = None
        self._people: TenantDirectory | None = None

    def people(self) -> TenantDirectory:
        """The tenant's people directory as of this transaction."""
        if self._people is None:
            if self.directory is None:
                from runtime.directory import build

                self._people = build(0, (), {})
            else:
                self._people = self.directory(self.tx, self.tenant)
        return self._people

    def load(self, ticket_id: str) -> Tracked:
        """The ticket (read once per command), or NotFound."""
        found = self.tracked.get(ticket_id)
        if found is not None:
            return found
        row = self.tx.get_ticket(self.tenant, ticket_id)
        if row is None:
            raise NotFound(f"no ticket '{ticket_id}'", ticket_id=ticket_id)
        return self.add_loaded(row)

    def add_loaded(self, row: TicketRow) -> Tracked:
        """Track a row read from the store."""
        bp = self.blueprints(self.tenant, row.pack, row.pack_version)
        tracked = Tracked(row, bp, bp.templates[row.template], row.version)
        self.tracked[row.id] = tracked
        return tracked

    def add_new(self, row: TicketRow, bp: Blueprint) -> Tracked:
        tracked = Tracked(row, bp, bp.templates[row.template], None, dirty=True)
        self.tracked[row.id] = tracked
        return tracked

    def event(
        self,
        t: Tracked,
        kind: str,
        actor: Actor | str,
        data: dict[str, Any],
        visibility: EventVisibility = "internal",
    ) -> EventRow:
        row = t.row
        row.event_seq += 1
        who = actor if isinstance(actor, str) else actor.id
        ev = EventRow(self.tenant, row.id, row.event_seq, self.now, kind, who, data, visibility)
        self.events.append(ev)
        t.dirty = True
        return ev

    def record(
        self,
        actor: Actor | str,
        action: str,
        subject: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        who = actor if isinstance(actor, str) else actor.id
        self.audit.append(AuditDraft(self.now, who, action, subject, before, after))

    def note_activity(self, ticket_id: str) -> Activity:
        return self.activity.setdefault(ticket_id, Activity())

    def cancel_timers(self, ticket_id: str, key: str) -> None:
        """Cancel the ticket's waiting timers with `key`, stored or made by this command."""
        self.timers = [x for x in self.timers if not (x.ticket_id == ticket_id and x.key == key)]
        created = self.tracked.get(ticket_id)
        if created is not None and created.expected_version is None:
            return  # a ticket this command creates has no stored timers to cancel
        if (ticket_id, key) not in self.cancels:
            self.cancels.append((ticket_id, key))

    def signal(self, sig: Signal) -> None:
        self.signals.append(sig)

    def flush(self) -> None:
        """Write everything: tickets first, then events, audit, outbox and timers."""
        for t in self.tracked.values():
            if not t.dirty:
                continue
            t.row.updated_at = self.now
            if t.expected_version is None:
                t.row.version = 1
                self.tx.insert_ticket(t.row)
            else:
                self.tx.update_ticket(t.row, t.expected_version)
        if self.events:
            self.tx.add_events(self.events)
        if self.audit:
            self.tx.add_audit(self.tenant, self.audit)
        if self.outbox:
            self.tx.add_outbox(self.outbox)
        for ticket_id, key in self.cancels:
            self.tx.cancel_timers(self.tenant, ticket_id, key)
        if self.timers:
            self.tx.add_timers(self.timers)


def snapshot(row: TicketRow) -> dict[str, Any]:
    """The audit form of a whole ticket."""
    return {
        "ref": row.ref,
        "template": row.template,
        "state": row.state,
        # Shallow: commands replace field values, they never change one in place.
        "fields": dict(row.fields),
        "title": row.title,
        "requester": row.requester,
        "assignee": row.assignee,
        "team": row.team,
        "channel": row.channel,
        "pack_version": row.pack_version,
    }
