"""The store contract: what the runtime needs from a database, stated once.

Every implementation (in-memory, SQLAlchemy on SQLite or PostgreSQL) passes the same
contract tests (`tests/test_store_contract.py`). A command runs inside one `transaction()`:
everything it wrote commits together at the end of the `with` block, or nothing does when
the block raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from runtime.records import (
    AlarmRow,
    AssetRow,
    AuditDraft,
    AuditRow,
    DraftRow,
    EventRow,
    IntakeRow,
    OutboxRow,
    PackVersionRow,
    PersonRow,
    TicketQuery,
    TicketRow,
    TimerRow,
    TokenRow,
)

# The `next_sequence` name counting directory revisions (ticket references use `ref:…`).
DIRECTORY_SEQUENCE = "rev:directory"


class Tx(Protocol):
    """The reads and writes available inside one transaction."""

    # tickets
    def get_ticket(self, tenant_id: str, ticket_id: str) -> TicketRow | None:
        """The ticket, or None. Inside a write transaction the row is current."""

    def insert_ticket(self, row: TicketRow) -> None:
        """Add a new ticket (its `version` is 1)."""

    def update_ticket(self, row: TicketRow, expected_version: int) -> None:
        """Write `row` if the stored version is still `expected_version`, setting
        `row.version` to expected_version + 1; otherwise raise `Conflict`."""

    def query_tickets(self, tenant_id: str, query: TicketQuery) -> list[TicketRow]:
        """Tickets matching the query and at least one of its `see` clauses."""

    def count_open_by_state(self, tenant_id: str, pack: str) -> dict[tuple[int, str, str], int]:
        """Open (not closed) tickets of a pack counted by (pack_version, template, state)."""

    def open_load(
        self, tenant_id: str, field: str | None = None, assignees: Sequence[str] | None = None
    ) -> dict[str, dict[str | None, int]]:
        """Open (not closed) tickets with an assignee, counted in the database by
        assignee, then by the ticket's value of `fields[field]` as text: a string as it
        is, a number or boolean as its JSON text (`"2"`, `"true"`), None when the field is
        missing or null, or when `field` is None (then each assignee has one count, under
        None). Arrays and objects count under their JSON text, whose spelling varies by
        store. `field` must not contain `"`. With `assignees`, only those are counted (a
        few are read through the assignee index, not by grouping every open ticket)."""

    def open_tickets_of_pack(self, tenant_id: str, pack: str) -> list[TicketRow]:
        """Every open ticket of a pack, for a migration at publish time."""

    # timeline
    def add_events(self, events: Sequence[EventRow]) -> None:
        """Append timeline entries."""

    def events(self, tenant_id: str, ticket_id: str) -> list[EventRow]:
        """A ticket's timeline in `seq` order."""

    # audit
    def add_audit(self, tenant_id: str, drafts: Sequence[AuditDraft]) -> list[AuditRow]:
        """Number the drafts after the tenant's last audit row and chain their hashes
        (see `runtime.audit.chain`); concurrent transactions of one tenant serialise here."""

    def audit(self, tenant_id: str, after_seq: int = 0, limit: int = 1000) -> list[AuditRow]:
        """Audit rows with seq > after_seq in order."""

    def audit_head(self, tenant_id: str) -> tuple[int, str]:
        """(last seq, last hash) as recorded separately from the rows; (0, GENESIS) if none."""

    def audit_tenants(self) -> list[str]:
        """Every tenant with audit rows."""

    # outbox
    def add_outbox(self, rows: Sequence[OutboxRow]) -> None:
        """Queue messages for delivery after commit. A row without `next_attempt_at` is
        stored with next_attempt_at = created_at (due at once); the caller's rows are
        not changed. A duplicate (tenant_id, id) raises Conflict."""

    def outbox(self, tenant_id: str, status: str | None = None) -> list[OutboxRow]:
        """Queued messages in creation order, optionally of one status."""

    def outbox_message(self, tenant_id: str, id: str) -> OutboxRow | None:
        """One message, or None."""

    def claim_outbox(self, now: datetime, limit: int, lease_until: datetime) -> list[OutboxRow]:
        """Take up to `limit` due messages for delivery, across tenants: status pending and
        next_attempt_at <= now, earliest next_attempt_at first (then tenant_id, id). Each
        is written with attempts + 1 and next_attempt_at = lease_until, and returned so:
        a worker that dies mid-delivery leaves the row to be claimed again once the lease
        ends. On PostgreSQL the rows are locked (FOR UPDATE SKIP LOCKED), so concurrent
        claims take disjoint rows. A write."""

    def finish_outbox(
        self,
        tenant_id: str,
        id: str,
        attempts: int,
        status: str,
        next_attempt_at: datetime | None,
        last_error: str | None,
        delivered_at: datetime | None,
    ) -> bool:
        """Record the outcome of an attempt (status pending with the next attempt's time,
        sent, or dead), only if the stored `attempts` still equals `attempts`, i.e. the
        row was not claimed again since (a worker whose lease ran out must not overwrite
        the new holder's outcome). True when written; False changes nothing. An unknown
        status, or pending without next_attempt_at (it would never be due), raises
        ValueError."""

    def retry_outbox(self, tenant_id: str, ids: Sequence[str], now: datetime) -> int:
        """Put the dead messages among `ids` back to pending with attempts = 0 and
        next_attempt_at = now (last_error kept); returns how many. Other ids (not dead,
        unknown, another tenant's) are left as they are."""

    def inbox(
        self,
        tenant_id: str,
        recipient: str,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[OutboxRow]:
        """A person's in-app messages (channel 'in_app', this recipient), any status,
        newest first by (created_at, id); `before` is the (created_at, id) of the last
        row of the previous page."""

    # timers

    def add_timers(self, rows: Sequence[TimerRow]) -> None:
        """Schedule work."""

    def cancel_timers(self, tenant_id: str, ticket_id: str, key: str) -> int:
        """Cancel waiting timers of a ticket with this key; returns how many."""

    def due_timers(self, now: datetime, limit: int) -> list[TimerRow]:
        """Waiting timers with due_at <= now, earliest first, across tenants. In a write
        transaction on PostgreSQL they are locked (FOR UPDATE SKIP LOCKED)."""

    def mark_timer(self, timer: TimerRow, status: str, at: datetime) -> None:
        """Record that a timer fired (or was cancelled)."""

    def timers(self, tenant_id: str, ticket_id: str | None = None) -> list[TimerRow]:
        """Timers of a tenant (or a ticket), any status, by due time."""

    # idempotency and sequences
    def claim_idempotency_key(self, tenant_id: str, key: str, ticket_id: str) -> str | None:
        """Record key → ticket_id and return None, or return the ticket id already recorded.
        A concurrent claim of the same key blocks or fails until the first commits; the
        loser's transaction then raises `Conflict` (the caller retries and finds the key)."""

    def next_sequence(self, tenant_id: str, name: str) -> int:
        """1, 2, 3 … per (tenant, name); gap-free within committed transactions."""

    # the people directory
    def put_people(self, tenant_id: str, rows: Sequence[PersonRow]) -> None:
        """Insert the rows, replacing any with the same (tenant_id, id). Every row must be
        of `tenant_id` (else ValueError, nothing written). A call with rows moves
        `directory_rev`."""

    def remove_people(self, tenant_id: str, ids: Sequence[str]) -> int:
        """Remove these people; returns how many there were. Moves `directory_rev` when
        it removed any."""

    def people(self, tenant_id: str) -> list[PersonRow]:
        """The tenant's directory, by id."""

    def person(self, tenant_id: str, id: str) -> PersonRow | None:
        """One person, or None."""

    def directory_rev(self, tenant_id: str) -> int:
        """The directory's revision: 0 for a tenant whose directory was never written,
        then one more for each committed `put_people` / `remove_people` call that changed
        it (bumped in the same transaction). A process caching the directory reloads it
        only when this moved. Kept in the sequences as `DIRECTORY_SEQUENCE`."""

    # pack versions
    def add_pack_version(self, row: PackVersionRow) -> None:
        """Store a new version; (tenant, pack, version) is unique, a duplicate raises Conflict."""

    def pack_version(self, tenant_id: str, pack: str, version: int) -> PackVersionRow | None:
        """One version."""

    def latest_pack_versions(self, tenant_id: str) -> list[PackVersionRow]:
        """The newest version of each of the tenant's packs."""

    def pack_heads(self, tenant_id: str) -> dict[str, int]:
        """The newest version number of each of the tenant's packs (no documents)."""

    def pack_versions(self, tenant_id: str, pack: str) -> list[PackVersionRow]:
        """Every version of a pack, oldest first."""

    # API tokens
    def add_token(self, row: TokenRow) -> None:
        """Store a token; (tenant, id) and (tenant, hash) are unique, a duplicate of either
        raises Conflict. Tokens of two tenants never share a hash (random 256-bit secrets),
        so it is not checked across tenants."""

    def token_by_hash(self, hash: str) -> TokenRow | None:
        """The token whose secret hashes to `hash`, of any tenant (revoked ones too: the
        caller checks `revoked_at` and `expires_at`)."""

    def tokens(self, tenant_id: str) -> list[TokenRow]:
        """The tenant's tokens, oldest first."""

    def revoke_token(self, tenant_id: str, id: str, at: datetime) -> bool:
        """Set `revoked_at` of a live (not yet revoked, expired or not) token of this
        tenant; False when there is none: unknown, another tenant's, or revoked before."""

    # builder drafts
    def draft(self, tenant_id: str, pack: str) -> DraftRow | None:
        """One draft, or None."""

    def drafts(self, tenant_id: str) -> list[DraftRow]:
        """The tenant's drafts by pack name."""

    def put_draft(self, row: DraftRow, expected_revision: int | None) -> None:
        """Save a draft as `expected_revision + 1` (`row.revision` is set to it; the
        revision it carried is ignored); with `expected_revision` None the draft must not
        exist yet (revision 1). Raise Conflict, writing nothing and leaving `row` as it was,
        when the stored revision differs (or the draft exists / does not); its message and
        its `revision` detail name the revision stored now (None: no draft)."""

    def delete_draft(self, tenant_id: str, pack: str) -> bool:
        """Remove a draft; False when there was none."""

    # intake
    def intake(self, tenant_id: str, key: str) -> IntakeRow | None:
        """The intake item stored under this idempotency key."""

    def add_intake(self, row: IntakeRow) -> None:
        """Record an intake item; a duplicate (tenant, key) raises Conflict (on PostgreSQL
        a concurrent uncommitted insert of the key makes this wait, then raise). The
        transaction stays usable after that Conflict (to read the first item, say)."""

    def intake_of_ticket(
        self, tenant_id: str, ticket_id: str, after: str | None = None, limit: int = 100
    ) -> list[IntakeRow]:
        """Intake items attached to a ticket in (received_at, key) order; `after` is the
        key of the last item of the previous page (an unknown key, or `limit` <= 0, gives
        no items)."""

    def count_intake_of_ticket(self, tenant_id: str, ticket_id: str) -> int:
        """How many intake items a ticket has."""

    def claim_alarm(self, row: AlarmRow) -> AlarmRow | None:
        """Insert the alarm if its (tenant, key) is new and return None; otherwise return
        the stored row, locked until the transaction ends (PostgreSQL: FOR UPDATE), so
        concurrent repeats of one alarm serialise instead of opening two tickets."""

    def update_alarm(self, row: AlarmRow) -> None:
        """Write back an alarm row read by `claim_alarm` (ticket, last_at, count,
        resolved_at; `first_at` never changes). An alarm never claimed raises Conflict."""

    def alarm(self, tenant_id: str, key: str) -> AlarmRow | None:
        """The stored alarm, unlocked."""

    # assets
    def put_assets(self, tenant_id: str, rows: Sequence[AssetRow]) -> None:
        """Insert or replace assets by code; rows of another tenant raise ValueError and
        nothing is written."""

    def asset(self, tenant_id: str, code: str) -> AssetRow | None:
        """One asset by its code, or None."""

    def assets(self, tenant_id: str) -> list[AssetRow]:
        """The tenant's assets by code."""


class Store(Protocol):
    """A database the runtime runs on."""

    def transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction: commits when the block ends, rolls back when it raises."""

    def read(self) -> AbstractContextManager[Tx]:
        """A read-only snapshot (writes inside it are a programming error)."""

    def close(self) -> None:
        """Release connections."""


def iter_audit(store: Store, tenant_id: str, page: int = 1000) -> Iterator[AuditRow]:
    """Every audit row of a tenant, in order, page by page."""
    after = 0
    while True:
        with store.read() as tx:
            rows = tx.audit(tenant_id, after, page)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].seq
