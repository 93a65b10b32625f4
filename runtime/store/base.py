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
    AuditDraft,
    AuditRow,
    EventRow,
    OutboxRow,
    PackVersionRow,
    TicketQuery,
    TicketRow,
    TimerRow,
)


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

    # outbox and timers
    def add_outbox(self, rows: Sequence[OutboxRow]) -> None:
        """Queue messages for delivery after commit."""

    def outbox(self, tenant_id: str, status: str | None = None) -> list[OutboxRow]:
        """Queued messages in creation order, optionally of one status."""

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
