"""The store on SQLAlchemy Core: a SQLite file by default, PostgreSQL for many processes.

Core rather than the ORM because a command is a handful of small statements and their
per-call cost is the runtime's throughput. Statements are built once, here, so SQLAlchemy
compiles each once per engine and then only binds values.

SQLite: every connection runs in WAL mode with `synchronous=NORMAL`, and the driver's own
transaction handling is switched off so that a write transaction starts with
`BEGIN IMMEDIATE`: it takes the write lock up front, so two processes never both hold a read
lock and deadlock trying to upgrade it (they queue on `busy_timeout` instead).

PostgreSQL (`postgresql+psycopg://`): READ COMMITTED; optimistic ticket versions, a row lock
on the tenant's audit head, row-locked sequences, `FOR UPDATE SKIP LOCKED` for due timers.

The schema is created and upgraded by the alembic migrations in `runtime/migrations`; the
tables below must match them (a test compares them).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
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
    create_engine,
    event,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlalchemy.types import TypeEngine

from runtime.audit import GENESIS
from runtime.records import (
    AuditDraft,
    AuditRow,
    Conflict,
    EventRow,
    OutboxRow,
    PackVersionRow,
    SeeClause,
    TicketQuery,
    TicketRow,
    TimerRow,
    TimerStatus,
)
from runtime.store.memory import chain_drafts

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


def json_type() -> TypeEngine[Any]:
    """JSON text on SQLite, JSONB on PostgreSQL; Python None is SQL NULL."""
    return JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


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
    Index("ix_tickets_created", "tenant_id", "created_at", "id"),
    Index("ix_tickets_state", "tenant_id", "state"),
    Index("ix_tickets_assignee", "tenant_id", "assignee"),
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
    Index("ix_outbox_status", "status", "created_at"),
    Index("ix_outbox_tenant", "tenant_id", "created_at"),
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
    Index("ix_timers_due", "status", "due_at"),
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

# -- statements -----------------------------------------------------------------------------

_T: BindParameter[str] = bindparam("t")  # the tenant id in every statement below

_TICKET_COLS = tuple(c.name for c in tickets.c)
# What an update may change: not the key, not the creation time.
_TICKET_SET = tuple(c for c in _TICKET_COLS if c not in {"tenant_id", "id", "created_at"})
_ticket_values = attrgetter(*_TICKET_COLS)
_TICKET_INDEX = {name: index for index, name in enumerate(_TICKET_COLS)}
_VERSION_AT = _TICKET_INDEX["version"]


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
_EVENT_COLS = tuple(c.name for c in events.c)
_AUDIT_COLS = tuple(c.name for c in audit.c)
_OUTBOX_COLS = tuple(c.name for c in outbox.c)
_TIMER_COLS = tuple(c.name for c in timers.c)
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
_PACK_VERSIONS = (
    select(pack_versions)
    .where(pack_versions.c.tenant_id == _T, pack_versions.c.pack == bindparam("pack"))
    .order_by(pack_versions.c.version)
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


def _statements(insert_: Callable[[Table], Any]) -> dict[str, ClauseElement]:
    """Every fixed statement of the store; `insert_` is the dialect's INSERT (for ON
    CONFLICT, which SQLite and PostgreSQL spell alike)."""
    t = tickets.c
    return {
        "get_ticket": select(tickets).where(t.tenant_id == _T, t.id == bindparam("i")),
        "insert_ticket": insert(tickets),
        "update_ticket": _update_ticket(_TICKET_SET),
        "open_tickets": select(tickets).where(_OPEN_OF_PACK).order_by(t.created_at, t.id),
        "count_open": select(t.pack_version, t.template, t.state, func.count())
        .where(_OPEN_OF_PACK)
        .group_by(t.pack_version, t.template, t.state),
        "insert_events": insert(events),
        "events": select(events)
        .where(events.c.tenant_id == _T, events.c.ticket_id == bindparam("i"))
        .order_by(events.c.seq),
        "insert_audit": insert(audit),
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
        "insert_outbox": insert(outbox),
        "outbox": _OUTBOX,
        "outbox_by_status": _OUTBOX.where(outbox.c.status == bindparam("status")),
        "insert_timers": insert(timers),
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
        "add_pack": insert_(pack_versions).on_conflict_do_nothing(),
        "pack_versions": _PACK_VERSIONS,
        "pack_version": _PACK_VERSIONS.where(pack_versions.c.version == bindparam("version")),
        "latest_packs": _latest_packs(),
        "pack_heads": _pack_heads(),
    }


# Built here, once; compiled once per dialect by `_Statements`.
_FIXED = {"sqlite": _statements(sqlite.insert), "postgresql": _statements(postgresql.insert)}

_Processor = Callable[[Any], Any]


class _Prepared:
    """A statement compiled once for a dialect, run straight on the DBAPI cursor.

    For these small statements SQLAlchemy's per-execution work (cache key, parameter and
    result set-up, events) costs several times what SQLite spends on them. Values still
    pass through the processors SQLAlchemy itself applies (`UTCDateTime`, JSON, booleans),
    so what is written here reads back through Core and the other way round.
    """

    __slots__ = ("_names", "_results", "_slots", "named", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if "POSTCOMPILE" in compiled.string:
            raise ValueError(f"expanding parameters cannot be prepared: {compiled.string}")
        self.sql = compiled.string
        self.named = not compiled.positional
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        self._names = tuple(sorted(binds) if self.named else compiled.positiontup or ())
        # (name, processor, is a parameter, constant) for each placeholder in order.
        slots: list[tuple[str, _Processor | None, bool, Any]] = []
        for name in self._names:
            bind = binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                slots.append((name, process, True, None))
            else:  # a literal in the statement, e.g. status = 'waiting'
                value = bind.effective_value
                slots.append((name, None, False, value if process is None else process(value)))
        self._slots = tuple(slots)
        results: list[tuple[int, _Processor]] = []
        if isinstance(statement, Select):
            for index, column in enumerate(statement.selected_columns):
                process = column.type.dialect_impl(dialect).result_processor(dialect, None)
                if process is not None:
                    results.append((index, process))
        self._results = tuple(results)

    def params(self, values: Mapping[str, Any], processed: bool = False) -> Any:
        """DBAPI parameters from `values` (already through the bind processors when
        `processed`): a list, or a dict for a named paramstyle."""
        out: list[Any] = []
        for name, process, is_param, const in self._slots:
            if not is_param:
                out.append(const)
            elif process is None or processed:
                out.append(values[name])
            else:
                out.append(process(values[name]))
        return dict(zip(self._names, out, strict=True)) if self.named else out

    def row(self, raw: Sequence[Any]) -> Sequence[Any]:
        """A fetched row with the result processors applied."""
        if not self._results:
            return raw
        row = list(raw)
        for index, process in self._results:
            row[index] = process(row[index])
        return row


class _Statements:
    """The store's statements prepared for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.by_name = {k: _Prepared(s, dialect) for k, s in _FIXED[dialect.name].items()}
        self._updates: dict[tuple[str, ...], _Prepared] = {}
        processors = (c.type.dialect_impl(dialect).bind_processor(dialect) for c in tickets.c)
        # For comparing a ticket's new values with the stored ones (see SqlTx.update_ticket).
        self.ticket_bind = dict(zip(_TICKET_COLS, processors, strict=True))

    def __getitem__(self, name: str) -> _Prepared:
        return self.by_name[name]

    def update_of(self, columns: tuple[str, ...]) -> _Prepared:
        """The UPDATE of just these ticket columns (prepared on first use)."""
        prepared = self._updates.get(columns)
        if prepared is None:
            prepared = self._updates[columns] = _Prepared(_update_ticket(columns), self.dialect)
        return prepared


_PREPARED: dict[tuple[str, str], _Statements] = {}
_PREPARED_LOCK = threading.Lock()


def _prepared_for(dialect: Dialect) -> _Statements:
    key = (dialect.name, dialect.driver)
    with _PREPARED_LOCK:
        if key not in _PREPARED:
            _PREPARED[key] = _Statements(dialect)
        return _PREPARED[key]


def _see_filter(clauses: Sequence[SeeClause]) -> ColumnElement[bool] | None:
    """The OR of the see clauses, or None when one of them sees every ticket."""
    columns = {"requester": tickets.c.requester, "assignee": tickets.c.assignee}
    columns["team"] = tickets.c.team
    parts: list[ColumnElement[bool]] = []
    for clause in clauses:
        conditions: list[ColumnElement[bool]] = []
        if clause.kind != "all":
            conditions.append(columns[clause.kind].in_(clause.values))
        if clause.templates is not None:
            conditions.append(tickets.c.template.in_(clause.templates))
        if not conditions:
            return None
        parts.append(and_(*conditions))
    return or_(*parts)


def _ticket_select(tenant_id: str, query: TicketQuery) -> Select[Any]:
    """The SELECT of a ticket listing. Run through Core: its shape varies, and value
    lists bind as expanding parameters so listings of one shape share a compilation."""
    c = tickets.c
    where: list[ColumnElement[bool]] = [c.tenant_id == tenant_id]
    for wanted, column in (
        (query.states, c.state),
        (query.templates, c.template),
        (query.assignees, c.assignee),
        (query.teams, c.team),
        (query.requesters, c.requester),
    ):
        if wanted:
            where.append(column.in_(wanted))
    if query.closed is not None:
        where.append(c.closed == query.closed)
    if query.text is not None:
        # search_text is stored lower-cased, so lowering the needle is enough.
        where.append(c.search_text.contains(query.text.lower(), autoescape=True))
    if query.after is not None:
        at, last_id = query.after
        where.append(or_(c.created_at > at, and_(c.created_at == at, c.id > last_id)))
    see = _see_filter(query.see)
    if see is not None:
        where.append(see)
    return select(tickets).where(*where).order_by(c.created_at, c.id).limit(query.limit)


# -- transactions ---------------------------------------------------------------------------


def _changed(row: TicketRow) -> Conflict:
    return Conflict(f"ticket {row.id} changed since it was read", ticket_id=row.id)


class SqlTx:
    """One transaction: prepared statements on the DBAPI cursor, Core for listings."""

    __slots__ = ("_c", "_cur", "_integrity", "_pg", "_seen", "_st", "_write")

    def __init__(self, conn: Connection, statements: _Statements, write: bool) -> None:
        self._c = conn
        self._st = statements
        self._write = write
        self._pg = statements.dialect.name == "postgresql"
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        self._cur: Any = dbapi.cursor()
        self._integrity: type[Exception] = statements.dialect.loaded_dbapi.IntegrityError
        # SQLite: tickets as stored (raw values) when read in this transaction, by
        # (tenant, id), for `_sqlite_update`.
        self._seen: dict[tuple[str, str], list[Any]] = {}

    def close(self) -> None:
        self._cur.close()

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

    def _insert(self, name: str, columns: tuple[str, ...], rows: Sequence[Any], what: str) -> None:
        """INSERT dataclass rows with one executemany; a duplicate key is a conflict."""
        prepared = self._st[name]
        getter = attrgetter(*columns)
        params = [prepared.params(dict(zip(columns, getter(r), strict=True))) for r in rows]
        try:
            self._cur.executemany(prepared.sql, params)
        except self._integrity as error:
            raise Conflict(f"{what} exists") from error

    def _writing(self) -> None:
        if not self._write:
            raise RuntimeError("write inside a read transaction")

    # tickets

    def get_ticket(self, tenant_id: str, ticket_id: str) -> TicketRow | None:
        prepared = self._st["get_ticket"]
        self._cur.execute(prepared.sql, prepared.params({"t": tenant_id, "i": ticket_id}))
        raw = self._cur.fetchone()
        if raw is None:
            return None
        if self._write and not self._pg:
            self._seen[(tenant_id, ticket_id)] = list(raw)
        return TicketRow(*prepared.row(raw))

    def insert_ticket(self, row: TicketRow) -> None:
        self._writing()
        self._insert("insert_ticket", _TICKET_COLS, [row], f"ticket {row.id}")

    def update_ticket(self, row: TicketRow, expected_version: int) -> None:
        self._writing()
        values = dict(zip(_TICKET_COLS, _ticket_values(row), strict=True))
        values["version"] = expected_version + 1
        if self._pg:
            # Every column: PostgreSQL compares old and new index keys itself (HOT).
            values.update(t=row.tenant_id, i=row.id, expected=expected_version)
            prepared = self._st["update_ticket"]
            params = prepared.params(values)
        else:
            prepared, params = self._sqlite_update(row, values, expected_version)
        self._cur.execute(prepared.sql, params)
        if self._cur.rowcount != 1:
            self._seen.pop((row.tenant_id, row.id), None)
            raise _changed(row)
        row.version = expected_version + 1

    def _sqlite_update(
        self, row: TicketRow, values: dict[str, Any], expected_version: int
    ) -> tuple[_Prepared, Any]:
        """SQLite rewrites the index entries of every column named in SET, changed or not
        (measured: 58 µs against 16 µs with the six ticket indexes), so set only the
        columns that differ from the stored row. That row is current: it was read in this
        transaction, which holds the write lock (BEGIN IMMEDIATE)."""
        key = (row.tenant_id, row.id)
        seen = self._seen.get(key)
        if seen is None:
            prepared = self._st["get_ticket"]
            self._cur.execute(prepared.sql, prepared.params({"t": key[0], "i": key[1]}))
            raw = self._cur.fetchone()
            seen = None if raw is None else list(raw)
        if seen is None or seen[_VERSION_AT] != expected_version:
            raise _changed(row)
        self._seen[key] = seen
        bind = self._st.ticket_bind
        changed: dict[str, Any] = {}
        for column in _TICKET_SET:
            process = bind[column]
            value = values[column] if process is None else process(values[column])
            index = _TICKET_INDEX[column]
            if value != seen[index]:
                changed[column] = seen[index] = value  # `seen` becomes the row as stored
        prepared = self._st.update_of(tuple(changed))
        changed.update(t=key[0], i=key[1], expected=expected_version)
        return prepared, prepared.params(changed, processed=True)

    def query_tickets(self, tenant_id: str, query: TicketQuery) -> list[TicketRow]:
        if not query.see:
            return []  # no clause, nothing visible
        result = self._c.execute(_ticket_select(tenant_id, query))
        return [TicketRow(*row) for row in result]

    def count_open_by_state(self, tenant_id: str, pack: str) -> dict[tuple[int, str, str], int]:
        rows = self._all("count_open", {"t": tenant_id, "pack": pack})
        return {(v, template, state): n for v, template, state, n in rows}

    def open_tickets_of_pack(self, tenant_id: str, pack: str) -> list[TicketRow]:
        rows = self._all("open_tickets", {"t": tenant_id, "pack": pack})
        return [TicketRow(*row) for row in rows]

    # timeline

    def add_events(self, rows: Sequence[EventRow]) -> None:
        self._writing()
        if rows:
            self._insert("insert_events", _EVENT_COLS, rows, "event")

    def events(self, tenant_id: str, ticket_id: str) -> list[EventRow]:
        return [EventRow(*r) for r in self._all("events", {"t": tenant_id, "i": ticket_id})]

    # audit

    def add_audit(self, tenant_id: str, drafts: Sequence[AuditDraft]) -> list[AuditRow]:
        self._writing()
        if not drafts:
            return []
        seq, prev = self._lock_head(tenant_id)
        rows = chain_drafts(tenant_id, seq, prev, drafts)
        self._insert("insert_audit", _AUDIT_COLS, rows, "audit row")
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

    # outbox and timers

    def add_outbox(self, rows: Sequence[OutboxRow]) -> None:
        self._writing()
        if rows:
            self._insert("insert_outbox", _OUTBOX_COLS, rows, "outbox message")

    def outbox(self, tenant_id: str, status: str | None = None) -> list[OutboxRow]:
        if status is None:
            rows = self._all("outbox", {"t": tenant_id})
        else:
            rows = self._all("outbox_by_status", {"t": tenant_id, "status": status})
        return [OutboxRow(*row) for row in rows]

    def add_timers(self, rows: Sequence[TimerRow]) -> None:
        self._writing()
        if rows:
            self._insert("insert_timers", _TIMER_COLS, rows, "timer")

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


# -- engines and the store ------------------------------------------------------------------

_READ_ONLY = "ticketflow_read_only"  # execution option marking a read transaction
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)
# One encoder for every call: json.dumps with options builds a new encoder each time.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Stop the driver from issuing its own (deferred) BEGIN; `_sqlite_begin` does it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A write takes the write lock now rather than upgrading a read lock later, which
    # SQLite refuses (SQLITE_BUSY, no waiting) when another writer got there first.
    read_only = conn.get_execution_options().get(_READ_ONLY, False)
    # Straight on the driver: this runs once per transaction, and going through
    # `exec_driver_sql` costs more than SQLite's BEGIN and COMMIT together.
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dbapi.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, set up as this module needs."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return create_engine(parsed, isolation_level="READ COMMITTED", json_serializer=_dumps)
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


class SqlStore:
    """A `Store` on a SQLite or PostgreSQL database."""

    def __init__(self, url: str, create: bool = True) -> None:
        self.engine = make_engine(url)
        self._sqlite = self.engine.dialect.name == "sqlite"
        if create:
            migrate(self.engine)
        self._statements = _prepared_for(self.engine.dialect)

    @contextmanager
    def transaction(self) -> Iterator[SqlTx]:
        with self.engine.connect() as conn, conn.begin():
            tx = SqlTx(conn, self._statements, write=True)
            try:
                yield tx
            finally:
                tx.close()

    @contextmanager
    def read(self) -> Iterator[SqlTx]:
        with self.engine.connect() as conn:
            if self._sqlite:
                conn.execution_options(**{_READ_ONLY: True})
            with conn.begin():
                tx = SqlTx(conn, self._statements, write=False)
                try:
                    yield tx
                finally:
                    tx.close()

    def close(self) -> None:
        self.engine.dispose()
