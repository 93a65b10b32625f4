"""The store contract for what the HTTP API keeps: API tokens, builder drafts, intake items,
monitoring alarms and assets. Memory, SQLite, and PostgreSQL when
TICKETFLOW_TEST_DATABASE_URL names one (each test then gets a schema of its own)."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from store_fixtures import (
    PG_URL_VAR,
    T0,
    alarm_row,
    asset_row,
    at,
    draft_row,
    intake_row,
    open_test_store,
    store_url,
    ticket,
    token_row,
)

from runtime.records import AlarmRow, Conflict, IntakeRow
from runtime.store.base import Store, Tx
from runtime.store.sql import MIGRATIONS, SqlStore, make_engine, metadata, upgrade

NO_PG = f"{PG_URL_VAR} is not set: PostgreSQL contract tests skipped"
PG = pytest.param(
    "postgresql", marks=pytest.mark.skipif(not os.environ.get(PG_URL_VAR), reason=NO_PG)
)


@pytest.fixture(params=["memory", "sqlite", PG])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with open_test_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture(params=["sqlite", PG])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as url:
        yield url


class Boom(Exception):
    pass


# -- API tokens -----------------------------------------------------------------------------


def test_tokens_round_trip_and_are_found_by_hash_across_tenants(store: Store) -> None:
    shanghai = timezone(timedelta(hours=8))
    first = token_row("acme", "tk1", 5, expires_at=None)
    second = token_row("acme", "tk0", 5, created_at=at(5).astimezone(shanghai))  # same instant
    third = token_row("acme", "tk2", 1)
    theirs = token_row("other", "tk1", 0)
    with store.transaction() as tx:
        for row in (first, second, third, theirs):
            tx.add_token(row)
    with store.read() as tx:
        assert tx.token_by_hash(first.hash) == first
        assert tx.token_by_hash(theirs.hash) == theirs
        assert tx.token_by_hash("sha256:nobody") is None
        found = tx.token_by_hash(second.hash)
        # Oldest first; equal creation times by id.
        assert [t.id for t in tx.tokens("acme")] == ["tk2", "tk0", "tk1"]
        assert [t.id for t in tx.tokens("other")] == ["tk1"]
    assert found is not None and found.created_at.tzinfo == UTC
    assert found == dataclasses.replace(second, created_at=at(5))


def test_duplicate_token_id_or_hash_conflicts_and_rolls_back(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_token(token_row("acme", "tk1"))
    duplicates = [
        token_row("acme", "tk1", hash="sha256:fresh"),  # the id, in its tenant
        token_row("acme", "tk9", hash="sha256:acme:tk1"),  # the hash, in its tenant
    ]
    # Across tenants a hash is not checked: unique indexes lead with tenant_id (DESIGN.md),
    # and 256-bit random secrets never share a hash.
    for duplicate in duplicates:
        with pytest.raises(Conflict, match="token"), store.transaction() as tx:
            tx.add_token(token_row("acme", "tk2"))
            tx.add_token(duplicate)
    with store.read() as tx:
        assert tx.tokens("acme") == [token_row("acme", "tk1")]
        assert tx.tokens("other") == []
        assert tx.token_by_hash("sha256:fresh") is None


def test_revoke_token_only_of_own_tenant_and_only_once(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_token(token_row("acme", "tk1"))
        tx.add_token(token_row("other", "tk1"))
    with pytest.raises(Boom), store.transaction() as tx:
        assert tx.revoke_token("acme", "tk1", at(1)) is True
        raise Boom
    with store.transaction() as tx:
        assert tx.revoke_token("acme", "nope", at(2)) is False
        assert tx.revoke_token("acme", "tk1", at(2)) is True
        assert tx.revoke_token("acme", "tk1", at(3)) is False  # already revoked
    with store.read() as tx:
        ours = tx.token_by_hash("sha256:acme:tk1")
        theirs = tx.token_by_hash("sha256:other:tk1")
    assert ours is not None and ours.revoked_at == at(2)
    assert theirs is not None and theirs.revoked_at is None


def test_tokens_are_copies(store: Store) -> None:
    row = token_row("acme", "tk1")
    with store.transaction() as tx:
        tx.add_token(row)
    row.roles.append("admin")
    with store.read() as tx:
        got = tx.token_by_hash(row.hash)
        assert got is not None and got.roles == ["agent", "dispatcher"]
        got.roles.append("admin")
        assert tx.tokens("acme")[0].roles == ["agent", "dispatcher"]


# -- builder drafts -------------------------------------------------------------------------


def test_draft_saves_count_revisions(store: Store) -> None:
    created = draft_row("acme", "retail", revision=7)  # the given revision is ignored
    with store.transaction() as tx:
        tx.put_draft(created, None)
        tx.put_draft(draft_row("acme", "hotel"), None)
    assert created.revision == 1
    edited = draft_row(
        "acme",
        "retail",
        files={"pack.yaml": "pack: retail\n", "rules.yaml": "# 空\n"},
        updated_at=at(3),
        updated_by="lee",
    )
    with store.transaction() as tx:
        tx.put_draft(edited, 1)
    assert edited.revision == 2
    with store.read() as tx:
        assert tx.draft("acme", "retail") == edited
        assert tx.draft("acme", "nope") is None
        assert [(d.pack, d.revision) for d in tx.drafts("acme")] == [("hotel", 1), ("retail", 2)]
        assert tx.drafts("acme")[1].files["rules.yaml"] == "# 空\n"


def test_stale_draft_save_conflicts_and_changes_nothing(store: Store) -> None:
    with store.transaction() as tx:
        tx.put_draft(draft_row("acme", "retail"), None)
    mine = draft_row("acme", "retail", files={"pack.yaml": "mine"}, updated_by="lee")
    theirs = draft_row("acme", "retail", files={"pack.yaml": "theirs"}, updated_by="kim")
    with store.transaction() as tx:
        tx.put_draft(theirs, 1)
    with pytest.raises(Conflict, match="at revision 2, not 1") as raised, store.transaction() as tx:
        tx.put_draft(mine, 1)
    assert raised.value.details == {"pack": "retail", "expected_revision": 1, "revision": 2}
    assert mine.revision == 0  # untouched
    with pytest.raises(Conflict, match="exists"), store.transaction() as tx:
        tx.put_draft(mine, None)
    with pytest.raises(Conflict, match="does not exist"), store.transaction() as tx:
        tx.put_draft(draft_row("acme", "hotel"), 1)
    with store.read() as tx:
        assert tx.draft("acme", "retail") == theirs
        assert tx.draft("acme", "hotel") is None


def test_delete_draft(store: Store) -> None:
    with store.transaction() as tx:
        tx.put_draft(draft_row("acme", "retail"), None)
    with pytest.raises(Boom), store.transaction() as tx:
        assert tx.delete_draft("acme", "retail") is True
        raise Boom
    with store.transaction() as tx:
        assert tx.draft("acme", "retail") is not None
        assert tx.delete_draft("acme", "retail") is True
        assert tx.delete_draft("acme", "retail") is False
    with store.transaction() as tx:
        assert tx.draft("acme", "retail") is None
        tx.put_draft(draft_row("acme", "retail"), None)  # starts again at revision 1
        assert tx.drafts("acme")[0].revision == 1


# -- intake ---------------------------------------------------------------------------------


def test_intake_round_trip(store: Store) -> None:
    row = intake_row("acme", "msg-1@example.com", 0, data={"body": "冷柜 ✓", "n": [1, 2.5]})
    bare = IntakeRow("acme", "qr-7", "qr", at(1), "created")
    with store.transaction() as tx:
        tx.add_intake(row)
        tx.add_intake(bare)
    with store.read() as tx:
        assert tx.intake("acme", "msg-1@example.com") == row
        assert tx.intake("acme", "qr-7") == bare
        assert tx.intake("acme", "nope") is None


def test_duplicate_intake_key_conflicts_and_keeps_the_first(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_intake(intake_row("acme", "k1", 0))
    with pytest.raises(Conflict, match="'k1' was already received"), store.transaction() as tx:
        tx.add_intake(intake_row("acme", "k2", 1))
        tx.add_intake(intake_row("acme", "k1", 2, outcome="created", ticket_id="t2"))
    with store.read() as tx:
        assert tx.intake("acme", "k1") == intake_row("acme", "k1", 0)
        assert tx.intake("acme", "k2") is None  # gone with its transaction


def test_duplicate_intake_leaves_the_transaction_usable(store: Store) -> None:
    """The caller may answer a redelivery with the first item's outcome, in the same
    transaction (on PostgreSQL the duplicate does not abort it)."""
    with store.transaction() as tx:
        tx.add_intake(intake_row("acme", "k1", 0))
    with store.transaction() as tx:
        with pytest.raises(Conflict):
            tx.add_intake(intake_row("acme", "k1", 5))
        first = tx.intake("acme", "k1")
        tx.add_intake(intake_row("acme", "k2", 6))
    assert first is not None and first.received_at == at(0)
    with store.read() as tx:
        assert tx.intake("acme", "k2") is not None


def test_intake_rolls_back_with_the_transaction(store: Store) -> None:
    with pytest.raises(Boom), store.transaction() as tx:
        tx.add_intake(intake_row("acme", "k1", 0))
        raise Boom
    with store.transaction() as tx:
        assert tx.intake("acme", "k1") is None
        assert tx.count_intake_of_ticket("acme", "t1") == 0
        tx.add_intake(intake_row("acme", "k1", 0))  # the key is free


def test_intake_of_ticket_pages_in_received_order(store: Store) -> None:
    # Received out of key order, two pairs at equal times (then ordered by key); other
    # tickets' and another tenant's items in between.
    ours = [("k5", 0), ("k3", 1), ("k4", 1), ("k1", 2), ("k9", 3), ("k2", 3), ("k0", 4)]
    with store.transaction() as tx:
        for key, minutes in ours:
            tx.add_intake(intake_row("acme", key, minutes))
        tx.add_intake(intake_row("acme", "x1", 1, ticket_id="t2"))
        tx.add_intake(intake_row("acme", "x2", 2, ticket_id=None, outcome="created"))
        tx.add_intake(intake_row("other", "k6", 2))
    expected = ["k5", "k3", "k4", "k1", "k2", "k9", "k0"]
    with store.read() as tx:
        assert [r.key for r in tx.intake_of_ticket("acme", "t1")] == expected
        pages: list[list[str]] = []
        after: str | None = None
        while True:
            page = [r.key for r in tx.intake_of_ticket("acme", "t1", after, 3)]
            if not page:
                break
            pages.append(page)
            after = page[-1]
        assert pages == [expected[:3], expected[3:6], expected[6:]]
        assert tx.count_intake_of_ticket("acme", "t1") == 7
        assert tx.count_intake_of_ticket("acme", "t2") == 1
        assert tx.intake_of_ticket("acme", "t1", "no-such-key") == []
        assert tx.intake_of_ticket("acme", "t1", None, 0) == []
        assert tx.intake_of_ticket("acme", "t1")[0] == intake_row("acme", "k5", 0)


# -- alarms ---------------------------------------------------------------------------------


def test_claim_alarm_returns_none_then_the_stored_row(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.claim_alarm(alarm_row("acme", "cpu@db1")) is None
    repeat = alarm_row("acme", "cpu@db1", ticket_id="t2", first_at=at(5), last_at=at(5))
    with store.transaction() as tx:
        stored = tx.claim_alarm(repeat)
        assert stored == alarm_row("acme", "cpu@db1")
        assert stored is not None
        stored.count += 1
        stored.last_at = at(5)
        stored.first_at = at(99)  # not written back
        stored.resolved_at = at(6)
        tx.update_alarm(stored)
    with store.read() as tx:
        assert tx.alarm("acme", "cpu@db1") == AlarmRow(
            "acme", "cpu@db1", "t1", T0, at(5), count=2, resolved_at=at(6)
        )
        assert tx.alarm("acme", "disk@db1") is None


def test_failed_transaction_leaves_no_alarm(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.claim_alarm(alarm_row("acme", "a1")) is None
    with pytest.raises(Boom), store.transaction() as tx:
        assert tx.claim_alarm(alarm_row("acme", "a2")) is None
        stored = tx.claim_alarm(alarm_row("acme", "a1"))
        assert stored is not None
        tx.update_alarm(dataclasses.replace(stored, count=5, ticket_id="t9"))
        raise Boom
    with store.transaction() as tx:
        assert tx.alarm("acme", "a1") == alarm_row("acme", "a1")
        assert tx.claim_alarm(alarm_row("acme", "a2", ticket_id="t3")) is None


def test_update_of_an_unclaimed_alarm_conflicts(store: Store) -> None:
    with pytest.raises(Conflict, match="'a1' does not exist"), store.transaction() as tx:
        tx.update_alarm(alarm_row("acme", "a1"))
    with store.read() as tx:
        assert tx.alarm("acme", "a1") is None


# -- assets ---------------------------------------------------------------------------------


def test_assets_insert_or_replace_by_code(store: Store) -> None:
    with store.transaction() as tx:
        tx.put_assets("acme", [asset_row("acme", "F-2"), asset_row("acme", "F-1")])
        tx.put_assets("acme", [])
    replaced = dataclasses.replace(asset_row("acme", "F-2", name="新冷柜"), updated_at=at(1))
    with store.transaction() as tx:
        tx.put_assets("acme", [replaced])
    with store.read() as tx:
        assert tx.assets("acme") == [asset_row("acme", "F-1"), replaced]
        assert tx.asset("acme", "F-2") == replaced
        assert tx.asset("acme", "F-3") is None


def test_put_assets_refuses_another_tenants_rows_and_writes_none(store: Store) -> None:
    refused = pytest.raises(ValueError, match="asset F-2 is of tenant other, not acme")
    with refused, store.transaction() as tx:
        tx.put_assets("acme", [asset_row("acme", "F-1"), asset_row("other", "F-2")])
    with store.read() as tx:
        assert tx.assets("acme") == [] and tx.assets("other") == []


# -- all kinds ------------------------------------------------------------------------------


def write_all_kinds(store: Store, tenant: str) -> None:
    with store.transaction() as tx:
        tx.add_token(token_row(tenant, "tk1"))
        tx.put_draft(draft_row(tenant, "retail"), None)
        tx.add_intake(intake_row(tenant, "k1", 0))
        tx.claim_alarm(alarm_row(tenant, "a1"))
        tx.put_assets(tenant, [asset_row(tenant, "F-1")])


def test_tenants_never_see_each_others_api_rows(store: Store) -> None:
    write_all_kinds(store, "a")
    with store.read() as tx:
        assert tx.tokens("b") == []
        assert tx.draft("b", "retail") is None and tx.drafts("b") == []
        assert tx.intake("b", "k1") is None
        assert tx.intake_of_ticket("b", "t1") == [] and tx.count_intake_of_ticket("b", "t1") == 0
        assert tx.alarm("b", "a1") is None
        assert tx.asset("b", "F-1") is None and tx.assets("b") == []
    with store.transaction() as tx:
        assert tx.revoke_token("b", "tk1", at(1)) is False
        assert tx.delete_draft("b", "retail") is False
        with pytest.raises(Conflict):
            tx.update_alarm(alarm_row("b", "a1", count=9))
    # The same keys in tenant b clash with nothing of a's.
    write_all_kinds(store, "b")
    with store.read() as tx:
        a_token = tx.token_by_hash("sha256:a:tk1")
        assert a_token is not None and a_token.revoked_at is None
        assert [d.revision for d in tx.drafts("a")] == [1]
        assert tx.count_intake_of_ticket("a", "t1") == 1
        assert tx.alarm("a", "a1") == alarm_row("a", "a1")
        assert tx.assets("a") == [asset_row("a", "F-1")]
        assert [r.tenant_id for r in tx.intake_of_ticket("b", "t1")] == ["b"]


WRITES: dict[str, Callable[[Tx], object]] = {
    "add_token": lambda tx: tx.add_token(token_row("acme", "tk1")),
    "revoke_token": lambda tx: tx.revoke_token("acme", "tk1", at(1)),
    "put_draft": lambda tx: tx.put_draft(draft_row("acme", "retail"), None),
    "delete_draft": lambda tx: tx.delete_draft("acme", "retail"),
    "add_intake": lambda tx: tx.add_intake(intake_row("acme", "k1", 0)),
    "claim_alarm": lambda tx: tx.claim_alarm(alarm_row("acme", "a1")),
    "update_alarm": lambda tx: tx.update_alarm(alarm_row("acme", "a1")),
    "put_assets": lambda tx: tx.put_assets("acme", [asset_row("acme", "F-1")]),
}


def test_read_transaction_refuses_api_writes(store: Store) -> None:
    for name, write in WRITES.items():
        with pytest.raises(RuntimeError, match="write inside a read"), store.read() as tx:
            write(tx)
            pytest.fail(f"{name} wrote inside a read transaction")
    with store.read() as tx:
        assert tx.tokens("acme") == [] and tx.drafts("acme") == []
        assert tx.intake("acme", "k1") is None and tx.alarm("acme", "a1") is None
        assert tx.assets("acme") == []


# -- the migration -------------------------------------------------------------------------

API_TABLES = {"api_tokens", "drafts", "intake", "alarms", "assets"}


def _downgrade(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
    finally:
        engine.dispose()


def test_migration_0004_goes_down_and_up(sql_url: str) -> None:
    assert upgrade(sql_url) == "0004"
    store = SqlStore(sql_url, create=False)
    try:
        write_all_kinds(store, "acme")
        with store.transaction() as tx:
            tx.insert_ticket(ticket())
    finally:
        store.close()
    _downgrade(sql_url, "0003")
    engine = make_engine(sql_url)
    try:
        with engine.connect() as conn:
            assert API_TABLES.isdisjoint(inspect(conn).get_table_names())
            assert conn.exec_driver_sql("SELECT count(*) FROM tickets").scalar() == 1
    finally:
        engine.dispose()
    assert upgrade(sql_url) == "0004"
    store = SqlStore(sql_url, create=False)
    try:
        with store.engine.connect() as conn:
            indexes = {
                index["name"]: (index["column_names"], bool(index["unique"]))
                for table in ("api_tokens", "intake")
                for index in inspect(conn).get_indexes(table)
            }
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        assert indexes == {
            "ux_api_tokens_tenant_hash": (["tenant_id", "hash"], True),
            "ix_api_tokens_hash": (["hash"], False),
            "ix_intake_ticket": (["tenant_id", "ticket_id", "received_at", "key"], False),
        }
        with store.read() as tx:
            assert tx.tokens("acme") == [] and tx.get_ticket("acme", "t1") is not None
    finally:
        store.close()


# -- PostgreSQL concurrency -----------------------------------------------------------------


@pytest.fixture
def pg_store(tmp_path: Path) -> Iterator[Store]:
    if not os.environ.get(PG_URL_VAR):
        pytest.skip(NO_PG)
    with open_test_store("postgresql", tmp_path) as opened:
        yield opened


def run_blocked(
    store: Store, work: Callable[[Tx], object]
) -> tuple[threading.Thread, list[object]]:
    """Start `work` in a transaction of its own on another thread; its result (or the
    exception it raised) lands in the list once that transaction has committed."""
    started = threading.Event()
    outcome: list[object] = []

    def second() -> None:
        try:
            with store.transaction() as tx:
                started.set()
                result = work(tx)
            outcome.append(result)
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=second)
    thread.start()
    assert started.wait(10)
    return thread, outcome


def test_postgres_concurrent_alarm_claim_waits_for_the_winner(pg_store: Store) -> None:
    with pg_store.transaction() as tx:
        assert tx.claim_alarm(alarm_row("acme", "a1", ticket_id="t1")) is None
        thread, outcome = run_blocked(
            pg_store, lambda other: other.claim_alarm(alarm_row("acme", "a1", ticket_id="t2"))
        )
        thread.join(timeout=0.5)
        assert thread.is_alive()  # blocked on our uncommitted alarm
    thread.join(timeout=10)
    assert outcome == [alarm_row("acme", "a1", ticket_id="t1")]


def test_postgres_alarm_repeats_serialise_on_the_row(pg_store: Store) -> None:
    """A repeat claimed while another transaction holds the alarm (claimed, not yet
    written) waits, then reads the count that transaction wrote: two repeats never both
    count from the same value."""
    with pg_store.transaction() as tx:
        tx.claim_alarm(alarm_row("acme", "a1"))

    def repeat(tx: Tx) -> object:
        stored = tx.claim_alarm(alarm_row("acme", "a1", ticket_id="t2"))
        assert stored is not None
        stored.count += 1
        tx.update_alarm(stored)
        return stored.count

    with pg_store.transaction() as tx:
        held = tx.claim_alarm(alarm_row("acme", "a1", ticket_id="t2"))
        assert held is not None and held.count == 1
        thread, outcome = run_blocked(pg_store, repeat)
        thread.join(timeout=0.5)
        assert thread.is_alive()  # waiting for the row we hold
        held.count += 1
        tx.update_alarm(held)
    thread.join(timeout=10)
    assert outcome == [3]
    with pg_store.read() as tx:
        stored = tx.alarm("acme", "a1")
    assert stored is not None and stored.count == 3 and stored.ticket_id == "t1"


def test_postgres_concurrent_intake_of_one_key_waits_then_conflicts(pg_store: Store) -> None:
    with pg_store.transaction() as tx:
        tx.add_intake(intake_row("acme", "k1", 0))
        thread, outcome = run_blocked(
            pg_store, lambda other: other.add_intake(intake_row("acme", "k1", 1))
        )
        thread.join(timeout=0.5)
        assert thread.is_alive()  # blocked on our uncommitted key
    thread.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict)
    with pg_store.read() as tx:
        assert tx.intake("acme", "k1") == intake_row("acme", "k1", 0)
