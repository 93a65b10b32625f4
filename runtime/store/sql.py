"""The store on SQLAlchemy Core: a SQLite file by default, PostgreSQL for many processes.

Core rather than the ORM because a command is a handful of small statements and their
per-call cost is the runtime's throughput. Statements are built once, here, so SQLAlchemy
compiles each once per engine and then only binds values.

SQLite: every connection runs in WAL mode with `synchronous=NORMAL`, and the driver's own
transaction handling is switched off so that a write transaction starts with
`BEGIN IMMEDIATE`: it takes the write lock up front, so two processes never both hold a read
lock and deadlock trying to upgrade it (they queue on `busy_timeout` instead). The store's
transactions run on driver connections of its own (`_SqlitePool`), outside SQLAlchemy's
pool and transaction objects, whose per-transaction cost is several times SQLite's.

PostgreSQL (`postgresql+psycopg://`): READ COMMITTED; optimistic ticket versions, a row lock
on the tenant's audit head, row-locked sequences, `FOR UPDATE SKIP LOCKED` for due timers
and for claiming outbox messages.

The schema is created and upgraded by the alembic migrations in `runtime/migrations`; the
tables below must match them (a test compares them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from json.scanner import c_make_scanner  # type: ignore[attr-defined]
from operator import attrgetter
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    TypeDecorator,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    false,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import BindParameter, ClauseElement, ColumnElement
from sqlalchemy.types import TypeEngine

from runtime.audit import GENESIS, json_encoder
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
    PackVersionRow,
    PersonRow,
    TicketQuery,
    TicketRow,
    TimerRow,
    TimerStatus,
    TokenRow,
)
from runtime.store.base import DIRECTORY_SEQUENCE
from runtime.store.memory import (
    alarm_missing,
    chain_drafts,
    check_assets,
    check_field,
    check_finish,
    draft_conflict,
    intake_conflict,
    token_conflict,
)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

# -- column types ---------------------------------------------------------------------------


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored in UTC and read back as an aware UTC datetime.

    PostgreSQL keeps it as `timestamptz`. SQLite has no time zones: the value is stored as
    naive UTC text in SQLAlchemy's fixed-width format (so text order is time order) and
    the zone is put back when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store takes aware datetimes")
        if dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        # psycopg gives the session's time zone; callers compare and format in UTC.
        return value.astimezone(UTC)


_Processor = Callable[[Any], Any]


def json_type() -> TypeEngine[Any]:
    """JSON text on SQLite, JSONB on PostgreSQL; Python None is SQL NULL."""
    return JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


# -- values on SQLite -----------------------------------------------------------------------
# `_Prepared` converts values on SQLite with these instead of SQLAlchemy's processors for
# the two column types: the same values in and out, without the layers of TypeDecorator
# and the type's own processor, which cost several times the conversion itself.

_dumps = json_encoder(ensure_ascii=False, separators=(",", ":"))  # (the engine's too)
_scan = c_make_scanner(json.JSONDecoder()) if c_make_scanner is not None else None
_TIME_TEXT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # SQLAlchemy's SQLite DATETIME format
# The last datetime written and its text: a command writes its one `now` several times
# (updated_at, state_entered_at, the event's and the audit row's time). A datetime is
# immutable, so the same object has the same text; the pair is replaced in one assignment.
_last_time: tuple[datetime | None, str] = (None, "")


def _loads(text: str) -> Any:
    """json.loads, through the C scanner straight when the text is bare JSON (as this
    module writes it): loads' checks and whitespace matching cost more than the scan."""
    if _scan is not None:
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            pass  # leading whitespace, or not JSON: json.loads says which
        else:
            if end == len(text):
                return value
    return json.loads(text)


def _sqlite_time_in(value: datetime | None) -> str | None:
    global _last_time
    if value is None:
        return None
    last = _last_time
    if value is last[0]:
        return last[1]
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the store takes aware datetimes")
    v = value.astimezone(UTC)
    text = _TIME_TEXT % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)
    _last_time = (value, text)
    return text


def _sqlite_time_out(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value + "+00:00")  # naive UTC text, as written
    except ValueError:  # text with an offset, written some other way
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _json_in(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def _json_out(value: str | None) -> Any:
    return None if value is None else _loads(value)


def _bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> _Processor | None:
    if dialect.name == "sqlite":
        if isinstance(type_, UTCDateTime):
            return _sqlite_time_in
        if isinstance(type_, JSON):
            return _json_in
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> _Processor | None:
    if dialect.name == "sqlite":
        if isinstance(type_, UTCDateTime):
            return _sqlite_time_out
        if isinstance(type_, JSON):
            return _json_out
    return type_.dialect_impl(dialect).result_processor(dialect, None)


# -- tables ---------------------------------------------------------------------------------
# Columns follow the field order of the row dataclasses so a result row maps positionally.

metadata = MetaData()


def _text(name: str, *, key: bool = False, null: bool = False) -> Column[str]:
    return Column(name, String, primary_key=key, nullable=null)


def _time(name: str, *, null: bool = False) -> Column[datetime]:
    return Column(name, UTCDateTime, nullable=null)


def _int(name: str, *, key: bool = False, big: bool = False) -> Column[int]:
    return Column(name, BigInteger if big else Integer, primary_key=key, nullable=False)


def _json(name: str, *, null: bool = False) -> Column[Any]:
    return Column(name, json_type(), nullable=null)


tickets = Table(
    "tickets",
    metadata,
    _text("tenant_id", key=True),
    _text("id", key=True),
    _text("ref"),
    _text("pack"),
    _int("pack_version"),
    _text("template"),
    _text("state"),
    _json("fields"),
    _int("version"),
    _time("created_at"),
    _time("updated_at"),
    _time("state_entered_at"),
    _text("title", null=True),
    _text("requester", null=True),
    _text("assignee", null=True),
    _text("team", null=True),
    _text("channel", null=True),
    _json("watchers"),
    _json("tags"),
    _text("parent_id", null=True),
    _text("link", null=True),
    Column("closed", Boolean, nullable=False),
    _int("event_seq"),
    _text("search_text"),
    _json("sla", null=True),
    Index("ix_tickets_created", "tenant_id", "created_at", "id"),
    Index("ix_tickets_state", "tenant_id", "state"),
    # Also the open-load query's: open tickets with an assignee, closed read from the index.
    Index("ix_tickets_assignee", "tenant_id", "assignee", "closed"),
    Index("ix_tickets_team", "tenant_id", "team"),
    Index("ix_tickets_requester", "tenant_id", "requester"),
    Index("ix_tickets_pack", "tenant_id", "pack", "closed"),
)

events = Table(
    "events",
    metadata,
    _text("tenant_id", key=True),
    _text("ticket_id", key=True),
    _int("seq", key=True),
    _time("at"),
    _text("kind"),
    _text("actor"),
    _json("data"),
    _text("visibility"),
)

audit = Table(
    "audit",
    metadata,
    _text("tenant_id", key=True),
    _int("seq", key=True, big=True),
    _time("at"),
    _text("actor"),
    _text("action"),
    _text("subject"),
    _json("before", null=True),
    _json("after", null=True),
    _text("prev_hash"),
    _text("hash"),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    _text("tenant_id", key=True),
    _int("seq", big=True),
    _text("hash"),
)

outbox = Table(
    "outbox",
    metadata,
    _text("tenant_id", key=True),
    _text("id", key=True),
    _time("created_at"),
    _text("kind"),
    _text("ticket_id", null=True),
    _json("payload"),
    _text("status"),
    _int("attempts"),
    _time("next_attempt_at", null=True),
    _text("channel", null=True),
    _text("recipient", null=True),
    _text("last_error", null=True),
    _time("delivered_at", null=True),
    # The claim query's whole ORDER BY, across tenants like `ix_timers_due`.
    Index("ix_outbox_due", "status", "next_attempt_at", "tenant_id", "id"),
    Index("ix_outbox_tenant", "tenant_id", "created_at"),
    Index("ix_outbox_recipient", "tenant_id", "recipient", "created_at", "id"),
)

timers = Table(
    "timers",
    metadata,
    _text("tenant_id", key=True),
    _text("id", key=True),
    _time("due_at"),
    _text("kind"),
    _text("ticket_id", null=True),
    _json("payload"),
    _text("key"),
    _text("status"),
    _time("fired_at", null=True),
    # The due query's whole ORDER BY, so PostgreSQL never sorts all overdue timers.
    Index("ix_timers_due", "status", "due_at", "tenant_id", "id"),
    Index("ix_timers_ticket", "tenant_id", "ticket_id", "key"),
)

idempotency = Table(
    "idempotency",
    metadata,
    _text("tenant_id", key=True),
    _text("key", key=True),
    _text("ticket_id"),
)

sequences = Table(
    "sequences",
    metadata,
    _text("tenant_id", key=True),
    _text("name", key=True),
    _int("value", big=True),
)

pack_versions = Table(
    "pack_versions",
    metadata,
    _text("tenant_id", key=True),
    _text("pack", key=True),
    _int("version", key=True),
    _time("published_at"),
    _text("published_by"),
    _json("document"),
    _text("digest"),
)

people = Table(
    "people",
    metadata,
    _text("tenant_id", key=True),
    _text("id", key=True),
    _json("data"),
    _time("updated_at"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    _text("tenant_id", key=True),
    _text("id", key=True),
    _text("hash"),
    _text("user_id"),
    _json("roles"),
    _text("name"),
    _time("created_at"),
    _time("expires_at", null=True),
    _time("revoked_at", null=True),
    # Unique indexes lead with tenant_id (DESIGN.md); a request names its token, not its
    # tenant, so a plain index finds the token by hash across tenants. Two tenants' tokens
    # never share a hash: the secrets are 256 random bits.
    Index("ux_api_tokens_tenant_hash", "tenant_id", "hash", unique=True),
    Index("ix_api_tokens_hash", "hash"),
)

drafts = Table(
    "drafts",
    metadata,
    _text("tenant_id", key=True),
    _text("pack", key=True),
    _json("files"),
    _int("revision"),
    _time("updated_at"),
    _text("updated_by"),
)

intake = Table(
    "intake",
    metadata,
    _text("tenant_id", key=True),
    _text("key", key=True),
    _text("channel"),
    _time("received_at"),
    _text("outcome"),
    _text("ticket_id", null=True),
    _json("data"),
    # A ticket's intake items in listing order, paged by (received_at, key).
    Index("ix_intake_ticket", "tenant_id", "ticket_id", "received_at", "key"),
)

alarms = Table(
    "alarms",
    metadata,
    _text("tenant_id", key=True),
    _text("key", key=True),
    _text("ticket_id"),
    _time("first_at"),
    _time("last_at"),
    _int("count"),
    _time("resolved_at", null=True),
)

assets = Table(
    "assets",
    metadata,
    _text("tenant_id", key=True),
    _text("code", key=True),
    _json("data"),
    _time("updated_at"),
)

# Up to this many assignees, open_load asks per assignee (an index range each) rather than
# grouping every open ticket of the tenant.
LOAD_ONE_BY_ONE = 32

# -- statements -----------------------------------------------------------------------------

_T: BindParameter[str] = bindparam("t")  # the tenant id in every statement below

_TICKET_COLS = tuple(c.name for c in tickets.c)
# What an update may change: not the key, not the creation time.
_TICKET_SET = tuple(c for c in _TICKET_COLS if c not in {"tenant_id", "id", "created_at"})
_ticket_values = attrgetter(*_TICKET_COLS)
_VERSION_AT = _TICKET_COLS.index("version")
_TICKET_SET_AT = tuple(_TICKET_COLS.index(c) for c in _TICKET_SET)
# JSON columns are compared as stored text: Python's == would take 1, 1.0 and true for
# one value, and a caller may change a dict it got from `get_ticket` in place.
_TICKET_JSON_AT = tuple(i for i, c in enumerate(tickets.c) if isinstance(c.type, JSON))


def _update_ticket(columns: Sequence[str]) -> Update:
    """UPDATE of some ticket columns, guarded by the version read."""
    return (
        update(tickets)
        .where(
            tickets.c.tenant_id == _T,
            tickets.c.id == bindparam("i"),
            tickets.c.version == bindparam("expected"),
        )
        .values({c: bindparam(c) for c in columns})
    )


_OPEN_OF_PACK = and_(
    tickets.c.tenant_id == _T, tickets.c.pack == bindparam("pack"), tickets.c.closed == false()
)
_PACK_COLS = tuple(c.name for c in pack_versions.c)
_TIMER_STATUSES = frozenset({"waiting", "fired", "cancelled"})

_HEAD = select(audit_heads.c.seq, audit_heads.c.hash).where(audit_heads.c.tenant_id == _T)
_DUE = (
    select(timers)
    .where(timers.c.status == "waiting", timers.c.due_at <= bindparam("now"))
    .order_by(timers.c.due_at, timers.c.tenant_id, timers.c.id)
    .limit(bindparam("limit"))
)
_TIMERS = select(timers).where(timers.c.tenant_id == _T).order_by(timers.c.due_at, timers.c.id)
_OUTBOX = select(outbox).where(outbox.c.tenant_id == _T).order_by(outbox.c.created_at, outbox.c.id)
_O = outbox.c
# Due messages across tenants, on the (status, next_attempt_at, tenant_id, id) index. A
# claim is a write: on PostgreSQL rows locked by another worker's claim are skipped, never
# waited for; SQLite renders no FOR UPDATE (the write transaction holds the write lock).
_CLAIM = (
    select(outbox)
    .where(_O.status == "pending", _O.next_attempt_at <= bindparam("now"))
    .order_by(_O.next_attempt_at, _O.tenant_id, _O.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
# A person's in-app messages, newest first, on the (tenant_id, recipient, created_at, id)
# index read backwards.
_INBOX = (
    select(outbox)
    .where(_O.tenant_id == _T, _O.recipient == bindparam("r"), _O.channel == "in_app")
    .order_by(_O.created_at.desc(), _O.id.desc())
    .limit(bindparam("limit"))
)
_BEFORE = tuple_(_O.created_at, _O.id) < tuple_(
    bindparam("b", type_=UTCDateTime()), bindparam("bi", type_=String())
)
_PEOPLE = select(people).where(people.c.tenant_id == _T).order_by(people.c.id)
_PACK_VERSIONS = (
    select(pack_versions)
    .where(pack_versions.c.tenant_id == _T, pack_versions.c.pack == bindparam("pack"))
    .order_by(pack_versions.c.version)
)
_D = drafts.c
_DRAFTS = select(drafts).where(_D.tenant_id == _T).order_by(_D.pack)
_IN = intake.c
# A ticket's intake items on `ix_intake_ticket`, in (received_at, key) order.
_INTAKE_OF_TICKET = (
    select(intake)
    .where(_IN.tenant_id == _T, _IN.ticket_id == bindparam("i"))
    .order_by(_IN.received_at, _IN.key)
    .limit(bindparam("limit"))
)
# After the item with key `after`: a row comparison with that item's (received_at, key),
# an index range on both databases. An unknown key compares as NULL: no rows.
_AFTER_ITEM = tuple_(_IN.received_at, _IN.key) > tuple_(
    select(_IN.received_at)
    .where(_IN.tenant_id == _T, _IN.key == bindparam("after"))
    .scalar_subquery(),
    bindparam("after", type_=String()),
)
_ALARM = select(alarms).where(alarms.c.tenant_id == _T, alarms.c.key == bindparam("k"))
_ASSETS = select(assets).where(assets.c.tenant_id == _T).order_by(assets.c.code)


def _sqlite_field_text() -> ColumnElement[Any]:
    """`fields[field]` as text on SQLite (`path`: the JSON path `$."field"`): json_extract
    gives a string's text and other values' JSON text, but 1 and 0 for true and false."""
    path = bindparam("path", type_=String())
    return case(
        {"true": "true", "false": "false"},
        value=func.json_type(tickets.c.fields, path),
        else_=sql_cast(func.json_extract(tickets.c.fields, path), String()),
    )


def _pg_field_text() -> ColumnElement[Any]:
    """`fields[field]` as text on PostgreSQL (`f`: the field name): JSONB's `->>` gives a
    string's text, other values' JSON text, NULL for a JSON null or a missing key."""
    return tickets.c.fields.op("->>", return_type=String())(sql_cast(bindparam("f"), String()))


def _open_load(field_text: ColumnElement[Any] | None, one: bool = False) -> Select[Any]:
    """Open tickets with an assignee counted by assignee (and by `field_text`), grouped in
    the database; the field's value is computed once per row, in a subquery. `one`: of
    the assignee `a` only (an index range, for routing's few candidates)."""
    t = tickets.c
    where: list[ColumnElement[bool]] = [t.tenant_id == _T, t.closed == false()]
    where.append(t.assignee == bindparam("a") if one else t.assignee.is_not(None))
    if field_text is None:
        return select(t.assignee, func.count()).where(*where).group_by(t.assignee)
    rows = select(t.assignee, field_text.label("value")).where(*where).subquery("open_rows")
    return select(rows.c.assignee, rows.c.value, func.count()).group_by(
        rows.c.assignee, rows.c.value
    )


def _pack_heads() -> Select[Any]:
    return (
        select(pack_versions.c.pack, func.max(pack_versions.c.version).label("version"))
        .where(pack_versions.c.tenant_id == _T)
        .group_by(pack_versions.c.pack)
        .order_by(pack_versions.c.pack)
    )


def _latest_packs() -> Select[Any]:
    newest = _pack_heads().order_by(None).subquery()
    same = and_(pack_versions.c.pack == newest.c.pack, pack_versions.c.version == newest.c.version)
    return (
        select(pack_versions)
        .join(newest, same)
        .where(pack_versions.c.tenant_id == _T)
        .order_by(pack_versions.c.pack)
    )


def _statements(
    insert_: Callable[[Table], Any], field_text: ColumnElement[Any]
) -> dict[str, ClauseElement]:
    """Every fixed statement of the store; `insert_` is the dialect's INSERT (for ON
    CONFLICT, which SQLite and PostgreSQL spell alike), `field_text` its expression of a
    ticket field's value as text."""
    t = tickets.c
    return {
        "get_ticket": select(tickets).where(t.tenant_id == _T, t.id == bindparam("i")),
        "update_ticket": _update_ticket(_TICKET_SET),
        "open_tickets": select(tickets).where(_OPEN_OF_PACK).order_by(t.created_at, t.id),
        "count_open": select(t.pack_version, t.template, t.state, func.count())
        .where(_OPEN_OF_PACK)
        .group_by(t.pack_version, t.template, t.state),
        "load": _open_load(None),
        "load_by_field": _open_load(field_text),
        "load_one": _open_load(None, one=True),
        "load_one_by_field": _open_load(field_text, one=True),
        "events": select(events)
        .where(events.c.tenant_id == _T, events.c.ticket_id == bindparam("i"))
        .order_by(events.c.seq),
        "audit": select(audit)
        .where(audit.c.tenant_id == _T, audit.c.seq > bindparam("after"))
        .order_by(audit.c.seq)
        .limit(bindparam("limit")),
        "head": _HEAD,
        # FOR UPDATE serialises a tenant's audit writers on PostgreSQL; SQLite renders
        # nothing and needs nothing (a write transaction holds the database's write lock).
        "lock_head": _HEAD.with_for_update(),
        "new_head": insert_(audit_heads)
        .values(tenant_id=_T, seq=0, hash=GENESIS)
        .on_conflict_do_nothing(),
        "set_head": update(audit_heads)
        .where(audit_heads.c.tenant_id == _T)
        .values(seq=bindparam("seq"), hash=bindparam("hash")),
        "audit_tenants": select(audit_heads.c.tenant_id)
        .where(audit_heads.c.seq > 0)
        .order_by(audit_heads.c.tenant_id),
        "outbox": _OUTBOX,
        "outbox_by_status": _OUTBOX.where(outbox.c.status == bindparam("status")),
        "outbox_message": _OUTBOX.where(outbox.c.id == bindparam("i")),
        "claim_outbox": _CLAIM,
        "lease_outbox": update(outbox)
        .where(_O.tenant_id == _T, _O.id == bindparam("i"))
        .values(attempts=_O.attempts + 1, next_attempt_at=bindparam("lease")),
        # Only while the row is still at the attempt the worker claimed.
        "finish_outbox": update(outbox)
        .where(_O.tenant_id == _T, _O.id == bindparam("i"), _O.attempts == bindparam("a"))
        .values(
            status=bindparam("status"),
            next_attempt_at=bindparam("next"),
            last_error=bindparam("error"),
            delivered_at=bindparam("delivered"),
        ),
        "retry_outbox": update(outbox)
        .where(_O.tenant_id == _T, _O.id == bindparam("i"), _O.status == "dead")
        .values(status="pending", attempts=0, next_attempt_at=bindparam("now")),
        "inbox": _INBOX,
        "inbox_before": _INBOX.where(_BEFORE),
        "cancel_timers": update(timers)
        .where(
            timers.c.tenant_id == _T,
            timers.c.ticket_id == bindparam("i"),
            timers.c.key == bindparam("k"),
            timers.c.status == "waiting",
        )
        .values(status="cancelled"),
        # The (status, due_at) index makes this a range scan; ties are broken by the key.
        "due": _DUE,
        # Locked rows belong to another worker's transaction: skip them, never wait.
        "due_locked": _DUE.with_for_update(skip_locked=True),
        "mark_timer": update(timers)
        .where(timers.c.tenant_id == _T, timers.c.id == bindparam("i"))
        .values(status=bindparam("status"), fired_at=bindparam("at")),
        "timers": _TIMERS,
        "timers_of_ticket": _TIMERS.where(timers.c.ticket_id == bindparam("i")),
        # ON CONFLICT DO NOTHING inserts 0 rows when the key is taken, without an error
        # that would abort a PostgreSQL transaction.
        "claim": insert_(idempotency)
        .values(tenant_id=_T, key=bindparam("k"), ticket_id=bindparam("i"))
        .on_conflict_do_nothing(),
        "claimed": select(idempotency.c.ticket_id).where(
            idempotency.c.tenant_id == _T, idempotency.c.key == bindparam("k")
        ),
        # One statement: the upsert's row lock keeps the numbers gap-free.
        "next_seq": insert_(sequences)
        .values(tenant_id=_T, name=bindparam("n"), value=1)
        .on_conflict_do_update(
            index_elements=[sequences.c.tenant_id, sequences.c.name],
            set_={"value": sequences.c.value + 1},
        )
        .returning(sequences.c.value),
        "people": _PEOPLE,
        "person": _PEOPLE.where(people.c.id == bindparam("i")),
        "remove_person": delete(people).where(
            people.c.tenant_id == _T, people.c.id == bindparam("i")
        ),
        "directory_rev": select(sequences.c.value).where(
            sequences.c.tenant_id == _T, sequences.c.name == DIRECTORY_SEQUENCE
        ),
        "add_pack": insert_(pack_versions).on_conflict_do_nothing(),
        "pack_versions": _PACK_VERSIONS,
        "pack_version": _PACK_VERSIONS.where(pack_versions.c.version == bindparam("version")),
        "latest_packs": _latest_packs(),
        "pack_heads": _pack_heads(),
        **_api_statements(),
    }


def _api_statements() -> dict[str, ClauseElement]:
    """The statements of API tokens, builder drafts, intake, alarms and assets (their
    INSERTs are `_RowInsert`s, see `_row_inserts`)."""
    k = api_tokens.c
    return {
        "token_by_hash": select(api_tokens).where(k.hash == bindparam("h")),
        "tokens": select(api_tokens).where(k.tenant_id == _T).order_by(k.created_at, k.id),
        "revoke_token": update(api_tokens)
        .where(k.tenant_id == _T, k.id == bindparam("i"), k.revoked_at.is_(None))
        .values(revoked_at=bindparam("at")),
        "drafts": _DRAFTS,
        "draft": _DRAFTS.where(_D.pack == bindparam("pack")),
        "draft_revision": select(_D.revision).where(
            _D.tenant_id == _T, _D.pack == bindparam("pack")
        ),
        # Optimistic: only over the revision the editor read.
        "save_draft": update(drafts)
        .where(
            _D.tenant_id == _T, _D.pack == bindparam("pack"), _D.revision == bindparam("expected")
        )
        .values(
            files=bindparam("files"),
            revision=bindparam("revision"),
            updated_at=bindparam("at"),
            updated_by=bindparam("by"),
        ),
        "delete_draft": delete(drafts).where(_D.tenant_id == _T, _D.pack == bindparam("pack")),
        "intake": select(intake).where(_IN.tenant_id == _T, _IN.key == bindparam("k")),
        "intake_of_ticket": _INTAKE_OF_TICKET,
        "intake_of_ticket_after": _INTAKE_OF_TICKET.where(_AFTER_ITEM),
        "count_intake": select(func.count()).where(
            _IN.tenant_id == _T, _IN.ticket_id == bindparam("i")
        ),
        "alarm": _ALARM,
        # FOR UPDATE: a repeat of the alarm waits here for the transaction handling the
        # one before; SQLite renders nothing (the write transaction holds the write lock).
        "lock_alarm": _ALARM.with_for_update(),
        "update_alarm": update(alarms)
        .where(alarms.c.tenant_id == _T, alarms.c.key == bindparam("k"))
        .values(
            ticket_id=bindparam("i"),
            last_at=bindparam("last"),
            count=bindparam("n"),
            resolved_at=bindparam("resolved"),
        ),
        "assets": _ASSETS,
        "asset": _ASSETS.where(assets.c.code == bindparam("code")),
    }


def _row_inserts(insert_: Callable[[Table], Any]) -> dict[str, tuple[Table, ClauseElement]]:
    """The INSERTs of whole rows of the newer tables, by name: ON CONFLICT DO NOTHING
    where a duplicate is a Conflict (the row count says so, and a PostgreSQL
    transaction is not aborted by it), an upsert for assets."""
    upsert = insert_(assets)
    put_assets: ClauseElement = upsert.on_conflict_do_update(
        index_elements=[assets.c.tenant_id, assets.c.code],
        set_={"data": upsert.excluded.data, "updated_at": upsert.excluded.updated_at},
    )
    # No conflict target: any unique index counts (for tokens, the key and the hash).
    return {
        "add_token": (api_tokens, insert_(api_tokens).on_conflict_do_nothing()),
        "add_draft": (drafts, insert_(drafts).on_conflict_do_nothing()),
        "add_intake": (intake, insert_(intake).on_conflict_do_nothing()),
        "claim_alarm": (alarms, insert_(alarms).on_conflict_do_nothing()),
        "put_assets": (assets, put_assets),
    }


def _put_people(insert_: Callable[[Table], Any]) -> ClauseElement:
    """INSERT of whole people rows, replacing the one with the same key."""
    upsert = insert_(people)
    statement: ClauseElement = upsert.on_conflict_do_update(
        index_elements=[people.c.tenant_id, people.c.id],
        set_={"data": upsert.excluded.data, "updated_at": upsert.excluded.updated_at},
    )
    return statement


# Built here, once; compiled once per dialect by `_Statements`.
_FIXED = {
    "sqlite": _statements(sqlite.insert, _sqlite_field_text()),
    "postgresql": _statements(postgresql.insert, _pg_field_text()),
}
_UPSERT_PEOPLE = {
    "sqlite": _put_people(sqlite.insert),
    "postgresql": _put_people(postgresql.insert),
}
_ROW_INSERTS = {
    "sqlite": _row_inserts(sqlite.insert),
    "postgresql": _row_inserts(postgresql.insert),
}


class _Prepared:
    """A statement compiled once for a dialect, run straight on the DBAPI cursor.

    For these small statements SQLAlchemy's per-execution work (cache key, parameter and
    result set-up, events) costs several times what SQLite spends on them. Values still
    pass through the processors SQLAlchemy itself applies (`UTCDateTime`, JSON, booleans),
    or on SQLite equivalent quicker ones (`_bind_processor`), so what is written here reads
    back through Core and the other way round.
    """

    __slots__ = ("_plain", "_results", "_slots", "named", "names", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if "POSTCOMPILE" in compiled.string:
            raise ValueError(f"expanding parameters cannot be prepared: {compiled.string}")
        self.sql = compiled.string
        self.named = not compiled.positional
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        self.names = tuple(sorted(binds) if self.named else compiled.positiontup or ())
        # (name, processor, is a parameter, constant) for each placeholder in order.
        slots: list[tuple[str, _Processor | None, bool, Any]] = []
        for name in self.names:
            bind = binds[name]
            process = _bind_processor(bind.type, dialect)
            if bind.required:
                slots.append((name, process, True, None))
            else:  # a literal in the statement, e.g. status = 'waiting'
                value = bind.effective_value
                slots.append((name, None, False, value if process is None else process(value)))
        self._slots = tuple(slots)
        # Every placeholder a parameter passed as it is: `params` just picks the values.
        self._plain = all(is_param and process is None for _, process, is_param, _ in slots)
        results: list[tuple[int, _Processor]] = []
        if isinstance(statement, Select):
            for index, column in enumerate(statement.selected_columns):
                process = _result_processor(column.type, dialect)
                if process is not None:
                    results.append((index, process))
        self._results = tuple(results)

    def params(self, values: Mapping[str, Any], processed: bool = False) -> Any:
        """DBAPI parameters from `values` (already through the bind processors when
        `processed`): a list, or a dict for a named paramstyle."""
        if self._plain:
            if self.named:
                return {name: values[name] for name in self.names}
            return [values[name] for name in self.names]
        out: list[Any] = []
        for name, process, is_param, const in self._slots:
            if not is_param:
                out.append(const)
            elif process is None or processed:
                out.append(values[name])
            else:
                out.append(process(values[name]))
        return dict(zip(self.names, out, strict=True)) if self.named else out

    def row(self, raw: Sequence[Any]) -> Sequence[Any]:
        """A fetched row with the result processors applied."""
        if not self._results:
            return raw
        row = list(raw)
        for index, process in self._results:
            row[index] = process(row[index])
        return row


class _RowInsert:
    """An INSERT of whole rows, its parameters straight from a row dataclass (whose fields
    follow the table's columns). `statement`: the INSERT of every column to use instead
    of the plain one (an upsert)."""

    __slots__ = ("_bind", "_columns", "_get", "_json_at", "_named", "_scalar_bind", "sql")

    def __init__(
        self, table: Table, dialect: Dialect, statement: ClauseElement | None = None
    ) -> None:
        prepared = _Prepared(insert(table) if statement is None else statement, dialect)
        self._columns = tuple(c.name for c in table.c)
        self._named = prepared.named
        if set(prepared.names) != set(self._columns) or (
            not self._named and prepared.names != self._columns
        ):
            raise RuntimeError(f"unexpected parameters in {prepared.sql}")
        self.sql = prepared.sql
        self._get = attrgetter(*self._columns)
        processors = (_bind_processor(c.type, dialect) for c in table.c)
        self._bind = tuple((i, p) for i, p in enumerate(processors) if p is not None)
        self._json_at = tuple(i for i, c in enumerate(table.c) if isinstance(c.type, JSON))
        self._scalar_bind = tuple((i, p) for i, p in self._bind if i not in self._json_at)

    def params(self, row: Any, texts: Sequence[str | None] | None = None) -> Any:
        """The DBAPI parameters inserting `row`: a list, or a dict for a named paramstyle.
        `texts`: the JSON columns' values already encoded, in column order (SQLite)."""
        values = list(self._get(row))
        if texts is None:
            for index, process in self._bind:
                values[index] = process(values[index])
        else:
            for index, process in self._scalar_bind:
                values[index] = process(values[index])
            for index, text in zip(self._json_at, texts, strict=True):
                values[index] = text
        return dict(zip(self._columns, values, strict=True)) if self._named else values


class _Statements:
    """The store's statements prepared for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.pg = dialect.name == "postgresql"
        self.integrity: type[Exception] = dialect.loaded_dbapi.IntegrityError
        self.by_name = {k: _Prepared(s, dialect) for k, s in _FIXED[dialect.name].items()}
        self.insert_ticket, self.insert_events, self.insert_audit = (
            _RowInsert(table, dialect) for table in (tickets, events, audit)
        )
        self.insert_outbox, self.insert_timers = (
            _RowInsert(table, dialect) for table in (outbox, timers)
        )
        self.put_people = _RowInsert(people, dialect, _UPSERT_PEOPLE[dialect.name])
        self.row_inserts = {
            name: _RowInsert(table, dialect, statement)
            for name, (table, statement) in _ROW_INSERTS[dialect.name].items()
        }
        get = self.by_name["get_ticket"]
        # (tenant, id) as they are, when the driver takes them so (SQLite).
        self.key_positional = not get.named and get.names == ("t", "i")
        # The ticket columns' bind processors, by name (listings) and by position (updates).
        processors = (_bind_processor(c.type, dialect) for c in tickets.c)
        self.ticket_bind = dict(zip(_TICKET_COLS, processors, strict=True))
        self.ticket_bind_at = tuple(self.ticket_bind[c] for c in _TICKET_COLS)
        self.mark = "%s" if self.pg else "?"  # the positional placeholder, for listings
        self._updates: dict[tuple[int, ...], str] = {}

    def __getitem__(self, name: str) -> _Prepared:
        return self.by_name[name]

    def update_of(self, positions: tuple[int, ...]) -> str:
        """The UPDATE of just the ticket columns at these positions (prepared on first
        use); positional parameters: their values, then tenant, id and expected version."""
        sql = self._updates.get(positions)
        if sql is None:
            columns = tuple(_TICKET_COLS[i] for i in positions)
            prepared = _Prepared(_update_ticket(columns), self.dialect)
            if prepared.named or prepared.names != (*columns, "t", "i", "expected"):
                raise RuntimeError(f"unexpected parameter order in {prepared.sql}")
            sql = self._updates[positions] = prepared.sql
        return sql


_PREPARED: dict[tuple[str, str], _Statements] = {}
_PREPARED_LOCK = threading.Lock()


def _prepared_for(dialect: Dialect) -> _Statements:
    key = (dialect.name, dialect.driver)
    with _PREPARED_LOCK:
        if key not in _PREPARED:
            _PREPARED[key] = _Statements(dialect)
        return _PREPARED[key]


_TICKET_SELECT = f"SELECT {', '.join(_TICKET_COLS)} FROM tickets WHERE "
# What the listing's filters compare, in order: (TicketQuery attribute, column).
_LISTING_FILTERS = (
    ("states", "state"),
    ("templates", "template"),
    ("assignees", "assignee"),
    ("teams", "team"),
    ("requesters", "requester"),
)
_SEE_COLUMNS = {"requester": "requester", "assignee": "assignee", "team": "team"}


def _listing(
    tenant_id: str, query: TicketQuery, mark: str, bind: Mapping[str, _Processor | None]
) -> tuple[str, list[Any]]:
    """The SELECT of a ticket listing and its parameters (`mark` is the driver's
    placeholder, `bind` the ticket columns' bind processors). Values are always
    parameters, never SQL text; an empty value list matches nothing, as Core's `in_`."""
    params: list[Any] = [tenant_id]
    where = [f"tenant_id = {mark}"]

    def among(column: str, values: Sequence[str]) -> str:
        if not values:
            return "1 = 0"
        params.extend(values)
        return f"{column} IN ({', '.join([mark] * len(values))})"

    def encoded(column: str, value: Any) -> Any:
        process = bind[column]
        return value if process is None else process(value)

    for attribute, column in _LISTING_FILTERS:
        wanted = getattr(query, attribute)
        if wanted:
            where.append(among(column, wanted))
    if query.closed is not None:
        where.append(f"closed = {mark}")
        params.append(encoded("closed", query.closed))
    if query.text is not None:
        # search_text is stored lower-cased, so lowering the needle is enough; % and _ in
        # it are literal (escaped with /, as Core's `contains(autoescape=True)`).
        needle = query.text.lower().replace("/", "//").replace("%", "/%").replace("_", "/_")
        where.append(f"search_text LIKE {mark} ESCAPE '/'")
        params.append(f"%{needle}%")
    if query.after is not None:
        at, last_id = query.after
        where.append(f"(created_at > {mark} OR (created_at = {mark} AND id > {mark}))")
        params.extend((encoded("created_at", at), encoded("created_at", at), last_id))
    # A clause without conditions sees every ticket: then visibility filters nothing.
    if all(clause.kind != "all" or clause.templates is not None for clause in query.see):
        clauses: list[str] = []
        for clause in query.see:
            conditions: list[str] = []
            if clause.kind != "all":
                conditions.append(among(_SEE_COLUMNS[clause.kind], clause.values))
            if clause.templates is not None:
                conditions.append(among("template", clause.templates))
            clauses.append(f"({' AND '.join(conditions)})")
        where.append(f"({' OR '.join(clauses)})")
    params.append(query.limit)
    return f"{_TICKET_SELECT}{' AND '.join(where)} ORDER BY created_at, id LIMIT {mark}", params


# -- transactions ---------------------------------------------------------------------------


class _Encoded:
    """The `copy` of `chain_drafts` for this store: a JSON value is encoded once, the text
    kept for its column (`texts`, in call order), and the row gets that text decoded,
    exactly what reading the row back gives, so the hash computed on it is the one
    `runtime.audit.verify` recomputes."""

    __slots__ = ("texts",)

    def __init__(self) -> None:
        self.texts: list[str | None] = []

    def __call__(self, value: Any) -> Any:
        if value is None:
            self.texts.append(None)
            return None
        text = _dumps(value)
        self.texts.append(text)
        return _loads(text)


def _changed(row: TicketRow) -> Conflict:
    return Conflict(f"ticket {row.id} changed since it was read", ticket_id=row.id)


def _stored(raw: Sequence[Any], values: Sequence[Any]) -> list[Any]:
    """A ticket as stored, for `SqlTx._sqlite_update`: the decoded values (immutable:
    text, numbers, datetimes), but the stored text of JSON columns, whose decoded values
    went to the caller, who may change them in place."""
    stored = list(values)
    for index in _TICKET_JSON_AT:
        stored[index] = raw[index]
    return stored


class SqlTx:
    """One transaction: prepared statements on the DBAPI cursor."""

    __slots__ = ("_cur", "_integrity", "_pg", "_seen", "_st", "_write")

    def __init__(self, cursor: Any, statements: _Statements, write: bool) -> None:
        self._cur = cursor
        self._st = statements
        self._write = write
        self._pg = statements.pg
        self._integrity = statements.integrity
        # SQLite: tickets as stored when read in this transaction, by (tenant, id), for
        # `_sqlite_update` (see `_stored`).
        self._seen: dict[tuple[str, str], list[Any]] = {}

    def _run(self, name: str, values: Mapping[str, Any]) -> Any:
        prepared = self._st[name]
        self._cur.execute(prepared.sql, prepared.params(values))
        return self._cur

    def _one(self, name: str, values: Mapping[str, Any]) -> Sequence[Any] | None:
        prepared = self._st[name]
        self._cur.execute(prepared.sql, prepared.params(values))
        raw = self._cur.fetchone()
        return None if raw is None else prepared.row(raw)

    def _all(self, name: str, values: Mapping[str, Any]) -> list[Sequence[Any]]:
        prepared = self._st[name]
        self._cur.execute(prepared.sql, prepared.params(values))
        return [prepared.row(raw) for raw in self._cur.fetchall()]

    def _each(self, name: str, values: Sequence[Mapping[str, Any]]) -> int:
        """Run a statement once per set of values (executemany); returns the rows it
        changed in all (both drivers add up the counts of DML statements)."""
        if not values:
            return 0
        prepared = self._st[name]
        if len(values) == 1:
            self._cur.execute(prepared.sql, prepared.params(values[0]))
        else:
            self._cur.executemany(prepared.sql, [prepared.params(v) for v in values])
        return int(self._cur.rowcount)

    def _insert(
        self, insert: _RowInsert, rows: Sequence[Any], what: str, params: list[Any] | None = None
    ) -> None:
        """INSERT dataclass rows (or these parameters of them); a duplicate key is a
        conflict."""
        if params is None:
            params = [insert.params(r) for r in rows]
        try:
            if len(params) == 1:
                self._cur.execute(insert.sql, params[0])
            else:
                self._cur.executemany(insert.sql, params)
        except self._integrity as error:
            raise Conflict(f"{what} exists") from error

    def _writing(self) -> None:
        if not self._write:
            raise RuntimeError("write inside a read transaction")

    # tickets

    def _fetch_ticket(self, tenant_id: str, ticket_id: str) -> Sequence[Any] | None:
        prepared = self._st["get_ticket"]
        if self._st.key_positional:
            self._cur.execute(prepared.sql, (tenant_id, ticket_id))
        else:
            self._cur.execute(prepared.sql, prepared.params({"t": tenant_id, "i": ticket_id}))
        raw: Sequence[Any] | None = self._cur.fetchone()
        return raw

    def get_ticket(self, tenant_id: str, ticket_id: str) -> TicketRow | None:
        raw = self._fetch_ticket(tenant_id, ticket_id)
        if raw is None:
            return None
        values = self._st["get_ticket"].row(raw)
        if self._write and not self._pg:
            self._seen[(tenant_id, ticket_id)] = _stored(raw, values)
        return TicketRow(*values)

    def insert_ticket(self, row: TicketRow) -> None:
        self._writing()
        self._insert(self._st.insert_ticket, [row], f"ticket {row.id}")

    def update_ticket(self, row: TicketRow, expected_version: int) -> None:
        self._writing()
        if not self._pg:
            self._sqlite_update(row, expected_version)
            return
        values = dict(zip(_TICKET_COLS, _ticket_values(row), strict=True))
        # Every column: PostgreSQL compares old and new index keys itself (HOT).
        values.update(version=expected_version + 1, expected=expected_version)
        values.update(t=row.tenant_id, i=row.id)
        prepared = self._st["update_ticket"]
        self._cur.execute(prepared.sql, prepared.params(values))
        if self._cur.rowcount != 1:
            raise _changed(row)
        row.version = expected_version + 1

    def _sqlite_update(self, row: TicketRow, expected_version: int) -> None:
        """SQLite rewrites the index entries of every column named in SET, changed or not
        (measured: 58 µs against 16 µs with the six ticket indexes), so set only the
        columns that differ from the stored row. That row is current: it was read in this
        transaction, which holds the write lock (BEGIN IMMEDIATE); it is compared as
        Python values (JSON columns: as stored text), and only what changed is encoded."""
        key = (row.tenant_id, row.id)
        seen = self._seen.pop(key, None)  # put back once the UPDATE has succeeded
        if seen is None:  # not read in this transaction
            raw = self._fetch_ticket(*key)
            seen = None if raw is None else _stored(raw, self._st["get_ticket"].row(raw))
        if seen is None or seen[_VERSION_AT] != expected_version:
            raise _changed(row)
        new = list(_ticket_values(row))
        new[_VERSION_AT] = expected_version + 1
        bind = self._st.ticket_bind_at
        for index in _TICKET_JSON_AT:
            process = bind[index]
            if process is not None:
                new[index] = process(new[index])  # None stays NULL
        changed = tuple([i for i in _TICKET_SET_AT if new[i] != seen[i]])
        params: list[Any] = []
        for index in changed:
            value = new[index]
            process = None if index in _TICKET_JSON_AT else bind[index]
            params.append(value if process is None else process(value))
        params += key
        params.append(expected_version)
        self._cur.execute(self._st.update_of(changed), params)
        if self._cur.rowcount != 1:
            raise _changed(row)
        for index in changed:
            seen[index] = new[index]  # `seen` becomes the row as now stored
        self._seen[key] = seen
        row.version = expected_version + 1

    def query_tickets(self, tenant_id: str, query: TicketQuery) -> list[TicketRow]:
        if not query.see:
            return []  # no clause, nothing visible
        sql, params = _listing(tenant_id, query, self._st.mark, self._st.ticket_bind)
        self._cur.execute(sql, params)
        row = self._st["get_ticket"].row  # the same columns
        return [TicketRow(*row(raw)) for raw in self._cur.fetchall()]

    def count_open_by_state(self, tenant_id: str, pack: str) -> dict[tuple[int, str, str], int]:
        rows = self._all("count_open", {"t": tenant_id, "pack": pack})
        return {(v, template, state): n for v, template, state, n in rows}

    def open_tickets_of_pack(self, tenant_id: str, pack: str) -> list[TicketRow]:
        rows = self._all("open_tickets", {"t": tenant_id, "pack": pack})
        return [TicketRow(*row) for row in rows]

    def open_load(
        self, tenant_id: str, field: str | None = None, assignees: Sequence[str] | None = None
    ) -> dict[str, dict[str | None, int]]:
        check_field(field)
        # SQLite takes a JSON path (the name quoted: it may hold dots), PostgreSQL the key.
        values: dict[str, Any] = {"t": tenant_id, "f": field, "path": f'$."{field}"'}
        if assignees is not None and len(assignees) <= LOAD_ONE_BY_ONE:
            load: dict[str, dict[str | None, int]] = {}
            for assignee in dict.fromkeys(assignees):
                load.update(self._load(field, {**values, "a": assignee}, "load_one"))
            return load
        load = self._load(field, values, "load")
        if assignees is not None:
            wanted = set(assignees)
            load = {a: counts for a, counts in load.items() if a in wanted}
        return load

    def _load(
        self, field: str | None, values: dict[str, Any], name: str
    ) -> dict[str, dict[str | None, int]]:
        if field is None:
            return {a: {None: int(n)} for a, n in self._all(name, values)}
        load: dict[str, dict[str | None, int]] = {}
        for assignee, value, n in self._all(f"{name}_by_field", values):
            load.setdefault(assignee, {})[value] = int(n)
        return load

    # timeline

    def add_events(self, rows: Sequence[EventRow]) -> None:
        self._writing()
        if rows:
            self._insert(self._st.insert_events, rows, "event")

    def events(self, tenant_id: str, ticket_id: str) -> list[EventRow]:
        return [EventRow(*r) for r in self._all("events", {"t": tenant_id, "i": ticket_id})]

    # audit

    def add_audit(self, tenant_id: str, drafts: Sequence[AuditDraft]) -> list[AuditRow]:
        self._writing()
        if not drafts:
            return []
        seq, prev = self._lock_head(tenant_id)
        encoded = _Encoded()
        rows = chain_drafts(tenant_id, seq, prev, drafts, encoded)
        insert = self._st.insert_audit
        params = None
        if not self._pg:  # (psycopg encodes JSON itself, as it sends it)
            texts = encoded.texts
            params = [insert.params(r, texts[2 * n : 2 * n + 2]) for n, r in enumerate(rows)]
        self._insert(insert, rows, "audit row", params)
        last = rows[-1]
        self._run("set_head", {"t": tenant_id, "seq": last.seq, "hash": last.hash})
        return rows

    def _lock_head(self, tenant_id: str) -> tuple[int, str]:
        """The tenant's audit head, locked until commit; created on the tenant's first
        audit row (ON CONFLICT DO NOTHING: a concurrent creator may win, then we wait)."""
        head = self._one("lock_head", {"t": tenant_id})
        if head is None:
            self._run("new_head", {"t": tenant_id})
            head = self._one("lock_head", {"t": tenant_id})
            assert head is not None
        return int(head[0]), str(head[1])

    def audit(self, tenant_id: str, after_seq: int = 0, limit: int = 1000) -> list[AuditRow]:
        rows = self._all("audit", {"t": tenant_id, "after": after_seq, "limit": limit})
        return [AuditRow(*row) for row in rows]

    def audit_head(self, tenant_id: str) -> tuple[int, str]:
        head = self._one("head", {"t": tenant_id})
        return (0, GENESIS) if head is None else (int(head[0]), str(head[1]))

    def audit_tenants(self) -> list[str]:
        return [str(row[0]) for row in self._all("audit_tenants", {})]

    # outbox

    def add_outbox(self, rows: Sequence[OutboxRow]) -> None:
        self._writing()
        if rows:
            due = [
                r
                if r.next_attempt_at is not None
                else dataclasses.replace(r, next_attempt_at=r.created_at)
                for r in rows
            ]
            self._insert(self._st.insert_outbox, due, "outbox message")

    def outbox(self, tenant_id: str, status: str | None = None) -> list[OutboxRow]:
        if status is None:
            rows = self._all("outbox", {"t": tenant_id})
        else:
            rows = self._all("outbox_by_status", {"t": tenant_id, "status": status})
        return [OutboxRow(*row) for row in rows]

    def outbox_message(self, tenant_id: str, id: str) -> OutboxRow | None:
        row = self._one("outbox_message", {"t": tenant_id, "i": id})
        return None if row is None else OutboxRow(*row)

    def claim_outbox(self, now: datetime, limit: int, lease_until: datetime) -> list[OutboxRow]:
        """SELECT … FOR UPDATE SKIP LOCKED, then the lease written on the rows selected
        (locked on PostgreSQL; on SQLite the transaction holds the write lock)."""
        self._writing()
        if lease_until.tzinfo is None:
            raise ValueError(f"naive datetime {lease_until!r}: the store takes aware datetimes")
        if limit <= 0:
            return []
        rows = [OutboxRow(*r) for r in self._all("claim_outbox", {"now": now, "limit": limit})]
        leases = [{"t": r.tenant_id, "i": r.id, "lease": lease_until} for r in rows]
        self._each("lease_outbox", leases)
        lease = lease_until.astimezone(UTC)
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = lease
        return rows

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
        values = {
            "t": tenant_id,
            "i": id,
            "a": attempts,
            "status": status,
            "next": next_attempt_at,
            "error": last_error,
            "delivered": delivered_at,
        }
        return bool(self._run("finish_outbox", values).rowcount == 1)

    def retry_outbox(self, tenant_id: str, ids: Sequence[str], now: datetime) -> int:
        self._writing()
        return self._each("retry_outbox", [{"t": tenant_id, "i": i, "now": now} for i in ids])

    def inbox(
        self,
        tenant_id: str,
        recipient: str,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[OutboxRow]:
        values: dict[str, Any] = {"t": tenant_id, "r": recipient, "limit": limit}
        if before is None:
            return [OutboxRow(*row) for row in self._all("inbox", values)]
        values["b"], values["bi"] = before
        return [OutboxRow(*row) for row in self._all("inbox_before", values)]

    # timers

    def add_timers(self, rows: Sequence[TimerRow]) -> None:
        self._writing()
        if rows:
            self._insert(self._st.insert_timers, rows, "timer")

    def cancel_timers(self, tenant_id: str, ticket_id: str, key: str) -> int:
        self._writing()
        cursor = self._run("cancel_timers", {"t": tenant_id, "i": ticket_id, "k": key})
        return int(cursor.rowcount)

    def due_timers(self, now: datetime, limit: int) -> list[TimerRow]:
        name = "due_locked" if self._write and self._pg else "due"
        return [TimerRow(*row) for row in self._all(name, {"now": now, "limit": limit})]

    def mark_timer(self, timer: TimerRow, status: str, at: datetime) -> None:
        self._writing()
        if status not in _TIMER_STATUSES:
            raise ValueError(f"unknown timer status {status!r}")
        values = {"t": timer.tenant_id, "i": timer.id, "status": status, "at": at}
        self._run("mark_timer", values)
        timer.status = cast(TimerStatus, status)
        timer.fired_at = at

    def timers(self, tenant_id: str, ticket_id: str | None = None) -> list[TimerRow]:
        if ticket_id is None:
            rows = self._all("timers", {"t": tenant_id})
        else:
            rows = self._all("timers_of_ticket", {"t": tenant_id, "i": ticket_id})
        return [TimerRow(*row) for row in rows]

    # idempotency and sequences

    def claim_idempotency_key(self, tenant_id: str, key: str, ticket_id: str) -> str | None:
        """INSERT … ON CONFLICT DO NOTHING. On PostgreSQL, a concurrent uncommitted claim
        makes the INSERT wait; once that transaction commits nothing is inserted, and the
        SELECT after it (READ COMMITTED: a new snapshot) sees the winner's ticket id."""
        self._writing()
        values = {"t": tenant_id, "k": key, "i": ticket_id}
        if self._run("claim", values).rowcount == 1:
            return None
        existing = self._one("claimed", values)
        if existing is None:
            raise Conflict(f"idempotency key {key!r} is being claimed", key=key)
        return str(existing[0])

    def next_sequence(self, tenant_id: str, name: str) -> int:
        self._writing()
        row = self._one("next_seq", {"t": tenant_id, "n": name})
        assert row is not None
        return int(row[0])

    # the people directory

    def put_people(self, tenant_id: str, rows: Sequence[PersonRow]) -> None:
        """INSERT … ON CONFLICT (tenant_id, id) DO UPDATE, then the revision moves (its
        upsert locks the tenant's counter: directory writers of a tenant serialise)."""
        self._writing()
        for row in rows:
            if row.tenant_id != tenant_id:
                raise ValueError(f"person {row.id} is of tenant {row.tenant_id}, not {tenant_id}")
        if not rows:
            return
        upsert = self._st.put_people
        params = [upsert.params(row) for row in rows]
        if len(params) == 1:
            self._cur.execute(upsert.sql, params[0])
        else:
            self._cur.executemany(upsert.sql, params)
        self.next_sequence(tenant_id, DIRECTORY_SEQUENCE)

    def remove_people(self, tenant_id: str, ids: Sequence[str]) -> int:
        self._writing()
        removed = self._each("remove_person", [{"t": tenant_id, "i": i} for i in ids])
        if removed:
            self.next_sequence(tenant_id, DIRECTORY_SEQUENCE)
        return removed

    def people(self, tenant_id: str) -> list[PersonRow]:
        return [PersonRow(*row) for row in self._all("people", {"t": tenant_id})]

    def person(self, tenant_id: str, id: str) -> PersonRow | None:
        row = self._one("person", {"t": tenant_id, "i": id})
        return None if row is None else PersonRow(*row)

    def directory_rev(self, tenant_id: str) -> int:
        row = self._one("directory_rev", {"t": tenant_id})
        return 0 if row is None else int(row[0])

    # pack versions

    def add_pack_version(self, row: PackVersionRow) -> None:
        self._writing()
        values = dict(zip(_PACK_COLS, attrgetter(*_PACK_COLS)(row), strict=True))
        if self._run("add_pack", values).rowcount != 1:
            raise Conflict(f"version {row.version} of pack {row.pack} exists", pack=row.pack)

    def pack_version(self, tenant_id: str, pack: str, version: int) -> PackVersionRow | None:
        row = self._one("pack_version", {"t": tenant_id, "pack": pack, "version": version})
        return None if row is None else PackVersionRow(*row)

    def latest_pack_versions(self, tenant_id: str) -> list[PackVersionRow]:
        return [PackVersionRow(*row) for row in self._all("latest_packs", {"t": tenant_id})]

    def pack_heads(self, tenant_id: str) -> dict[str, int]:
        return {pack: version for pack, version in self._all("pack_heads", {"t": tenant_id})}

    def pack_versions(self, tenant_id: str, pack: str) -> list[PackVersionRow]:
        rows = self._all("pack_versions", {"t": tenant_id, "pack": pack})
        return [PackVersionRow(*row) for row in rows]

    def _add(self, name: str, row: Any) -> bool:
        """INSERT … ON CONFLICT DO NOTHING of a whole row (`_row_inserts`); False when
        its key was taken. On PostgreSQL a concurrent uncommitted insert of the key
        makes this wait for that transaction's end."""
        insert = self._st.row_inserts[name]
        self._cur.execute(insert.sql, insert.params(row))
        return bool(self._cur.rowcount == 1)

    # API tokens

    def add_token(self, row: TokenRow) -> None:
        self._writing()
        if not self._add("add_token", row):
            raise token_conflict(row.id)

    def token_by_hash(self, hash: str) -> TokenRow | None:
        row = self._one("token_by_hash", {"h": hash})
        return None if row is None else TokenRow(*row)

    def tokens(self, tenant_id: str) -> list[TokenRow]:
        return [TokenRow(*row) for row in self._all("tokens", {"t": tenant_id})]

    def revoke_token(self, tenant_id: str, id: str, at: datetime) -> bool:
        self._writing()
        return bool(self._run("revoke_token", {"t": tenant_id, "i": id, "at": at}).rowcount == 1)

    # builder drafts

    def draft(self, tenant_id: str, pack: str) -> DraftRow | None:
        row = self._one("draft", {"t": tenant_id, "pack": pack})
        return None if row is None else DraftRow(*row)

    def drafts(self, tenant_id: str) -> list[DraftRow]:
        return [DraftRow(*row) for row in self._all("drafts", {"t": tenant_id})]

    def put_draft(self, row: DraftRow, expected_revision: int | None) -> None:
        """INSERT … ON CONFLICT DO NOTHING of revision 1, or UPDATE … WHERE revision =
        expected (on PostgreSQL a concurrent save waits for ours, then finds the revision
        moved). Nothing written: the revision stored now goes into the Conflict."""
        self._writing()
        if expected_revision is None:
            revision = 1
            saved = self._add("add_draft", dataclasses.replace(row, revision=1))
        else:
            revision = expected_revision + 1
            values = {
                "t": row.tenant_id,
                "pack": row.pack,
                "expected": expected_revision,
                "revision": revision,
                "files": row.files,
                "at": row.updated_at,
                "by": row.updated_by,
            }
            saved = self._run("save_draft", values).rowcount == 1
        if not saved:
            stored = self._one("draft_revision", {"t": row.tenant_id, "pack": row.pack})
            now = None if stored is None else int(stored[0])
            raise draft_conflict(row.pack, expected_revision, now)
        row.revision = revision

    def delete_draft(self, tenant_id: str, pack: str) -> bool:
        self._writing()
        return bool(self._run("delete_draft", {"t": tenant_id, "pack": pack}).rowcount == 1)

    # intake

    def intake(self, tenant_id: str, key: str) -> IntakeRow | None:
        row = self._one("intake", {"t": tenant_id, "k": key})
        return None if row is None else IntakeRow(*row)

    def add_intake(self, row: IntakeRow) -> None:
        self._writing()
        if not self._add("add_intake", row):
            raise intake_conflict(row.key)

    def intake_of_ticket(
        self, tenant_id: str, ticket_id: str, after: str | None = None, limit: int = 100
    ) -> list[IntakeRow]:
        if limit <= 0:
            return []  # (PostgreSQL refuses a negative LIMIT, SQLite takes it as none)
        values: dict[str, Any] = {"t": tenant_id, "i": ticket_id, "limit": limit}
        if after is None:
            rows = self._all("intake_of_ticket", values)
        else:
            rows = self._all("intake_of_ticket_after", {**values, "after": after})
        return [IntakeRow(*row) for row in rows]

    def count_intake_of_ticket(self, tenant_id: str, ticket_id: str) -> int:
        row = self._one("count_intake", {"t": tenant_id, "i": ticket_id})
        assert row is not None
        return int(row[0])

    def claim_alarm(self, row: AlarmRow) -> AlarmRow | None:
        """INSERT … ON CONFLICT DO NOTHING, as `claim_idempotency_key`; when the key was
        taken, SELECT … FOR UPDATE: on PostgreSQL this waits for a transaction holding
        the alarm (its insert or its claim) to end, then reads the row it committed."""
        self._writing()
        if self._add("claim_alarm", row):
            return None
        stored = self._one("lock_alarm", {"t": row.tenant_id, "k": row.key})
        if stored is None:  # (alarms are never deleted: not expected)
            raise Conflict(f"alarm {row.key!r} is being claimed", key=row.key)
        return AlarmRow(*stored)

    def update_alarm(self, row: AlarmRow) -> None:
        self._writing()
        values = {
            "t": row.tenant_id,
            "k": row.key,
            "i": row.ticket_id,
            "last": row.last_at,
            "n": row.count,
            "resolved": row.resolved_at,
        }
        if self._run("update_alarm", values).rowcount != 1:
            raise alarm_missing(row.key)

    def alarm(self, tenant_id: str, key: str) -> AlarmRow | None:
        row = self._one("alarm", {"t": tenant_id, "k": key})
        return None if row is None else AlarmRow(*row)

    # assets

    def put_assets(self, tenant_id: str, rows: Sequence[AssetRow]) -> None:
        """INSERT … ON CONFLICT (tenant_id, code) DO UPDATE."""
        self._writing()
        check_assets(tenant_id, rows)
        if not rows:
            return
        upsert = self._st.row_inserts["put_assets"]
        params = [upsert.params(row) for row in rows]
        if len(params) == 1:
            self._cur.execute(upsert.sql, params[0])
        else:
            self._cur.executemany(upsert.sql, params)

    def asset(self, tenant_id: str, code: str) -> AssetRow | None:
        row = self._one("asset", {"t": tenant_id, "code": code})
        return None if row is None else AssetRow(*row)

    def assets(self, tenant_id: str) -> list[AssetRow]:
        return [AssetRow(*row) for row in self._all("assets", {"t": tenant_id})]


# -- engines and the store ------------------------------------------------------------------

# An execution option marking a read transaction on a Core connection of the engine (the
# store's own transactions begin in `_SqliteScope`).
_READ_ONLY = "ticketflow_read_only"
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Stop the driver from issuing its own (deferred) BEGIN; `_sqlite_begin` does it (on
    # the store's own connections, `_SqliteScope`).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A write takes the write lock now rather than upgrading a read lock later, which
    # SQLite refuses (SQLITE_BUSY, no waiting) when another writer got there first.
    read_only = conn.get_execution_options().get(_READ_ONLY, False)
    # Straight on the driver: going through `exec_driver_sql` costs more than SQLite's
    # BEGIN and COMMIT together.
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dbapi.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, set up as this module needs."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        # No json_serializer here: SQLAlchemy would hand psycopg a closure per connection,
        # which psycopg warns leaks; psycopg's own json.dumps stores the same JSONB values.
        return create_engine(parsed, isolation_level="READ COMMITTED")
    if backend != "sqlite":
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if parsed.database in (None, "", ":memory:"):
        # One shared connection, or each checkout would see its own empty database.
        options["poolclass"] = StaticPool
    engine = create_engine(parsed, json_serializer=_dumps, **options)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def migrate(engine: Engine) -> str:
    """Run the alembic migrations up to head on `engine`; returns the head revision."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two processes starting at once: the second waits, then finds nothing to do.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7126419)")
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        revision = MigrationContext.configure(conn).get_current_revision()
    if revision is None:
        raise RuntimeError("the migrations left no revision")
    return revision


def upgrade(url: str) -> str:
    """Bring the database at `url` to the newest schema (`ticketflow db upgrade`)."""
    engine = make_engine(url)
    try:
        return migrate(engine)
    finally:
        engine.dispose()


class _Conn:
    """A SQLite connection used straight on the driver, with its one cursor."""

    __slots__ = ("cur", "dbapi")

    def __init__(self, dbapi: Any) -> None:
        self.dbapi = dbapi
        self.cur = dbapi.cursor()


class _SqlitePool:
    """The SQLite connections of a store, outside SQLAlchemy's pool.

    A transaction here is `BEGIN IMMEDIATE` (a read: `BEGIN`) and `COMMIT` or `ROLLBACK`
    on a connection taken from a free list: SQLAlchemy's checkout, reset, transaction
    objects and events cost several times what SQLite spends on BEGIN and COMMIT.
    Connections come from the engine (`raw_connection`, so the connect listener has set
    the pragmas and switched off the driver's own BEGIN) and are detached from its pool.

    An in-memory database (`sqlite://`) lives in its one connection: every transaction
    uses that one, holding a lock for its duration.
    """

    def __init__(self, engine: Engine, shared: bool) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._free: list[_Conn] = []
        self._closed = False
        self._shared: _Conn | None = None
        self._shared_lock = threading.RLock()
        self._held: Any = None
        if shared:
            # StaticPool: the engine's one connection, the one the migrations ran on.
            self._held = engine.raw_connection()
            self._shared = _Conn(self._held.dbapi_connection)
        _POOLS.add(self)

    def forget(self) -> None:
        """In a child process after fork: SQLite connections must not cross a fork, so
        the parent's are dropped (not closed: that is the parent's business); the child
        opens its own."""
        self._lock = threading.Lock()
        self._shared_lock = threading.RLock()
        self._free = []

    def checkout(self) -> _Conn:
        if self._closed:
            raise RuntimeError("the store is closed")
        shared = self._shared
        if shared is not None:
            self._shared_lock.acquire()
            return shared
        with self._lock:
            if self._free:
                return self._free.pop()
        proxied = self._engine.raw_connection()
        proxied.detach()  # ours now: closing it closes the driver's connection
        return _Conn(proxied.dbapi_connection)

    def checkin(self, conn: _Conn, usable: bool) -> None:
        """Return a connection; one that may be mid-transaction (`usable` false) is
        closed instead."""
        if conn is self._shared:
            self._shared_lock.release()
            return
        with self._lock:
            if usable and not self._closed:
                self._free.append(conn)
                return
        conn.dbapi.close()

    def close(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
        for conn in free:
            conn.dbapi.close()
        if self._held is not None:
            self._held.close()  # back to the StaticPool, which the engine disposes of
            self._held = None


_POOLS: weakref.WeakSet[_SqlitePool] = weakref.WeakSet()


def _forget_pools() -> None:
    for pool in list(_POOLS):
        pool.forget()


os.register_at_fork(after_in_child=_forget_pools)


class _SqliteScope:
    """The `with` block of one SQLite transaction (see `_SqlitePool`)."""

    __slots__ = ("_conn", "_pool", "_statements", "_write")

    def __init__(self, pool: _SqlitePool, statements: _Statements, write: bool) -> None:
        self._pool = pool
        self._statements = statements
        self._write = write

    def __enter__(self) -> SqlTx:
        conn = self._pool.checkout()
        try:
            # A write takes the write lock now rather than upgrading a read lock later,
            # which SQLite refuses (SQLITE_BUSY, no waiting) when another writer got
            # there first; it waits up to busy_timeout for the lock.
            conn.cur.execute("BEGIN IMMEDIATE" if self._write else "BEGIN")
        except BaseException:
            self._pool.checkin(conn, not conn.dbapi.in_transaction)
            raise
        self._conn = conn
        return SqlTx(conn.cur, self._statements, self._write)

    def __exit__(self, kind: type[BaseException] | None, value: Any, traceback: Any) -> None:
        conn = self._conn
        usable = True
        try:
            if kind is None and self._write:
                conn.cur.execute("COMMIT")
        finally:
            # A read ends with ROLLBACK (it wrote nothing); so does a failed block, or a
            # failed COMMIT. A connection whose ROLLBACK fails is closed, not reused.
            if conn.dbapi.in_transaction:
                try:
                    conn.cur.execute("ROLLBACK")
                except Exception:
                    usable = False
            self._pool.checkin(conn, usable)


class SqlStore:
    """A `Store` on a SQLite or PostgreSQL database."""

    def __init__(self, url: str, create: bool = True) -> None:
        self.engine = make_engine(url)
        self._sqlite = self.engine.dialect.name == "sqlite"
        if create:
            migrate(self.engine)
        self._statements = _prepared_for(self.engine.dialect)
        self._pool: _SqlitePool | None = None
        if self._sqlite:
            shared = isinstance(self.engine.pool, StaticPool)
            self._pool = _SqlitePool(self.engine, shared)

    def transaction(self) -> AbstractContextManager[SqlTx]:
        if self._pool is not None:
            return _SqliteScope(self._pool, self._statements, True)
        return self._core(write=True)

    def read(self) -> AbstractContextManager[SqlTx]:
        if self._pool is not None:
            return _SqliteScope(self._pool, self._statements, False)
        return self._core(write=False)

    @contextmanager
    def _core(self, write: bool) -> Iterator[SqlTx]:
        """A PostgreSQL transaction: SQLAlchemy's connection pool and transaction
        handling, statements on the connection's DBAPI cursor."""
        with self.engine.connect() as conn, conn.begin():
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            cursor = dbapi.cursor()
            try:
                yield SqlTx(cursor, self._statements, write)
            finally:
                cursor.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self.engine.dispose()
