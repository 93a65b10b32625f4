"""The embedding API's people side: the directory, routing commands (claim, transfer,
delegate), collaboration reads (claimable work, canned replies, the customer timeline)
and the in-app inbox. Mixed into `runtime.api.Runtime`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.people import PersonSpec, read_people_file, read_people_text
from runtime import access, assignment, commands
from runtime.actors import Actor
from runtime.directory import TenantDirectory
from runtime.notify import context_for
from runtime.records import (
    Conflict,
    InvalidCommand,
    NotFound,
    OutboxRow,
    SeeClause,
    TicketQuery,
)
from runtime.render import render
from runtime.tickets import Ticket, TimelineEntry, mask_event
from runtime.unit import Tracked, Unit

if TYPE_CHECKING:
    from runtime.clock import Clock
    from runtime.directory import Directory
    from runtime.store.base import Store

# What a customer reads for each kind of timeline entry, when the state has no label.
PROGRESS = {
    "created": {"en": "Request received", "zh": "已受理"},
    "assigned": {"en": "Assigned to a member of our team", "zh": "已分派给工作人员"},
    "commented": {"en": "New reply", "zh": "新回复"},
}


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What a directory import did."""

    written: int
    removed: int
    rev: int


@dataclass(frozen=True, slots=True)
class CannedReply:
    """A canned reply rendered for one ticket, ready to insert."""

    name: str
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class ProgressEntry:
    """One step of the customer-facing timeline."""

    at: datetime
    text: str
    kind: str
    body: str | None = None


class PeopleApi:
    """Directory, routing commands and collaboration reads of `Runtime`."""

    store: Store
    clock: Clock
    directory: Directory
    _unit: Callable[..., Unit]
    _on_ticket: Callable[..., Ticket]
    _command: Callable[[Actor, Callable[[Unit], Tracked]], Ticket]
    _read: Callable[[str, Actor], tuple[Unit, Tracked]]
    _view: Callable[[Tracked, Actor], Ticket]
    current: Callable[[str], list[Any]]

    # -- directory --------------------------------------------------------------------------

    def put_people(
        self, tenant: str, people: Sequence[PersonSpec | dict[str, Any]], replace: bool = False
    ) -> ImportResult:
        """Add or update people (all or none: `DirectoryError` lists every problem);
        `replace` also removes everyone not given (a full sync)."""
        specs = [p if isinstance(p, PersonSpec) else PersonSpec.model_validate(p) for p in people]
        return self._put(tenant, specs, replace)

    def import_people(self, tenant: str, path: str, replace: bool = False) -> ImportResult:
        """Load people from a YAML (`people: [...]`) or CSV file; errors are located."""
        specs, source = read_people_file(path)
        return self._put(tenant, specs, replace, source, path)

    def import_people_text(self, tenant: str, text: str, replace: bool = False) -> ImportResult:
        specs, source = read_people_text(text)
        return self._put(tenant, specs, replace, source, "<people>")

    def _put(
        self,
        tenant: str,
        specs: list[PersonSpec],
        replace: bool,
        source: Any = None,
        file: str = "<people>",
    ) -> ImportResult:
        with self.store.transaction() as tx:
            written, removed = self.directory.put(
                tx, tenant, specs, self.clock.now(), replace=replace, source=source, file=file
            )
            rev = tx.directory_rev(tenant)
        return ImportResult(written, removed, rev)

    def remove_people(self, tenant: str, ids: Sequence[str]) -> int:
        with self.store.transaction() as tx:
            return tx.remove_people(tenant, list(ids))

    def people(self, tenant: str) -> TenantDirectory:
        """The tenant's directory (a cached, indexed snapshot)."""
        with self.store.read() as tx:
            return self.directory.snapshot(tx, tenant)

    def actor(self, tenant: str, person_id: str) -> Actor:
        """The person as an actor with the directory's roles, teams, skills and locale."""
        found = self.people(tenant).actor(person_id, tenant)
        if found is None:
            raise NotFound(f"no person '{person_id}' in the directory")
        return found

    def report_location(self, tenant: str, person_id: str, lat: float, lon: float) -> None:
        """A person's phone reports where they are (for `nearest` routing)."""
        with self.store.transaction() as tx:
            row = tx.person(tenant, person_id)
            if row is None:
                raise NotFound(f"no person '{person_id}' in the directory")
            spec = PersonSpec.model_validate(
                {**row.data, "location": {"lat": lat, "lon": lon, "at": self.clock.now()}}
            )
            self.directory.put(tx, tenant, [spec], self.clock.now())

    # -- routing commands -------------------------------------------------------------------

    def claim(self, ticket_id: str, actor: Actor) -> Ticket:
        """Take a ticket from its claim pool. The first claim wins; a later one gets
        `Conflict` naming who has it; an ineligible person gets `PermissionDenied`."""

        def work(unit: Unit) -> Tracked:
            t = unit.load(ticket_id)
            try:
                commands.ensure_visible(unit, t, actor)
            except NotFound:
                # A pool member who lost the race no longer sees the ticket: tell them
                # who won rather than pretend it never existed.
                if assignment.lost_claim(unit, t, actor):
                    raise Conflict(f"{t.row.ref} is claimed by {t.row.assignee}") from None
                raise
            assignment.claim(unit, t, actor)
            return t

        try:
            return self._command(actor, work)
        except Conflict:
            # Someone claimed it between our read and our write: read again, so the
            # loser is told who has it rather than "it changed".
            return self._command(actor, work)

    def transfer(
        self,
        ticket_id: str,
        team: str,
        actor: Actor,
        note: str | None = None,
        reroute: bool = True,
        expected_version: int | None = None,
    ) -> Ticket:
        """Hand the ticket to another team; routing picks the new assignee there."""
        return self._on_ticket(
            ticket_id,
            actor,
            expected_version,
            lambda u, t: assignment.transfer(u, t, actor, team, note, reroute),
        )

    def delegate(self, ticket_id: str, to: str, actor: Actor, note: str | None = None) -> Ticket:
        """The assignee passes the ticket to a colleague and stays a watcher."""
        return self._on_ticket(
            ticket_id, actor, None, lambda u, t: assignment.delegate(u, t, actor, to, note)
        )

    def claimable(self, actor: Actor, limit: int = 50) -> list[Ticket]:
        """Pooled tickets this person may claim now, oldest first."""
        pools = (*(f"pool:{team}" for team in sorted(actor.teams)), "pool:*")
        # Pool membership is the filter here, not the actor's see clauses: eligibility
        # (may_claim) decides what is listed.
        query = TicketQuery(see=(SeeClause("all"),), assignees=pools, closed=False, limit=500)
        out: list[Ticket] = []
        with self.store.read() as tx:
            unit = self._unit(tx, actor.tenant, self.clock.now(), actor)
            for row in tx.query_tickets(actor.tenant, query):
                t = unit.add_loaded(row)
                if assignment.may_claim(unit, t, actor):
                    out.append(self._view(t, actor))
                if len(out) >= limit:
                    break
        return out

    # -- collaboration ----------------------------------------------------------------------

    def canned_replies(self, ticket_id: str, actor: Actor) -> list[CannedReply]:
        """Canned replies offered on this ticket, rendered for it in the actor's locale
        (with only the fields the actor may read)."""
        _, t = self._read(ticket_id, actor)
        if not access.is_staff(t.bp, actor):
            return []
        locale = actor.locale or t.bp.model.locales[0]
        first = t.bp.model.locales[0]
        ctx = context_for(t, actor)
        out = []
        for name, reply in t.bp.model.canned_replies.items():
            if reply.templates and t.row.template not in reply.templates:
                continue
            title = commands.localized(reply.title, locale, name, first)
            body = render(commands.localized(reply.body, locale, "", first), ctx)
            out.append(CannedReply(name, title, body))
        return out

    def progress(self, ticket_id: str, actor: Actor) -> list[ProgressEntry]:
        """The customer-facing timeline: what happened, in plain words and the reader's
        locale, without internal notes, names of staff or field detail."""
        _, t = self._read(ticket_id, actor)
        with self.store.read() as tx:
            events = tx.events(actor.tenant, ticket_id)
        readable = access.readable(t.bp, actor, t.tpl, t.row.state)
        entries = [mask_event(e, readable) for e in events if e.visibility == "public"]
        locale = actor.locale or t.bp.model.locales[0]
        return [p for e in entries if (p := _progress(t, e, locale)) is not None]

    # -- inbox ------------------------------------------------------------------------------

    def inbox(self, actor: Actor, limit: int = 50) -> list[OutboxRow]:
        """The actor's in-app messages, newest first."""
        if not 1 <= limit <= 500:
            raise InvalidCommand("limit must be between 1 and 500")
        with self.store.read() as tx:
            return tx.inbox(actor.tenant, actor.id, limit)


def _progress(t: Tracked, e: TimelineEntry, locale: str) -> ProgressEntry | None:
    first = t.bp.model.locales[0]
    if e.kind == "transitioned":
        state = t.tpl.workflow.states.get(str(e.data.get("to")))
        if state is None:
            return None
        label = state.customer_label or state.title
        text = commands.localized(label, locale, str(e.data.get("to")), first)
        return ProgressEntry(e.at, text, e.kind)
    if e.kind == "assigned" and not _to_a_person(e.data):
        return None
    if e.kind in PROGRESS:
        text = commands.localized(PROGRESS[e.kind], locale, e.kind, first)
        body = e.data.get("body") if e.kind == "commented" else None
        return ProgressEntry(e.at, text, e.kind, body)
    return None


def _to_a_person(data: dict[str, Any]) -> bool:
    after = data.get("changes", {}).get("assignee", {}).get("after")
    return isinstance(after, str) and not after.startswith(("pool:", "role:"))
