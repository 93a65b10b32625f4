"""An in-process store with the same semantics as the SQL stores, for tests and embedding.

One re-entrant lock guards everything. A write transaction holds it from start to end and
applies its writes directly, recording how to undo each one; when the block raises the undo
log runs backwards, so a failed command leaves nothing behind. A read holds the lock too, so
it never sees another thread's uncommitted writes.

Rows go in and come out as copies, JSON values copied deeply (`_deep`), so a caller
mutating a row it got back, or one it handed in, cannot change the store. Values are not
passed through `json` as the SQL stores' are: the runtime stores validated JSON values.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from runtime.audit import GENESIS, chain
from runtime.records import (
    AlarmRow,
    AssetRow,
    AuditDraft,
    AuditRow,
    Conflict,
    DraftRow,
    EventRow,
    IntakeRow,
    OutboxRow,
    OutboxStatus,
    PackVersionRow,
    PersonRow,
    SeeClause,
    TicketQuery,
    TicketRow,
    TimerRow,
    TimerStatus,
    TokenRow,
)
from runtime.store.base import DIRECTORY_SEQUENCE

_Row = TypeVar(
    "_Row",
    TicketRow,
    EventRow,
    AuditRow,
    OutboxRow,
    TimerRow,
    PackVersionRow,
    PersonRow,
    TokenRow,
    DraftRow,
    IntakeRow,
    AlarmRow,
    AssetRow,
)
_Keyed = TypeVar("_Keyed", OutboxRow, TimerRow)

# The JSON-valued and datetime attributes of each row type: what a copy converts.
_JSON_ATTRS: dict[type[Any], tuple[str, ...]] = {
    TicketRow: ("fields", "watchers", "tags", "sla"),
    EventRow: ("data",),
    AuditRow: ("before", "after"),
    OutboxRow: ("payload",),
    TimerRow: ("payload",),
    PackVersionRow: ("document",),
    PersonRow: ("data",),
    TokenRow: ("roles",),
    DraftRow: ("files",),
    IntakeRow: ("data",),
    AlarmRow: (),
    AssetRow: ("data",),
}
_TIME_ATTRS: dict[type[Any], tuple[str, ...]] = {
    TicketRow: ("created_at", "updated_at", "state_entered_at"),
    EventRow: ("at",),
    AuditRow: ("at",),
    OutboxRow: ("created_at", "next_attempt_at", "delivered_at"),
    TimerRow: ("due_at", "fired_at"),
    PackVersionRow: ("published_at",),
    PersonRow: ("updated_at",),
    TokenRow: ("created_at", "expires_at", "revoked_at"),
    DraftRow: ("updated_at",),
    IntakeRow: ("received_at",),
    AlarmRow: ("first_at", "last_at", "resolved_at"),
    AssetRow: ("updated_at",),
}

_TIMER_STATUSES = frozenset({"waiting", "fired", "cancelled"})
_OUTBOX_STATUSES = frozenset({"pending", "sent", "dead"})


def _utc(value: datetime) -> datetime:
    # As the SQL stores: aware datetimes only, handed back in UTC.
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the store takes aware datetimes")
    return value.astimezone(UTC)


def check_finish(status: str, next_attempt_at: datetime | None) -> None:
    """The arguments `Tx.finish_outbox` refuses (shared with the SQL store)."""
    if status not in _OUTBOX_STATUSES:
        raise ValueError(f"unknown outbox status {status!r}")
    if status == "pending" and next_attempt_at is None:
        raise ValueError("a pending outbox row needs next_attempt_at, or it is never due")


def check_field(field: str | None) -> None:
    """The field names `Tx.open_load` refuses (a JSON path quotes the name in `"`)."""
    if field is not None and '"' in field:
        raise ValueError(f"field name {field!r} contains a double quote")


def value_text(value: Any) -> str | None:
    """A JSON value as `Tx.open_load` groups it: a string as it is, null as None, anything
    else as its JSON text (arrays and objects spelt as SQLite spells them)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _deep(value: Any) -> Any:
    # JSON values are dicts, lists and scalars: copying just those is several times
    # cheaper than a json round trip, and the runtime only stores validated JSON values.
    kind = type(value)
    if kind is dict:
        return {k: _deep(v) for k, v in value.items()}
    if kind is list:
        return [_deep(v) for v in value]
    return value


_FIELDS: dict[type[Any], tuple[str, ...]] = {
    kind: tuple(f.name for f in dataclasses.fields(kind)) for kind in _JSON_ATTRS
}


def _copy(row: _Row) -> _Row:
    """A copy sharing nothing mutable with `row`, its datetimes in UTC."""
    kind = type(row)
    values = {name: getattr(row, name) for name in _FIELDS[kind]}
    for name in _JSON_ATTRS[kind]:
        values[name] = _deep(values[name])
    for name in _TIME_ATTRS[kind]:
        value = values[name]
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store takes aware datetimes")
        if value is not None and value.tzinfo is not UTC:
            values[name] = value.astimezone(UTC)
    return kind(**values)


class _State:
    """Everything the store holds, keyed the way the SQL tables are."""

    def __init__(self) -> None:
        self.tickets: dict[str, dict[str, TicketRow]] = {}  # tenant → id → row
        self.events: dict[tuple[str, str], dict[int, EventRow]] = {}  # … → seq → row
        self.audit: dict[str, list[AuditRow]] = {}
        self.heads: dict[str, tuple[int, str]] = {}
        self.outbox: dict[tuple[str, str], OutboxRow] = {}
        self.timers: dict[tuple[str, str], TimerRow] = {}
        self.idempotency: dict[tuple[str, str], str] = {}
        self.sequences: dict[tuple[str, str], int] = {}
        self.packs: dict[tuple[str, str], dict[int, PackVersionRow]] = {}
        self.people: dict[str, dict[str, PersonRow]] = {}  # tenant → id → row
        self.tokens: dict[tuple[str, str], TokenRow] = {}
        self.token_hashes: dict[str, tuple[str, str]] = {}  # hash → (tenant, id), unique
        self.drafts: dict[tuple[str, str], DraftRow] = {}  # (tenant, pack) → row
        self.intake: dict[str, dict[str, IntakeRow]] = {}  # tenant → key → row
        self.alarms: dict[tuple[str, str], AlarmRow] = {}
        self.assets: dict[str, dict[str, AssetRow]] = {}  # tenant → code → row


def _restore(mapping: dict[Any, Any], key: Any) -> Callable[[], None]:
    """An undo step putting `mapping[key]` back as it is now (or removing it)."""
    if key in mapping:
        old = mapping[key]

        def put_back() -> None:
            mapping[key] = old

        return put_back
    return lambda: mapping.pop(key, None)


def _truncate(items: list[Any], length: int) -> Callable[[], None]:
    """An undo step cutting `items` back to `length`."""

    def cut() -> None:
        del items[length:]

    return cut


def _see_matches(clause: SeeClause, row: TicketRow) -> bool:
    if clause.templates is not None and row.template not in clause.templates:
        return False
    if clause.kind == "all":
        return True
    value = {"requester": row.requester, "assignee": row.assignee, "team": row.team}[clause.kind]
    return value in clause.values


def _matches(query: TicketQuery, row: TicketRow) -> bool:
    checks = (
        (query.states, row.state),
        (query.templates, row.template),
        (query.assignees, row.assignee),
        (query.teams, row.team),
        (query.requesters, row.requester),
    )
    if any(wanted and value not in wanted for wanted, value in checks):
        return False
    if query.closed is not None and row.closed != query.closed:
        return False
    if query.text is not None and query.text.lower() not in row.search_text:
        return False
    if query.after is not None and (row.created_at, row.id) <= query.after:
        return False
    return any(_see_matches(clause, row) for clause in query.see)


class MemoryTx:
    """One transaction on a `MemoryStore`; the store's lock is held while it lives."""

    def __init__(self, state: _State, write: bool) -> None:
        self._s = state
        self._write = write
        self.undo: list[Callable[[], None]] = []

    def _writing(self) -> None:
        if not self._write:
            raise RuntimeError("write inside a read transaction")

    # tickets

    def get_ticket(self, tenant_id: str, ticket_id: str) -> TicketRow | None:
        row = self._s.tickets.get(tenant_id, {}).get(ticket_id)
        return None if row is None else _copy(row)

    def insert_ticket(self, row: TicketRow) -> None:
        self._writing()
        tenant = self._s.tickets.setdefault(row.tenant_id, {})
        if row.id in tenant:
            raise Conflict(f"ticket {row.id} exists", ticket_id=row.id)
        self.undo.append(_restore(tenant, row.id))
        tenant[row.id] = _copy(row)

    def update_ticket(self, row: TicketRow, expected_version: int) -> None:
        self._writing()
        tenant = self._s.tickets.get(row.tenant_id, {})
        stored = tenant.get(row.id)
        if stored is None or stored.version != expected_version:
            raise Conflict(f"ticket {row.id} changed", ticket_id=row.id)
        self.undo.append(_restore(tenant, row.id))
        new = _copy(row)
        new.version = expected_version + 1
        new.created_at = stored.created_at  # never changes, as in the SQL stores' UPDATE
        tenant[row.id] = new
        row.version = expected_version + 1

    def query_tickets(self, tenant_id: str, query: TicketQuery) -> list[TicketRow]:
        rows = [r for r in self._s.tickets.get(tenant_id, {}).values() if _matches(query, r)]
        rows.sort(key=lambda r: (r.created_at, r.id))
        return [_copy(r) for r in rows[: query.limit]]

    def count_open_by_state(self, tenant_id: str, pack: str) -> dict[tuple[int, str, str], int]:
        counts: dict[tuple[int, str, str], int] = {}
        for row in self._open(tenant_id, pack):
            key = (row.pack_version, row.template, row.state)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def open_tickets_of_pack(self, tenant_id: str, pack: str) -> list[TicketRow]:
        rows = sorted(self._open(tenant_id, pack), key=lambda r: (r.created_at, r.id))
        return [_copy(r) for r in rows]

    def open_load(
        self, tenant_id: str, field: str | None = None, assignees: Sequence[str] | None = None
    ) -> dict[str, dict[str | None, int]]:
        check_field(field)
        wanted = None if assignees is None else set(assignees)
        load: dict[str, dict[str | None, int]] = {}
        for row in self._s.tickets.get(tenant_id, {}).values():
            if row.closed or row.assignee is None:
                continue
            if wanted is not None and row.assignee not in wanted:
                continue
            value = None if field is None else value_text(row.fields.get(field))
            counts = load.setdefault(row.assignee, {})
            counts[value] = counts.get(value, 0) + 1
        return load

    def _open(self, tenant_id: str, pack: str) -> Iterator[TicketRow]:
        for row in self._s.tickets.get(tenant_id, {}).values():
            if row.pack == pack and not row.closed:
                yield row

    # timeline

    def add_events(self, events: Sequence[EventRow]) -> None:
        self._writing()
        for event in events:
            timeline = self._s.events.setdefault((event.tenant_id, event.ticket_id), {})
            if event.seq in timeline:
                raise Conflict(f"event {event.seq} of {event.ticket_id} exists")
            self.undo.append(_restore(timeline, event.seq))
            timeline[event.seq] = _copy(event)

    def events(self, tenant_id: str, ticket_id: str) -> list[EventRow]:
        timeline = self._s.events.get((tenant_id, ticket_id), {})
        return [_copy(timeline[seq]) for seq in sorted(timeline)]

    # audit

    def add_audit(self, tenant_id: str, drafts: Sequence[AuditDraft]) -> list[AuditRow]:
        self._writing()
        if not drafts:
            return []
        seq, prev = self._s.heads.get(tenant_id, (0, GENESIS))
        rows = chain_drafts(tenant_id, seq, prev, drafts, _deep)  # the store's own copies
        log = self._s.audit.setdefault(tenant_id, [])
        self.undo.append(_restore(self._s.heads, tenant_id))
        self.undo.append(_truncate(log, len(log)))
        log.extend(rows)
        self._s.heads[tenant_id] = (rows[-1].seq, rows[-1].hash)
        # The caller's rows hold its drafts' own values: nothing it changes reaches ours.
        return [
            AuditRow(
                r.tenant_id,
                r.seq,
                r.at,
                r.actor,
                r.action,
                r.subject,
                d.before,
                d.after,
                r.prev_hash,
                r.hash,
            )
            for r, d in zip(rows, drafts, strict=True)
        ]

    def audit(self, tenant_id: str, after_seq: int = 0, limit: int = 1000) -> list[AuditRow]:
        log = self._s.audit.get(tenant_id, [])
        start = bisect.bisect_right(log, after_seq, key=lambda r: r.seq)
        return [_copy(r) for r in log[start : start + limit]]

    def audit_head(self, tenant_id: str) -> tuple[int, str]:
        return self._s.heads.get(tenant_id, (0, GENESIS))

    def audit_tenants(self) -> list[str]:
        return sorted(t for t, log in self._s.audit.items() if log)

    # outbox

    def add_outbox(self, rows: Sequence[OutboxRow]) -> None:
        due = [
            r
            if r.next_attempt_at is not None
            else dataclasses.replace(r, next_attempt_at=r.created_at)
            for r in rows
        ]
        self._put(self._s.outbox, due, "outbox message")

    def outbox_message(self, tenant_id: str, id: str) -> OutboxRow | None:
        row = self._s.outbox.get((tenant_id, id))
        return None if row is None else _copy(row)

    def claim_outbox(self, now: datetime, limit: int, lease_until: datetime) -> list[OutboxRow]:
        self._writing()
        lease = _utc(lease_until)
        due = [
            r
            for r in self._s.outbox.values()
            if r.status == "pending" and r.next_attempt_at is not None and r.next_attempt_at <= now
        ]
        due.sort(key=lambda r: (r.next_attempt_at, r.tenant_id, r.id))
        claimed: list[OutboxRow] = []
        for row in due[: max(limit, 0)]:
            self._set_outbox(row, attempts=row.attempts + 1, next_attempt_at=lease)
            claimed.append(_copy(self._s.outbox[(row.tenant_id, row.id)]))
        return claimed

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
        self._writing()
        check_finish(status, next_attempt_at)
        stored = self._s.outbox.get((tenant_id, id))
        if stored is None or stored.attempts != attempts:
            return False
        self._set_outbox(
            stored,
            status=cast(OutboxStatus, status),
            next_attempt_at=None if next_attempt_at is None else _utc(next_attempt_at),
            last_error=last_error,
            delivered_at=None if delivered_at is None else _utc(delivered_at),
        )
        return True

    def retry_outbox(self, tenant_id: str, ids: Sequence[str], now: datetime) -> int:
        self._writing()
        at = _utc(now)
        count = 0
        for id in ids:
            stored = self._s.outbox.get((tenant_id, id))
            if stored is not None and stored.status == "dead":
                self._set_outbox(stored, status="pending", attempts=0, next_attempt_at=at)
                count += 1
        return count

    def _set_outbox(self, row: OutboxRow, **changes: Any) -> None:
        key = (row.tenant_id, row.id)
        self.undo.append(_restore(self._s.outbox, key))
        self._s.outbox[key] = dataclasses.replace(row, **changes)

    def inbox(
        self,
        tenant_id: str,
        recipient: str,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[OutboxRow]:
        rows = [
            r
            for r in self._s.outbox.values()
            if r.tenant_id == tenant_id
            and r.recipient == recipient
            and r.channel == "in_app"
            and (before is None or (r.created_at, r.id) < before)
        ]
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return [_copy(r) for r in rows[: max(limit, 0)]]

    # timers

    def outbox(self, tenant_id: str, status: str | None = None) -> list[OutboxRow]:
        rows = [
            r
            for r in self._s.outbox.values()
            if r.tenant_id == tenant_id and (status is None or r.status == status)
        ]
        rows.sort(key=lambda r: (r.created_at, r.id))
        return [_copy(r) for r in rows]

    def add_timers(self, rows: Sequence[TimerRow]) -> None:
        self._put(self._s.timers, rows, "timer")

    def _put(self, table: dict[tuple[str, str], _Keyed], rows: Sequence[_Keyed], what: str) -> None:
        self._writing()
        for row in rows:
            key = (row.tenant_id, row.id)
            if key in table:
                raise Conflict(f"{what} {row.id} exists")
            self.undo.append(_restore(table, key))
            table[key] = _copy(row)

    def cancel_timers(self, tenant_id: str, ticket_id: str, key: str) -> int:
        self._writing()
        hits = [
            r
            for r in self._s.timers.values()
            if r.tenant_id == tenant_id
            and r.ticket_id == ticket_id
            and r.key == key
            and r.status == "waiting"
        ]
        for row in hits:
            self._set_timer(row, "cancelled", None)
        return len(hits)

    def due_timers(self, now: datetime, limit: int) -> list[TimerRow]:
        rows = [r for r in self._s.timers.values() if r.status == "waiting" and r.due_at <= now]
        rows.sort(key=lambda r: (r.due_at, r.tenant_id, r.id))
        return [_copy(r) for r in rows[:limit]]

    def mark_timer(self, timer: TimerRow, status: str, at: datetime) -> None:
        self._writing()
        if status not in _TIMER_STATUSES:
            raise ValueError(f"unknown timer status {status!r}")
        stored = self._s.timers.get((timer.tenant_id, timer.id))
        if stored is not None:
            self._set_timer(stored, cast(TimerStatus, status), at)
        timer.status = cast(TimerStatus, status)
        timer.fired_at = at

    def _set_timer(self, row: TimerRow, status: TimerStatus, at: datetime | None) -> None:
        key = (row.tenant_id, row.id)
        self.undo.append(_restore(self._s.timers, key))
        self._s.timers[key] = dataclasses.replace(row, status=status, fired_at=at)

    def timers(self, tenant_id: str, ticket_id: str | None = None) -> list[TimerRow]:
        rows = [
            r
            for r in self._s.timers.values()
            if r.tenant_id == tenant_id and (ticket_id is None or r.ticket_id == ticket_id)
        ]
        rows.sort(key=lambda r: (r.due_at, r.id))
        return [_copy(r) for r in rows]

    # idempotency and sequences

    def claim_idempotency_key(self, tenant_id: str, key: str, ticket_id: str) -> str | None:
        self._writing()
        existing = self._s.idempotency.get((tenant_id, key))
        if existing is not None:
            return existing
        self.undo.append(_restore(self._s.idempotency, (tenant_id, key)))
        self._s.idempotency[(tenant_id, key)] = ticket_id
        return None

    def next_sequence(self, tenant_id: str, name: str) -> int:
        self._writing()
        key = (tenant_id, name)
        self.undo.append(_restore(self._s.sequences, key))
        value = self._s.sequences.get(key, 0) + 1
        self._s.sequences[key] = value
        return value

    # the people directory

    def put_people(self, tenant_id: str, rows: Sequence[PersonRow]) -> None:
        self._writing()
        for row in rows:
            if row.tenant_id != tenant_id:
                raise ValueError(f"person {row.id} is of tenant {row.tenant_id}, not {tenant_id}")
        if not rows:
            return
        copies = [_copy(row) for row in rows]  # checks every time before writing any
        directory = self._s.people.setdefault(tenant_id, {})
        for row in copies:
            self.undo.append(_restore(directory, row.id))
            directory[row.id] = row
        self.next_sequence(tenant_id, DIRECTORY_SEQUENCE)

    def remove_people(self, tenant_id: str, ids: Sequence[str]) -> int:
        self._writing()
        directory = self._s.people.get(tenant_id, {})
        removed = 0
        for id in ids:
            if id in directory:
                self.undo.append(_restore(directory, id))
                del directory[id]
                removed += 1
        if removed:
            self.next_sequence(tenant_id, DIRECTORY_SEQUENCE)
        return removed

    def people(self, tenant_id: str) -> list[PersonRow]:
        directory = self._s.people.get(tenant_id, {})
        return [_copy(directory[id]) for id in sorted(directory)]

    def person(self, tenant_id: str, id: str) -> PersonRow | None:
        row = self._s.people.get(tenant_id, {}).get(id)
        return None if row is None else _copy(row)

    def directory_rev(self, tenant_id: str) -> int:
        return self._s.sequences.get((tenant_id, DIRECTORY_SEQUENCE), 0)

    # pack versions

    def add_pack_version(self, row: PackVersionRow) -> None:
        self._writing()
        versions = self._s.packs.setdefault((row.tenant_id, row.pack), {})
        if row.version in versions:
            raise Conflict(f"version {row.version} of pack {row.pack} exists", pack=row.pack)
        self.undo.append(_restore(versions, row.version))
        versions[row.version] = _copy(row)

    def pack_version(self, tenant_id: str, pack: str, version: int) -> PackVersionRow | None:
        row = self._s.packs.get((tenant_id, pack), {}).get(version)
        return None if row is None else _copy(row)

    def latest_pack_versions(self, tenant_id: str) -> list[PackVersionRow]:
        latest = [
            versions[max(versions)]
            for (tenant, _), versions in sorted(self._s.packs.items())
            if tenant == tenant_id and versions
        ]
        return [_copy(r) for r in latest]

    def pack_heads(self, tenant_id: str) -> dict[str, int]:
        return {
            pack: max(versions)
            for (tenant, pack), versions in sorted(self._s.packs.items())
            if tenant == tenant_id and versions
        }

    def pack_versions(self, tenant_id: str, pack: str) -> list[PackVersionRow]:
        versions = self._s.packs.get((tenant_id, pack), {})
        return [_copy(versions[v]) for v in sorted(versions)]

    # API tokens

    def add_token(self, row: TokenRow) -> None:
        self._writing()
        key = (row.tenant_id, row.id)
        held = self._s.token_hashes.get(row.hash)
        if key in self._s.tokens or (held is not None and held[0] == row.tenant_id):
            raise token_conflict(row.id)
        new = _copy(row)
        self.undo.append(_restore(self._s.tokens, key))
        self.undo.append(_restore(self._s.token_hashes, row.hash))
        self._s.tokens[key] = new
        self._s.token_hashes[row.hash] = key

    def token_by_hash(self, hash: str) -> TokenRow | None:
        key = self._s.token_hashes.get(hash)
        return None if key is None else _copy(self._s.tokens[key])

    def tokens(self, tenant_id: str) -> list[TokenRow]:
        rows = [r for (tenant, _), r in self._s.tokens.items() if tenant == tenant_id]
        rows.sort(key=lambda r: (r.created_at, r.id))
        return [_copy(r) for r in rows]

    def revoke_token(self, tenant_id: str, id: str, at: datetime) -> bool:
        self._writing()
        key = (tenant_id, id)
        stored = self._s.tokens.get(key)
        if stored is None or stored.revoked_at is not None:
            return False
        revoked = dataclasses.replace(stored, revoked_at=_utc(at))
        self.undo.append(_restore(self._s.tokens, key))
        self._s.tokens[key] = revoked
        return True

    # builder drafts

    def draft(self, tenant_id: str, pack: str) -> DraftRow | None:
        row = self._s.drafts.get((tenant_id, pack))
        return None if row is None else _copy(row)

    def drafts(self, tenant_id: str) -> list[DraftRow]:
        rows = sorted(
            (r for (tenant, _), r in self._s.drafts.items() if tenant == tenant_id),
            key=lambda r: r.pack,
        )
        return [_copy(r) for r in rows]

    def put_draft(self, row: DraftRow, expected_revision: int | None) -> None:
        self._writing()
        key = (row.tenant_id, row.pack)
        stored = self._s.drafts.get(key)
        stored_revision = None if stored is None else stored.revision
        if stored_revision != expected_revision:
            raise draft_conflict(row.pack, expected_revision, stored_revision)
        revision = 1 if expected_revision is None else expected_revision + 1
        new = _copy(row)
        new.revision = revision
        self.undo.append(_restore(self._s.drafts, key))
        self._s.drafts[key] = new
        row.revision = revision

    def delete_draft(self, tenant_id: str, pack: str) -> bool:
        self._writing()
        key = (tenant_id, pack)
        if key not in self._s.drafts:
            return False
        self.undo.append(_restore(self._s.drafts, key))
        del self._s.drafts[key]
        return True

    # intake

    def intake(self, tenant_id: str, key: str) -> IntakeRow | None:
        row = self._s.intake.get(tenant_id, {}).get(key)
        return None if row is None else _copy(row)

    def add_intake(self, row: IntakeRow) -> None:
        self._writing()
        items = self._s.intake.setdefault(row.tenant_id, {})
        if row.key in items:
            raise intake_conflict(row.key)
        new = _copy(row)
        self.undo.append(_restore(items, row.key))
        items[row.key] = new

    def intake_of_ticket(
        self, tenant_id: str, ticket_id: str, after: str | None = None, limit: int = 100
    ) -> list[IntakeRow]:
        items = self._s.intake.get(tenant_id, {})
        rows = [r for r in items.values() if r.ticket_id == ticket_id]
        if after is not None:
            last = items.get(after)
            if last is None:  # as the SQL stores: an unknown cursor is past the end
                return []
            rows = [r for r in rows if (r.received_at, r.key) > (last.received_at, last.key)]
        rows.sort(key=lambda r: (r.received_at, r.key))
        return [_copy(r) for r in rows[: max(limit, 0)]]

    def count_intake_of_ticket(self, tenant_id: str, ticket_id: str) -> int:
        items = self._s.intake.get(tenant_id, {})
        return sum(1 for r in items.values() if r.ticket_id == ticket_id)

    def claim_alarm(self, row: AlarmRow) -> AlarmRow | None:
        self._writing()
        key = (row.tenant_id, row.key)
        stored = self._s.alarms.get(key)
        if stored is not None:
            return _copy(stored)  # the store's lock already serialises transactions
        new = _copy(row)
        self.undo.append(_restore(self._s.alarms, key))
        self._s.alarms[key] = new
        return None

    def update_alarm(self, row: AlarmRow) -> None:
        self._writing()
        key = (row.tenant_id, row.key)
        stored = self._s.alarms.get(key)
        if stored is None:
            raise alarm_missing(row.key)
        new = _copy(row)
        new.first_at = stored.first_at  # never changes, as in the SQL stores' UPDATE
        self.undo.append(_restore(self._s.alarms, key))
        self._s.alarms[key] = new

    def alarm(self, tenant_id: str, key: str) -> AlarmRow | None:
        row = self._s.alarms.get((tenant_id, key))
        return None if row is None else _copy(row)

    # assets

    def put_assets(self, tenant_id: str, rows: Sequence[AssetRow]) -> None:
        self._writing()
        check_assets(tenant_id, rows)
        copies = [_copy(row) for row in rows]  # checks every time before writing any
        catalogue = self._s.assets.setdefault(tenant_id, {})
        for row in copies:
            self.undo.append(_restore(catalogue, row.code))
            catalogue[row.code] = row

    def asset(self, tenant_id: str, code: str) -> AssetRow | None:
        row = self._s.assets.get(tenant_id, {}).get(code)
        return None if row is None else _copy(row)

    def assets(self, tenant_id: str) -> list[AssetRow]:
        catalogue = self._s.assets.get(tenant_id, {})
        return [_copy(catalogue[code]) for code in sorted(catalogue)]


# -- errors and checks shared with the SQL store ---------------------------------------------


def check_assets(tenant_id: str, rows: Sequence[AssetRow]) -> None:
    """The rows `Tx.put_assets` refuses: another tenant's."""
    for row in rows:
        if row.tenant_id != tenant_id:
            raise ValueError(f"asset {row.code} is of tenant {row.tenant_id}, not {tenant_id}")


def token_conflict(id: str) -> Conflict:
    """The Conflict of a token whose id (in its tenant) or hash is another token's."""
    return Conflict(f"token {id!r} exists, or another token has the same hash", token=id)


def draft_conflict(pack: str, expected: int | None, stored: int | None) -> Conflict:
    """The Conflict of a draft save that read another revision than the one stored."""
    if stored is None:
        message = f"draft of pack {pack!r} does not exist (saving revision {expected} of it)"
    elif expected is None:
        message = f"draft of pack {pack!r} exists (at revision {stored}): load it and save again"
    else:
        message = (
            f"draft of pack {pack!r} is at revision {stored}, not {expected}: someone saved "
            "it since you loaded it; load it again and redo your change"
        )
    return Conflict(message, pack=pack, expected_revision=expected, revision=stored)


def intake_conflict(key: str) -> Conflict:
    """The Conflict of an intake item whose idempotency key was received before."""
    return Conflict(f"intake key {key!r} was already received", key=key)


def alarm_missing(key: str) -> Conflict:
    """The Conflict of `update_alarm` on an alarm that was never claimed."""
    return Conflict(f"alarm {key!r} does not exist: claim it first", key=key)


def chain_drafts(
    tenant_id: str,
    seq: int,
    prev: str,
    drafts: Sequence[AuditDraft],
    copy: Callable[[Any], Any] = _deep,
) -> list[AuditRow]:
    """Audit rows numbered after `seq`, each hash chained to the one before.

    `copy` gives the row its own `before` and `after` (called on each draft's before,
    then its after, draft by draft). The hash covers the copies, so a copy must be what
    the store reads back: the SQL store's encodes the value for its JSON column and
    decodes that text (so the hash of a row read back is the hash computed here); this
    store's is `_deep`. Times are put in UTC.
    """
    rows: list[AuditRow] = []
    for offset, draft in enumerate(drafts, 1):
        row = AuditRow(
            tenant_id,
            seq + offset,
            _utc(draft.at),
            draft.actor,
            draft.action,
            draft.subject,
            copy(draft.before),
            copy(draft.after),
            prev,
            "",
        )
        row.hash = prev = chain(row)
        rows.append(row)
    return rows


class MemoryStore:
    """A `Store` kept in this process's memory; lost when the process ends."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._state = _State()

    @contextmanager
    def transaction(self) -> Iterator[MemoryTx]:
        with self._lock:
            tx = MemoryTx(self._state, write=True)
            try:
                yield tx
            except BaseException:
                for step in reversed(tx.undo):
                    step()
                raise

    @contextmanager
    def read(self) -> Iterator[MemoryTx]:
        with self._lock:
            yield MemoryTx(self._state, write=False)

    def close(self) -> None:
        """Nothing to release."""
