"""Helpers for the store contract tests: row builders, store set-up per backend, and the
worker the two-process test spawns (it must live in an importable module)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from runtime.records import (
    AlarmRow,
    AssetRow,
    AuditDraft,
    Conflict,
    DraftRow,
    EventRow,
    IntakeRow,
    OutboxRow,
    PackVersionRow,
    PersonRow,
    TicketRow,
    TimerRow,
    TokenRow,
)
from runtime.store.base import Store
from runtime.store.memory import MemoryStore
from runtime.store.sql import SqlStore

PG_URL_VAR = "TICKETFLOW_TEST_DATABASE_URL"
T0 = datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """T0 plus some minutes."""
    return T0 + timedelta(minutes=minutes)


def ticket(tenant: str = "acme", id: str = "t1", **changes: Any) -> TicketRow:
    """A ticket with every field set to something non-default."""
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "id": id,
        "ref": f"R-{id}",
        "pack": "retail",
        "pack_version": 1,
        "template": "repair",
        "state": "new",
        "fields": {"priority": "P1", "note": "冷柜不制冷 ✓", "parts": [{"no": "A-1", "qty": 2}]},
        "version": 1,
        "created_at": T0,
        "updated_at": T0,
        "state_entered_at": T0,
        "title": "Fridge broken",
        "requester": "cust1",
        "assignee": None,
        "team": "facilities",
        "channel": "web",
        "watchers": ["w1"],
        "tags": ["cold"],
        "parent_id": None,
        "link": None,
        "closed": False,
        "event_seq": 0,
        "search_text": f"r-{id} fridge broken",
    }
    values.update(changes)
    return TicketRow(**values)


def event(tenant: str, ticket_id: str, seq: int, **changes: Any) -> EventRow:
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "ticket_id": ticket_id,
        "seq": seq,
        "at": at(seq),
        "kind": "commented",
        "actor": "u1",
        "data": {"text": f"评论 {seq}"},
        "visibility": "public",
    }
    values.update(changes)
    return EventRow(**values)


def draft(n: int, **changes: Any) -> AuditDraft:
    values: dict[str, Any] = {
        "at": at(n),
        "actor": "u1",
        "action": "update",
        "subject": "t1",
        "before": {"state": "new", "n": n},
        "after": {"state": "assigned", "n": n, "note": "已派单"},
    }
    values.update(changes)
    return AuditDraft(**values)


def outbox_row(tenant: str, id: str, minutes: float, **changes: Any) -> OutboxRow:
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "id": id,
        "created_at": at(minutes),
        "kind": "notify",
        "ticket_id": "t1",
        "payload": {"to": "role:manager", "message": "P1 ✓"},
    }
    values.update(changes)
    return OutboxRow(**values)


def message(tenant: str, id: str, minutes: float, **changes: Any) -> OutboxRow:
    """An in-app notification for user u1, created `minutes` after T0 and delivered then."""
    values: dict[str, Any] = {
        "channel": "in_app",
        "recipient": "u1",
        "status": "sent",
        "attempts": 0,
        "delivered_at": at(minutes),
        "payload": {"subject": f"[R-t1] 消息 {id}", "body": "✓"},
    }
    values.update(changes)
    return outbox_row(tenant, id, minutes, **values)


def person(tenant: str, id: str, **data: Any) -> PersonRow:
    """A directory entry; `data` is the person's document (defaults: a name and roles)."""
    document: dict[str, Any] = {"id": id, "name": f"张 {id}", "roles": ["engineer"]}
    document.update(data)
    return PersonRow(tenant_id=tenant, id=id, data=document, updated_at=T0)


def timer(tenant: str, id: str, minutes: float, **changes: Any) -> TimerRow:
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "id": id,
        "due_at": at(minutes),
        "kind": "rule",
        "ticket_id": "t1",
        "payload": {"rule": "auto_close"},
        "key": "k",
    }
    values.update(changes)
    return TimerRow(**values)


def pack_row(tenant: str, pack: str, version: int) -> PackVersionRow:
    return PackVersionRow(
        tenant_id=tenant,
        pack=pack,
        version=version,
        published_at=at(version),
        published_by="admin",
        document={"pack": pack, "title": {"zh": "门店报修"}, "version": version},
        digest=f"{pack}-{version}",
    )


def token_row(tenant: str, id: str, minutes: float = 0, **changes: Any) -> TokenRow:
    """An API token created `minutes` after T0, its hash derived from tenant and id."""
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "id": id,
        "hash": f"sha256:{tenant}:{id}",
        "user_id": "u1",
        "roles": ["agent", "dispatcher"],
        "name": f"集成 {id}",
        "created_at": at(minutes),
        "expires_at": at(minutes + 60 * 24),
    }
    values.update(changes)
    return TokenRow(**values)


def draft_row(tenant: str, pack: str, **changes: Any) -> DraftRow:
    """A builder draft whose file keeps a comment and non-ASCII text."""
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "pack": pack,
        "files": {"pack.yaml": f"# 门店报修\npack: {pack}  # keep me\n"},
        "revision": 0,  # set by put_draft
        "updated_at": T0,
        "updated_by": "admin",
    }
    values.update(changes)
    return DraftRow(**values)


def intake_row(tenant: str, key: str, minutes: float, **changes: Any) -> IntakeRow:
    """An item received by email `minutes` after T0, attached to ticket t1."""
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "key": key,
        "channel": "email",
        "received_at": at(minutes),
        "outcome": "attached",
        "ticket_id": "t1",
        "data": {"subject": f"Re: [R-t1] 冷柜 {key}", "from": "store@example.com"},
    }
    values.update(changes)
    return IntakeRow(**values)


def alarm_row(tenant: str, key: str, **changes: Any) -> AlarmRow:
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "key": key,
        "ticket_id": "t1",
        "first_at": T0,
        "last_at": T0,
    }
    values.update(changes)
    return AlarmRow(**values)


def asset_row(tenant: str, code: str, **data: Any) -> AssetRow:
    """An asset; `data` is its document (defaults: a type, a name and a template)."""
    document: dict[str, Any] = {"type": "fridge", "name": f"冷柜 {code}", "template": "repair"}
    document.update(data)
    return AssetRow(tenant_id=tenant, code=code, data=document, updated_at=T0)


# -- stores ---------------------------------------------------------------------------------


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A URL whose connections live in a fresh schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


@contextmanager
def store_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of `kind` (sqlite or postgresql)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = os.environ.get(PG_URL_VAR)
    if not base:
        raise RuntimeError(f"{PG_URL_VAR} is not set")
    with postgres_schema(base) as url:
        yield url


@contextmanager
def open_test_store(kind: str, tmp_path: Path) -> Iterator[Store]:
    if kind == "memory":
        yield MemoryStore()
        return
    with store_url(kind, tmp_path) as url:
        store = SqlStore(url)
        try:
            yield store
        finally:
            store.close()


# -- the two-process worker -----------------------------------------------------------------


def hammer(url: str, ticket_id: str, rounds: int, start: Any, results: Any) -> None:
    """Increment a counter field `rounds` times, half the time reading in a separate
    transaction (so another process may slip in and cause a conflict), half inside the
    writing one; report (successes, conflicts, other errors)."""
    store = SqlStore(url, create=False)
    ok = conflicts = 0
    others: list[str] = []
    start.wait()
    for i in range(rounds):
        try:
            if i % 2:
                with store.read() as tx:
                    row = tx.get_ticket("acme", ticket_id)
                assert row is not None
                row.fields["count"] += 1
                with store.transaction() as tx:
                    tx.update_ticket(row, row.version)
            else:
                with store.transaction() as tx:
                    row = tx.get_ticket("acme", ticket_id)
                    assert row is not None
                    row.fields["count"] += 1
                    tx.update_ticket(row, row.version)
            ok += 1
        except Conflict:
            conflicts += 1
        except Exception as error:
            others.append(repr(error))
    store.close()
    results.put((ok, conflicts, others))
