"""One contract for every store: memory, SQLite, and PostgreSQL when
TICKETFLOW_TEST_DATABASE_URL names one (each test then gets a schema of its own)."""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from store_fixtures import (
    PG_URL_VAR,
    T0,
    at,
    draft,
    event,
    hammer,
    message,
    open_test_store,
    outbox_row,
    pack_row,
    person,
    store_url,
    ticket,
    timer,
)

from runtime.audit import GENESIS, chain, verify
from runtime.records import Conflict, OutboxRow, SeeClause, TicketQuery, TicketRow
from runtime.store import MemoryStore, open_store
from runtime.store.base import Store, iter_audit
from runtime.store.sql import (
    MIGRATIONS,
    SqlStore,
    UTCDateTime,
    json_type,
    make_engine,
    metadata,
    upgrade,
)

NO_PG = f"{PG_URL_VAR} is not set: PostgreSQL contract tests skipped"
PG = pytest.param("postgresql", marks=pytest.mark.skipif(not os.environ.get(PG_URL_VAR), reason=NO_PG))
ALL = ["memory", "sqlite", PG]
SQL = ["sqlite", PG]
EVERYONE = (SeeClause("all"),)


@pytest.fixture(params=ALL)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with open_test_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture(params=SQL)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as url:
        yield url


def insert(store: Store, *rows: TicketRow) -> None:
    with store.transaction() as tx:
        for row in rows:
            tx.insert_ticket(row)


def get(store: Store, tenant: str, ticket_id: str) -> TicketRow | None:
    with store.read() as tx:
        return tx.get_ticket(tenant, ticket_id)


# -- tickets --------------------------------------------------------------------------------


def test_ticket_round_trip_keeps_every_field(store: Store) -> None:
    row = ticket(
        assignee="role:engineer",
        parent_id="t0",
        link="child",
        closed=True,
        event_seq=3,
        updated_at=T0 + timedelta(microseconds=1),
        state_entered_at=T0.astimezone(timezone(timedelta(hours=8))),  # same instant
    )
    insert(store, row)
    got = get(store, "acme", "t1")
    assert got == row
    assert got is not None
    assert got.fields["note"] == "冷柜不制冷 ✓"
    for moment in (got.created_at, got.updated_at, got.state_entered_at):
        assert moment.utcoffset() == timedelta(0)
    assert got.updated_at.microsecond == 123457


def test_rows_are_copies(store: Store) -> None:
    row = ticket()
    insert(store, row)
    row.fields["priority"] = "P3"  # the caller's row after insert
    row.tags.append("x")
    got = get(store, "acme", "t1")
    assert got is not None and got.fields["priority"] == "P1" and got.tags == ["cold"]
    got.fields["priority"] = "P2"
    got.watchers.append("w2")
    again = get(store, "acme", "t1")
    assert again is not None and again.fields["priority"] == "P1" and again.watchers == ["w1"]


def test_missing_ticket_is_none(store: Store) -> None:
    assert get(store, "acme", "nope") is None


def test_update_bumps_version(store: Store) -> None:
    insert(store, ticket())
    row = get(store, "acme", "t1")
    assert row is not None
    row.state = "assigned"
    row.assignee = "eng1"
    row.fields["priority"] = "P2"
    row.updated_at = at(5)
    with store.transaction() as tx:
        tx.update_ticket(row, 1)
    assert row.version == 2
    stored = get(store, "acme", "t1")
    assert stored == row
    with store.transaction() as tx:
        tx.update_ticket(row, 2)
    stored = get(store, "acme", "t1")
    assert stored is not None and stored.version == 3 and stored.created_at == T0


def test_updates_inside_one_transaction(store: Store) -> None:
    """Read and update twice in one transaction (SQL stores then write only what changed)."""
    insert(store, ticket())
    with store.transaction() as tx:
        row = tx.get_ticket("acme", "t1")
        assert row is not None
        row.state, row.assignee, row.closed = "assigned", "eng1", True
        row.fields["parts"].append({"no": "B-2", "qty": 1})
        row.tags = []
        tx.update_ticket(row, 1)
        row.fields = {"priority": "P2"}
        row.title = None
        row.updated_at = at(9)
        tx.update_ticket(row, row.version)
        with pytest.raises(Conflict):
            tx.update_ticket(row, 2)
        assert tx.get_ticket("acme", "t1") == row
    expected = ticket(
        state="assigned", assignee="eng1", closed=True, tags=[], fields={"priority": "P2"},
        title=None, updated_at=at(9), version=3,
    )
    assert get(store, "acme", "t1") == expected
    with store.transaction() as tx:
        same = tx.get_ticket("acme", "t1")
        assert same is not None
        tx.update_ticket(same, 3)  # nothing changed but the version
    assert get(store, "acme", "t1") == dataclasses.replace(expected, version=4)


def test_update_writes_json_values_exactly(store: Store) -> None:
    """1, 1.0 and true are equal in Python but not in JSON: an update changing one into
    another is written (SQLite compares JSON columns as stored text)."""
    insert(store, ticket(fields={"n": 1, "f": 1.0, "b": True}, tags=["x"]))
    with store.transaction() as tx:
        row = tx.get_ticket("acme", "t1")
        assert row is not None
        row.fields["n"], row.fields["f"], row.fields["b"] = True, 1, 1.0  # changed in place
        tx.update_ticket(row, 1)
    got = get(store, "acme", "t1")
    assert got is not None and got.version == 2
    types = {k: (v, type(v)) for k, v in got.fields.items()}
    assert types == {"n": (True, bool), "f": (1, int), "b": (1.0, float)}
    with store.transaction() as tx:
        row = tx.get_ticket("acme", "t1")
        assert row is not None
        row.tags.append("y")
        tx.update_ticket(row, 2)
        row.tags.remove("y")  # back to what the transaction read first
        tx.update_ticket(row, 3)
    got = get(store, "acme", "t1")
    assert got is not None and got.version == 4 and got.tags == ["x"]


def test_times_round_trip_exactly(store: Store) -> None:
    row = ticket(
        created_at=T0.replace(microsecond=0),
        updated_at=datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=timezone(timedelta(hours=-3))),
        state_entered_at=datetime(1, 1, 1, 12, tzinfo=UTC),
    )
    insert(store, row)
    got = get(store, "acme", "t1")
    assert got == row
    assert got is not None and all(
        t.tzinfo == UTC for t in (got.created_at, got.updated_at, got.state_entered_at)
    )
    with store.read() as tx:
        listed = tx.query_tickets("acme", TicketQuery(see=EVERYONE, after=(row.created_at, "t0")))
    assert listed == [row]


def test_stale_update_conflicts_and_changes_nothing(store: Store) -> None:
    insert(store, ticket())
    first = get(store, "acme", "t1")
    second = get(store, "acme", "t1")
    assert first is not None and second is not None
    first.state = "assigned"
    with store.transaction() as tx:
        tx.update_ticket(first, 1)
    second.state = "closed"
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.update_ticket(second, 1)
    assert second.version == 1
    stored = get(store, "acme", "t1")
    assert stored is not None and stored.state == "assigned" and stored.version == 2


def test_update_of_missing_ticket_conflicts(store: Store) -> None:
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.update_ticket(ticket(id="ghost"), 1)


def test_duplicate_ticket_conflicts(store: Store) -> None:
    insert(store, ticket())
    with pytest.raises(Conflict):
        insert(store, ticket(title="again"))
    stored = get(store, "acme", "t1")
    assert stored is not None and stored.title == "Fridge broken"


# -- transactions ---------------------------------------------------------------------------


class Boom(Exception):
    pass


def write_everything(store: Store, tenant: str) -> None:
    with store.transaction() as tx:
        tx.insert_ticket(ticket(tenant, "t1"))
        tx.add_events([event(tenant, "t1", 1), event(tenant, "t1", 2)])
        tx.add_audit(tenant, [draft(1)])
        tx.add_outbox([outbox_row(tenant, "o1", 1)])
        tx.add_timers([timer(tenant, "m1", 1)])
        tx.next_sequence(tenant, "repair")
        tx.claim_idempotency_key(tenant, "alarm-1", "t1")
        tx.add_pack_version(pack_row(tenant, "retail", 1))


def test_rollback_leaves_nothing(store: Store) -> None:
    write_everything(store, "other")  # a second tenant, to see rollback touches only ours
    insert(store, ticket(id="t0"))
    with pytest.raises(Boom), store.transaction() as tx:
        tx.insert_ticket(ticket())
        before = tx.get_ticket("acme", "t0")
        assert before is not None
        before.state = "assigned"
        tx.update_ticket(before, 1)
        tx.add_events([event("acme", "t1", 1)])
        assert tx.add_audit("acme", [draft(1), draft(2)])[-1].seq == 2
        tx.add_outbox([outbox_row("acme", "o1", 1)])
        tx.add_timers([timer("acme", "m1", 1)])
        tx.mark_timer(timer("other", "m1", 1), "fired", at(2))
        assert tx.next_sequence("acme", "repair") == 1
        assert tx.claim_idempotency_key("acme", "alarm-1", "t1") is None
        tx.add_pack_version(pack_row("acme", "retail", 1))
        raise Boom
    with store.read() as tx:
        assert tx.get_ticket("acme", "t1") is None
        t0 = tx.get_ticket("acme", "t0")
        assert t0 is not None and t0.version == 1 and t0.state == "new"
        assert tx.events("acme", "t1") == []
        assert tx.audit("acme") == []
        assert tx.audit_head("acme") == (0, GENESIS)
        assert tx.audit_tenants() == ["other"]
        assert tx.outbox("acme") == []
        assert tx.timers("acme") == []
        assert tx.timers("other")[0].status == "waiting"
        assert tx.latest_pack_versions("acme") == []
    with store.transaction() as tx:
        assert tx.next_sequence("acme", "repair") == 1
        assert tx.claim_idempotency_key("acme", "alarm-1", "t9") is None


def test_conflict_inside_a_command_rolls_back_its_writes(store: Store) -> None:
    insert(store, ticket())
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.add_events([event("acme", "t1", 1)])
        tx.add_audit("acme", [draft(1)])
        tx.update_ticket(ticket(), 7)
    with store.read() as tx:
        assert tx.events("acme", "t1") == []
        assert tx.audit_head("acme") == (0, GENESIS)


def test_read_transaction_refuses_writes(store: Store) -> None:
    with pytest.raises(RuntimeError), store.read() as tx:
        tx.insert_ticket(ticket())
    assert get(store, "acme", "t1") is None


# -- tenants --------------------------------------------------------------------------------


def test_tenants_never_see_each_other(store: Store) -> None:
    write_everything(store, "a")
    with store.transaction() as tx:
        tx.add_audit("a", [draft(2)])
    with store.read() as tx:
        assert tx.get_ticket("b", "t1") is None
        assert tx.query_tickets("b", TicketQuery(see=EVERYONE)) == []
        assert tx.events("b", "t1") == []
        assert tx.audit("b") == []
        assert tx.audit_head("b") == (0, GENESIS)
        assert tx.outbox("b") == []
        assert tx.timers("b") == []
        assert tx.timers("b", "t1") == []
        assert tx.count_open_by_state("b", "retail") == {}
        assert tx.open_tickets_of_pack("b", "retail") == []
        assert tx.latest_pack_versions("b") == []
        assert tx.pack_versions("b", "retail") == []
        assert tx.pack_version("b", "retail", 1) is None
        assert [r.tenant_id for r in tx.query_tickets("a", TicketQuery(see=EVERYONE))] == ["a"]
    with store.transaction() as tx:
        assert tx.cancel_timers("b", "t1", "k") == 0
        assert tx.claim_idempotency_key("b", "alarm-1", "bt") is None
        assert tx.next_sequence("b", "repair") == 1
        tx.add_pack_version(pack_row("b", "retail", 1))  # no clash with tenant a's
        tx.insert_ticket(ticket("b", "t1"))
        assert tx.add_audit("b", [draft(1)])[0].seq == 1
    with store.read() as tx:
        assert tx.timers("a")[0].status == "waiting"
        assert tx.audit_head("a")[0] == 2


# -- queries --------------------------------------------------------------------------------

LISTING = [
    ticket(id="a", state="new", template="repair", assignee="e1", team="hvac", requester="c1"),
    ticket(id="b", state="assigned", template="repair", assignee="e2", team="hvac",
           requester="c2", search_text="r-b pump leaking 100% wet_floor"),
    ticket(id="c", state="closed", template="complaint", assignee=None, team="front",
           requester="c1", closed=True, search_text="r-c 噪音 noisy room"),
    ticket(id="d", state="new", template="complaint", assignee="e1", team=None,
           requester=None, search_text="r-d pump 100x"),
]


@pytest.fixture
def listed(store: Store) -> Store:
    rows = [dataclasses.replace(r, created_at=at(i)) for i, r in enumerate(LISTING)]
    insert(store, *rows, ticket("other", "z", state="new"))
    return store


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, "abcd"),
        ({"states": ("new",)}, "ad"),
        ({"states": ("new", "closed")}, "acd"),
        ({"templates": ("complaint",)}, "cd"),
        ({"assignees": ("e1",)}, "ad"),
        ({"teams": ("hvac", "front")}, "abc"),
        ({"requesters": ("c1",)}, "ac"),
        ({"text": "PUMP"}, "bd"),
        ({"text": "噪音"}, "c"),
        ({"text": "100%"}, "b"),  # % and _ are literal, not wildcards
        ({"text": "wet_floor"}, "b"),
        ({"text": "wet%floor"}, ""),
        ({"closed": True}, "c"),
        ({"closed": False}, "abd"),
        ({"states": ("new",), "assignees": ("e1",), "templates": ("repair",)}, "a"),
        ({"limit": 2}, "ab"),
    ],
)
def test_query_filters(listed: Store, filters: dict[str, Any], expected: str) -> None:
    with listed.read() as tx:
        rows = tx.query_tickets("acme", TicketQuery(see=EVERYONE, **filters))
    assert "".join(r.id for r in rows) == expected


def test_query_text_with_the_escape_character(store: Store) -> None:
    insert(store, ticket(id="a", search_text="r-a path/to 50%_off"), ticket(id="b"))
    with store.read() as tx:
        for text, expected in (("path/to", "a"), ("h/t", "a"), ("50%_OFF", "a"), ("h//t", "")):
            rows = tx.query_tickets("acme", TicketQuery(see=EVERYONE, text=text))
            assert "".join(r.id for r in rows) == expected, text


@pytest.mark.parametrize(
    ("see", "expected"),
    [
        ((), ""),
        ((SeeClause("all"),), "abcd"),
        ((SeeClause("all", templates=("repair",)),), "ab"),
        ((SeeClause("all", templates=()),), ""),
        ((SeeClause("requester", ("c1",)),), "ac"),
        ((SeeClause("requester", ()),), ""),
        ((SeeClause("assignee", ("e1", "e2")),), "abd"),
        ((SeeClause("team", ("hvac",)),), "ab"),
        ((SeeClause("requester", ("c1",), templates=("complaint",)),), "c"),
        ((SeeClause("requester", ("c2",)), SeeClause("team", ("front",))), "bc"),
        ((SeeClause("assignee", ("e1",), templates=("repair",)), SeeClause("requester", ("c2",))),
         "ab"),
        ((SeeClause("team", ("nobody",)), SeeClause("all", templates=("complaint",))), "cd"),
    ],
)
def test_query_see_clauses(listed: Store, see: tuple[SeeClause, ...], expected: str) -> None:
    with listed.read() as tx:
        rows = tx.query_tickets("acme", TicketQuery(see=see))
    assert "".join(r.id for r in rows) == expected


def test_see_clauses_combine_with_filters(listed: Store) -> None:
    query = TicketQuery(see=(SeeClause("requester", ("c1",)),), states=("new", "assigned"))
    with listed.read() as tx:
        assert [r.id for r in tx.query_tickets("acme", query)] == ["a"]


def test_cursor_pagination_with_equal_created_at(store: Store) -> None:
    rows = [ticket(id=f"t{i:02d}", created_at=at(i % 4)) for i in range(23)]
    insert(store, *reversed(rows))
    expected = sorted(rows, key=lambda r: (r.created_at, r.id))
    seen: list[TicketRow] = []
    after = None
    while True:
        with store.read() as tx:
            page = tx.query_tickets("acme", TicketQuery(see=EVERYONE, after=after, limit=5))
        seen.extend(page)
        if len(page) < 5:
            break
        after = (page[-1].created_at, page[-1].id)
    assert [r.id for r in seen] == [r.id for r in expected]


def test_open_tickets_of_pack(store: Store) -> None:
    insert(
        store,
        ticket(id="a", state="new"),
        ticket(id="b", state="new", created_at=at(1)),
        ticket(id="c", state="assigned", pack_version=2, created_at=at(2)),
        ticket(id="d", state="closed", closed=True),
        ticket(id="e", pack="other"),
    )
    with store.read() as tx:
        counts = tx.count_open_by_state("acme", "retail")
        opened = tx.open_tickets_of_pack("acme", "retail")
    assert counts == {(1, "repair", "new"): 2, (2, "repair", "assigned"): 1}
    assert [r.id for r in opened] == ["a", "b", "c"]


# -- timeline and audit ---------------------------------------------------------------------


def test_events_in_seq_order(store: Store) -> None:
    insert(store, ticket())
    with store.transaction() as tx:
        tx.add_events([event("acme", "t1", 2, visibility="internal"), event("acme", "t1", 1)])
    with store.transaction() as tx:
        tx.add_events([event("acme", "t1", 3, data={})])
    with store.read() as tx:
        got = tx.events("acme", "t1")
    assert [e.seq for e in got] == [1, 2, 3]
    assert got[0] == event("acme", "t1", 1)
    assert got[1].visibility == "internal" and got[2].data == {}


def test_duplicate_event_conflicts(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_events([event("acme", "t1", 1)])
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.add_events([event("acme", "t1", 1)])


def test_audit_numbering_and_chain(store: Store) -> None:
    with store.transaction() as tx:
        first = tx.add_audit("acme", [draft(1), draft(2, before=None), draft(3)])
        assert tx.add_audit("acme", []) == []
    shanghai = timezone(timedelta(hours=8))
    with store.transaction() as tx:
        second = tx.add_audit("acme", [draft(4, at=at(4).astimezone(shanghai)), draft(5)])
    with store.transaction() as tx:
        tx.add_audit("beta", [draft(1)])
    assert [r.seq for r in first + second] == [1, 2, 3, 4, 5]
    with store.read() as tx:
        rows = tx.audit("acme")
        head = tx.audit_head("acme")
        assert [r.seq for r in tx.audit("acme", after_seq=2, limit=2)] == [3, 4]
        assert tx.audit_tenants() == ["acme", "beta"]
    assert rows == first + second
    prev = GENESIS
    for row in rows:
        assert row.prev_hash == prev
        assert row.hash == chain(row)
        prev = row.hash
    assert head == (5, rows[-1].hash)
    assert rows[1].before is None and rows[0].after == draft(1).after
    assert list(iter_audit(store, "acme", page=2)) == rows


def test_audit_chain_verifies_whatever_json_makes_of_the_values(store: Store) -> None:
    """Numeric keys (text in JSON, and sorted differently), tuples, nested values: the
    hash written is the one recomputed from the row read back."""
    odd = {2: "b", 10: "c", 1: ("x", [1.5, {"k": None}])}
    with store.transaction() as tx:
        tx.add_audit("acme", [draft(1, before=odd, after={"z": 1, "a": [True]}), draft(2)])
    assert verify(store, "acme") == []
    with store.read() as tx:
        rows = tx.audit("acme")
    assert [r.hash == chain(r) for r in rows] == [True, True]


def test_concurrent_audit_writers_serialise(store: Store) -> None:
    """Threads appending to one tenant's audit log never share a seq or break the chain."""

    def work() -> None:
        for n in range(10):
            with store.transaction() as tx:
                tx.add_audit("acme", [draft(n), draft(n)])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = list(iter_audit(store, "acme"))
    assert [r.seq for r in rows] == list(range(1, 61))
    assert all(r.prev_hash == p.hash for p, r in itertools.pairwise(rows))


# -- idempotency, sequences, packs ----------------------------------------------------------


def test_idempotency_key_returns_first_ticket(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.claim_idempotency_key("acme", "alarm-1", "t1") is None
    with store.transaction() as tx:
        assert tx.claim_idempotency_key("acme", "alarm-1", "t2") == "t1"
        assert tx.claim_idempotency_key("acme", "alarm-2", "t2") is None
    with store.transaction() as tx:
        assert tx.claim_idempotency_key("acme", "alarm-2", "t3") == "t2"


def test_sequences_count_per_name(store: Store) -> None:
    with store.transaction() as tx:
        assert [tx.next_sequence("acme", "repair") for _ in range(3)] == [1, 2, 3]
        assert tx.next_sequence("acme", "complaint") == 1
    with store.transaction() as tx:
        assert tx.next_sequence("acme", "repair") == 4
        assert tx.next_sequence("beta", "repair") == 1


def test_pack_versions(store: Store) -> None:
    with store.transaction() as tx:
        for pack, version in (("retail", 1), ("retail", 2), ("hotel", 1), ("retail", 3)):
            tx.add_pack_version(pack_row("acme", pack, version))
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.add_pack_version(pack_row("acme", "retail", 2))
    with store.read() as tx:
        latest = tx.latest_pack_versions("acme")
        assert [(r.pack, r.version) for r in latest] == [("hotel", 1), ("retail", 3)]
        assert tx.pack_heads("acme") == {"hotel": 1, "retail": 3}
        assert tx.pack_heads("nobody") == {}
        assert [r.version for r in tx.pack_versions("acme", "retail")] == [1, 2, 3]
        assert tx.pack_version("acme", "retail", 2) == pack_row("acme", "retail", 2)
        assert tx.pack_version("acme", "retail", 9) is None


# -- timers and outbox ----------------------------------------------------------------------


def test_timers(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_timers(
            [
                timer("acme", "late", 30),
                timer("acme", "first", 1, key="sla"),
                timer("beta", "other", 2),
                timer("acme", "tie-b", 5),
                timer("acme", "tie-a", 5, ticket_id=None, key=""),
                timer("acme", "gone", 3, key="sla"),
                timer("acme", "elsewhere", 4, ticket_id="t2", key="sla"),
            ]
        )
    now = at(10)
    with store.read() as tx:
        due = tx.due_timers(now, 10)
        assert [t.id for t in due] == ["first", "other", "gone", "elsewhere", "tie-a", "tie-b"]
        assert [t.id for t in tx.due_timers(now, 2)] == ["first", "other"]
        assert due[4].ticket_id is None
    with store.transaction() as tx:
        assert tx.cancel_timers("acme", "t1", "sla") == 2
        assert tx.cancel_timers("acme", "t1", "sla") == 0
        fired = tx.due_timers(now, 10)[0]
        assert fired.id == "other"
        tx.mark_timer(fired, "fired", at(11))
        assert fired.status == "fired" and fired.fired_at == at(11)
    with store.read() as tx:
        assert [t.id for t in tx.due_timers(now, 10)] == ["elsewhere", "tie-a", "tie-b"]
        assert [t.id for t in tx.due_timers(at(60), 10)][-1] == "late"
        assert [t.id for t in tx.due_timers(at(0), 10)] == []
        mine = tx.timers("acme")
        assert [t.id for t in mine] == ["first", "gone", "elsewhere", "tie-a", "tie-b", "late"]
        assert {t.id: t.status for t in mine if t.status != "waiting"} == {
            "first": "cancelled",
            "gone": "cancelled",
        }
        assert [t.id for t in tx.timers("acme", "t2")] == ["elsewhere"]
        other = tx.timers("beta")[0]
        assert other.status == "fired" and other.fired_at == at(11)


def test_outbox_order_and_status(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_outbox(
            [
                outbox_row("acme", "o2", 2),
                outbox_row("acme", "o1", 1, status="sent", attempts=1),
                outbox_row("acme", "o3", 3, ticket_id=None, next_attempt_at=at(9)),
                outbox_row("beta", "o0", 0),
            ]
        )
    with store.read() as tx:
        rows = tx.outbox("acme")
        assert [r.id for r in rows] == ["o1", "o2", "o3"]
        assert rows[2] == outbox_row("acme", "o3", 3, ticket_id=None, next_attempt_at=at(9))
        assert [r.id for r in tx.outbox("acme", "pending")] == ["o2", "o3"]
        assert [r.id for r in tx.outbox("acme", "sent")] == ["o1"]
        assert tx.outbox("acme", "dead") == []


def test_outbox_rows_round_trip_and_are_due_from_creation(store: Store) -> None:
    """A row added without next_attempt_at is due when created (one indexed column);
    the delivery columns round-trip; the caller's row is not changed."""
    plain = outbox_row("acme", "o1", 1)
    full = outbox_row(
        "acme", "o2", 2, kind="notify", channel="email", recipient="u1", status="dead",
        attempts=5, next_attempt_at=None, last_error="550 mailbox unavailable ✗",
        delivered_at=None,
    )
    hook = outbox_row(
        "acme", "o3", 3, kind="webhook", ticket_id=None, status="sent", attempts=1,
        next_attempt_at=at(4), delivered_at=at(4).astimezone(timezone(timedelta(hours=8))),
    )
    with store.transaction() as tx:
        tx.add_outbox([plain, full, hook])
    assert plain.next_attempt_at is None
    with store.read() as tx:
        assert tx.outbox_message("acme", "o1") == dataclasses.replace(plain, next_attempt_at=at(1))
        assert tx.outbox_message("acme", "o2") == dataclasses.replace(full, next_attempt_at=at(2))
        got = tx.outbox_message("acme", "o3")
        assert got == hook
        assert got is not None and got.delivered_at is not None
        assert got.delivered_at.tzinfo == UTC and got.channel is None
        assert tx.outbox_message("acme", "nope") is None
        assert tx.outbox_message("beta", "o1") is None
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.add_outbox([outbox_row("acme", "o4", 4), outbox_row("acme", "o1", 5)])
    with store.read() as tx:
        assert tx.outbox_message("acme", "o4") is None  # the failed command left nothing


def claim(store: Store, now: float, limit: int, lease: float) -> list[tuple[str, str, int]]:
    """(tenant, id, attempts) of the rows claimed, checking each is returned as stored."""
    with store.transaction() as tx:
        rows = tx.claim_outbox(at(now), limit, at(lease))
    with store.read() as tx:
        for row in rows:
            assert row.next_attempt_at == at(lease) and row.status == "pending"
            assert tx.outbox_message(row.tenant_id, row.id) == row
    return [(r.tenant_id, r.id, r.attempts) for r in rows]


def test_claim_outbox_order_limit_and_lease(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_outbox(
            [
                outbox_row("acme", "o3", 3),
                outbox_row("beta", "o2", 2),
                outbox_row("acme", "late", 1, next_attempt_at=at(5)),
                outbox_row("acme", "x4b", 4),
                outbox_row("beta", "x4a", 4),
                outbox_row("acme", "x4a", 4),
                outbox_row("acme", "sent", 0, status="sent", attempts=1),
                outbox_row("acme", "dead", 0, status="dead", attempts=9),
                outbox_row("acme", "future", 0, next_attempt_at=at(30)),
            ]
        )
    # Earliest due first, then tenant and id; each claim counts as an attempt.
    assert claim(store, 10, 3, 20) == [("beta", "o2", 1), ("acme", "o3", 1), ("acme", "x4a", 1)]
    # Claimed rows wait for their lease to end: the next claim takes the others.
    assert claim(store, 10, 10, 20) == [("acme", "x4b", 1), ("beta", "x4a", 1), ("acme", "late", 1)]
    assert claim(store, 19.99, 10, 40) == []
    assert claim(store, 0, 10, 40) == []
    # A worker that died mid-delivery: once the lease ends the rows are claimed again.
    assert claim(store, 20, 4, 40) == [
        ("acme", "late", 2), ("acme", "o3", 2), ("acme", "x4a", 2), ("acme", "x4b", 2)
    ]
    assert claim(store, 30, 10, 40) == [("beta", "o2", 2), ("beta", "x4a", 2), ("acme", "future", 1)]
    assert claim(store, 39, 10, 50) == []
    assert claim(store, 40, 0, 50) == []
    with store.read() as tx:
        rows = {r.id: r for r in tx.outbox("acme")}
        assert (rows["sent"].status, rows["sent"].attempts) == ("sent", 1)
        assert (rows["dead"].status, rows["dead"].attempts) == ("dead", 9)
        with pytest.raises(RuntimeError):
            tx.claim_outbox(at(40), 10, at(50))  # a claim writes


def test_claim_outbox_in_a_failed_transaction_claims_nothing(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_outbox([outbox_row("acme", "o1", 1)])
    with pytest.raises(Boom), store.transaction() as tx:
        assert [r.id for r in tx.claim_outbox(at(10), 10, at(20))] == ["o1"]
        raise Boom
    with store.read() as tx:
        assert tx.outbox_message("acme", "o1") == outbox_row("acme", "o1", 1, next_attempt_at=at(1))
    assert claim(store, 10, 10, 20) == [("acme", "o1", 1)]


def test_finish_outbox_writes_only_the_current_attempt(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_outbox([outbox_row("acme", "o1", 0, channel="sms", recipient="u1")])
    assert claim(store, 1, 1, 5) == [("acme", "o1", 1)]
    assert claim(store, 5, 1, 9) == [("acme", "o1", 2)]  # the first worker's lease ran out
    with store.read() as tx:
        held = tx.outbox_message("acme", "o1")
    # The first worker comes back: its outcome is refused and changes nothing.
    with store.transaction() as tx:
        assert not tx.finish_outbox("acme", "o1", 1, "sent", None, None, at(6))
        assert not tx.finish_outbox("acme", "o1", 3, "dead", None, "late", None)
        assert not tx.finish_outbox("acme", "nope", 2, "sent", None, None, at(6))
        assert not tx.finish_outbox("beta", "o1", 2, "sent", None, None, at(6))
    with store.read() as tx:
        assert tx.outbox_message("acme", "o1") == held
    # The holder's failed attempt: retried later, the error kept.
    with store.transaction() as tx:
        assert tx.finish_outbox("acme", "o1", 2, "pending", at(12), "gateway timeout", None)
    with store.read() as tx:
        got = tx.outbox_message("acme", "o1")
    assert got is not None
    assert (got.status, got.attempts, got.next_attempt_at, got.last_error, got.delivered_at) == (
        "pending", 2, at(12), "gateway timeout", None
    )
    assert claim(store, 11, 1, 20) == []
    assert claim(store, 12, 1, 20) == [("acme", "o1", 3)]
    # A rolled-back outcome is not written.
    with pytest.raises(Boom), store.transaction() as tx:
        assert tx.finish_outbox("acme", "o1", 3, "dead", None, "x", None)
        raise Boom
    shanghai = timezone(timedelta(hours=8))
    with store.transaction() as tx:
        assert tx.finish_outbox("acme", "o1", 3, "sent", None, None, at(13).astimezone(shanghai))
    with store.read() as tx:
        got = tx.outbox_message("acme", "o1")
        assert [r.id for r in tx.outbox("acme", "sent")] == ["o1"]
    assert got is not None
    assert (got.status, got.attempts, got.next_attempt_at, got.last_error) == ("sent", 3, None, None)
    assert got.delivered_at == at(13) and got.delivered_at.tzinfo == UTC
    assert claim(store, 100, 10, 200) == []


def test_finish_outbox_refuses_bad_outcomes(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_outbox([outbox_row("acme", "o1", 0)])
    for status, next_attempt in (("sending", at(5)), ("failed", at(5)), ("pending", None)):
        with pytest.raises(ValueError), store.transaction() as tx:
            tx.finish_outbox("acme", "o1", 0, status, next_attempt, None, None)
    with store.read() as tx:
        assert tx.outbox_message("acme", "o1") == outbox_row("acme", "o1", 0, next_attempt_at=at(0))


def test_retry_outbox_revives_only_dead_rows_of_the_tenant(store: Store) -> None:
    def dead(tenant: str, id: str) -> OutboxRow:
        return outbox_row(tenant, id, 1, status="dead", attempts=5, last_error="bounced")

    with store.transaction() as tx:
        tx.add_outbox(
            [
                dead("acme", "d1"),
                dead("acme", "d2"),
                dead("beta", "d1"),
                outbox_row("acme", "p", 2, attempts=2, next_attempt_at=at(60)),
                outbox_row("acme", "s", 3, status="sent", attempts=1, delivered_at=at(3)),
            ]
        )
        before = {(r.tenant_id, r.id): r for t in ("acme", "beta") for r in tx.outbox(t)}
    with store.transaction() as tx:
        assert tx.retry_outbox("acme", ["d1", "p", "s", "missing", "d1"], at(50)) == 1
        assert tx.retry_outbox("acme", [], at(50)) == 0
    with store.read() as tx:
        after = {(r.tenant_id, r.id): r for t in ("acme", "beta") for r in tx.outbox(t)}
    revived = dataclasses.replace(
        before[("acme", "d1")], status="pending", attempts=0, next_attempt_at=at(50)
    )
    assert after == {**before, ("acme", "d1"): revived}
    assert revived.last_error == "bounced"
    with pytest.raises(Boom), store.transaction() as tx:
        assert tx.retry_outbox("acme", ["d2"], at(50)) == 1
        raise Boom
    with store.read() as tx:
        assert [r.id for r in tx.outbox("acme", "dead")] == ["d2"]
    assert claim(store, 50, 10, 70) == [("acme", "d1", 1)]
    with store.transaction() as tx:
        assert tx.retry_outbox("beta", ["d1", "d2"], at(55)) == 1
    assert claim(store, 60, 10, 70) == [("beta", "d1", 1), ("acme", "p", 3)]


def test_inbox_lists_a_persons_in_app_messages_newest_first(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_outbox(
            [
                message("acme", "m1", 1),
                message("acme", "m3b", 3),
                message("acme", "m2", 2, status="dead", delivered_at=None, last_error="x"),
                message("acme", "m3a", 3, status="pending", delivered_at=None),
                message("acme", "mail", 4, channel="email"),
                message("acme", "other", 5, recipient="u2"),
                message("beta", "theirs", 6),
                outbox_row("acme", "hook", 7, kind="webhook"),
            ]
        )
    with store.read() as tx:
        mine = tx.inbox("acme", "u1")
        assert [r.id for r in mine] == ["m3b", "m3a", "m2", "m1"]
        assert mine[0] == message("acme", "m3b", 3, next_attempt_at=at(3))
        assert [r.id for r in tx.inbox("acme", "u2")] == ["other"]
        assert [r.id for r in tx.inbox("beta", "u1")] == ["theirs"]
        assert tx.inbox("acme", "nobody") == []
        assert [r.id for r in tx.inbox("acme", "u1", limit=2)] == ["m3b", "m3a"]
        assert [r.id for r in tx.inbox("acme", "u1", before=(at(3), "m3b"))] == ["m3a", "m2", "m1"]
        assert [r.id for r in tx.inbox("acme", "u1", before=(at(2), "m2"))] == ["m1"]
        assert tx.inbox("acme", "u1", before=(at(1), "m1")) == []
    # Paging one row at a time walks every message once, ties included.
    seen: list[str] = []
    before = None
    while True:
        with store.read() as tx:
            page = tx.inbox("acme", "u1", limit=1, before=before)
        if not page:
            break
        seen.extend(r.id for r in page)
        before = (page[-1].created_at, page[-1].id)
    assert seen == ["m3b", "m3a", "m2", "m1"]


# -- the people directory -------------------------------------------------------------------


def test_people_upsert_remove_and_revision(store: Store) -> None:
    with store.read() as tx:
        assert tx.directory_rev("acme") == 0
        assert tx.people("acme") == []
    with store.transaction() as tx:
        tx.put_people("acme", [person("acme", "p2"), person("acme", "p1", skills=["hvac"])])
        tx.put_people("beta", [person("beta", "p1", name="Beta One")])
    with store.read() as tx:
        assert tx.people("acme") == [person("acme", "p1", skills=["hvac"]), person("acme", "p2")]
        assert tx.person("acme", "p1") == person("acme", "p1", skills=["hvac"])
        assert tx.person("beta", "p1") == person("beta", "p1", name="Beta One")
        assert tx.person("acme", "p3") is None
        assert (tx.directory_rev("acme"), tx.directory_rev("beta")) == (1, 1)
    replaced = dataclasses.replace(person("acme", "p1", roles=["manager"]), updated_at=at(5))
    with store.transaction() as tx:
        tx.put_people("acme", [replaced])  # the same key: replaced, not duplicated
        assert tx.directory_rev("acme") == 2  # inside the transaction that moved it
    with store.read() as tx:
        assert tx.people("acme") == [replaced, person("acme", "p2")]
        assert tx.person("acme", "p1") == replaced and "skills" not in replaced.data
        assert tx.directory_rev("acme") == 2 and tx.directory_rev("beta") == 1
    with store.transaction() as tx:
        assert tx.remove_people("acme", ["p2", "nope", "p2"]) == 1
        assert tx.remove_people("acme", ["nope"]) == 0  # changed nothing: no new revision
        tx.put_people("acme", [])
        assert tx.remove_people("acme", []) == 0
    with store.read() as tx:
        assert tx.people("acme") == [replaced]
        assert tx.directory_rev("acme") == 3
        assert tx.people("beta") == [person("beta", "p1", name="Beta One")]


def test_directory_revision_does_not_move_in_a_failed_transaction(store: Store) -> None:
    with store.transaction() as tx:
        tx.put_people("acme", [person("acme", "p1"), person("acme", "p2")])
    for change in (
        lambda tx: tx.put_people("acme", [person("acme", "p1", name="renamed")]),
        lambda tx: tx.remove_people("acme", ["p2"]),
    ):
        with pytest.raises(Boom), store.transaction() as tx:
            change(tx)
            assert tx.directory_rev("acme") == 2
            raise Boom
    with pytest.raises(ValueError), store.transaction() as tx:
        tx.put_people("acme", [person("acme", "p3"), person("beta", "p4")])  # not acme's
    with store.read() as tx:
        assert tx.directory_rev("acme") == 1
        assert tx.people("acme") == [person("acme", "p1"), person("acme", "p2")]
        assert tx.people("beta") == []


def test_people_are_copies(store: Store) -> None:
    row = person("acme", "p1", skills=["hvac"])
    with store.transaction() as tx:
        tx.put_people("acme", [row])
    row.data["skills"].append("pos")
    with store.read() as tx:
        got = tx.person("acme", "p1")
        assert got is not None and got.data["skills"] == ["hvac"]
        got.data["skills"].append("x")
        assert tx.people("acme")[0].data["skills"] == ["hvac"]


# -- assignee load --------------------------------------------------------------------------


@pytest.fixture
def loaded(store: Store) -> Store:
    insert(
        store,
        ticket(id="a", assignee="e1", fields={"priority": "P1", "rating": 4, "urgent": True}),
        ticket(id="b", assignee="e1", fields={"priority": "P2", "rating": 4, "urgent": False}),
        ticket(id="c", assignee="e1", fields={"priority": "P1", "a.b": "dotted"}),
        ticket(id="d", assignee="e2", fields={}),
        ticket(id="e", assignee="e2", fields={"priority": None}),
        ticket(id="f", assignee="e2", fields={"priority": "P1", "rating": 2.5}),
        ticket(id="g", assignee="role:engineer", fields={"priority": "P3"}),
        ticket(id="h", assignee="e1", fields={"priority": "P1"}, closed=True),  # closed
        ticket(id="i", assignee=None, fields={"priority": "P1"}),  # unassigned
        ticket("beta", "a", assignee="e1", fields={"priority": "P9"}),
    )
    return store


def test_open_load_counts_open_assigned_tickets(loaded: Store) -> None:
    with loaded.read() as tx:
        assert tx.open_load("acme") == {
            "e1": {None: 3}, "e2": {None: 3}, "role:engineer": {None: 1}
        }
        assert tx.open_load("acme", "priority") == {
            "e1": {"P1": 2, "P2": 1},
            "e2": {None: 2, "P1": 1},
            "role:engineer": {"P3": 1},
        }
        assert tx.open_load("beta", "priority") == {"e1": {"P9": 1}}
        assert tx.open_load("nobody") == {} and tx.open_load("nobody", "priority") == {}


def test_open_load_of_some_assignees(loaded: Store) -> None:
    """Routing asks about its few candidates: per assignee, or (many) filtered from all."""
    many = ["e2", *(f"x{i}" for i in range(40)), "e1"]  # past the one-by-one limit
    with loaded.read() as tx:
        assert tx.open_load("acme", None, ["e2", "nobody"]) == {"e2": {None: 3}}
        assert tx.open_load("acme", "priority", ["e1"]) == {"e1": {"P1": 2, "P2": 1}}
        assert tx.open_load("acme", "priority", many) == {
            "e1": {"P1": 2, "P2": 1}, "e2": {None: 2, "P1": 1}
        }
        assert tx.open_load("acme", None, []) == {}
        assert tx.open_load("beta", "priority", ["e2"]) == {}


def test_open_load_values_are_text(loaded: Store) -> None:
    with loaded.read() as tx:
        assert tx.open_load("acme", "rating") == {
            "e1": {"4": 2, None: 1}, "e2": {None: 2, "2.5": 1}, "role:engineer": {None: 1}
        }
        assert tx.open_load("acme", "urgent")["e1"] == {"true": 1, "false": 1, None: 1}
        assert tx.open_load("acme", "a.b")["e1"] == {"dotted": 1, None: 2}
        assert tx.open_load("acme", "missing") == {
            "e1": {None: 3}, "e2": {None: 3}, "role:engineer": {None: 1}
        }
        with pytest.raises(ValueError):
            tx.open_load("acme", 'x"y')


# -- tenants --------------------------------------------------------------------------------


def test_tenants_never_see_each_others_delivery_and_directory(store: Store) -> None:
    """The same ids in two tenants: every read and write stays in its tenant."""
    with store.transaction() as tx:
        for tenant in ("acme", "beta"):
            tx.add_outbox([message(tenant, "m1", 1, payload={"t": tenant})])
            tx.add_outbox([outbox_row(tenant, "d1", 1, status="dead", payload={"t": tenant})])
            tx.put_people(tenant, [person(tenant, "p1", name=tenant)])
        tx.insert_ticket(ticket("acme", "t1", assignee="e1"))
    with store.transaction() as tx:
        assert tx.retry_outbox("beta", ["d1"], at(2)) == 1
        assert tx.remove_people("beta", ["p1"]) == 1
    with store.read() as tx:
        assert tx.outbox_message("acme", "d1") is not None
        assert tx.outbox_message("beta", "m1") == message("beta", "m1", 1, payload={"t": "beta"}, next_attempt_at=at(1))
        assert [r.payload for r in tx.inbox("beta", "u1")] == [{"t": "beta"}]
        assert [(r.id, r.status) for r in tx.outbox("acme")] == [("d1", "dead"), ("m1", "sent")]
        assert [(r.id, r.status) for r in tx.outbox("beta")] == [("d1", "pending"), ("m1", "sent")]
        assert tx.people("acme") == [person("acme", "p1", name="acme")] and tx.people("beta") == []
        assert (tx.directory_rev("acme"), tx.directory_rev("beta")) == (1, 2)
        assert tx.open_load("beta") == {} and tx.open_load("acme") == {"e1": {None: 1}}


# -- SQL stores only ------------------------------------------------------------------------


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(None), MemoryStore)
    assert isinstance(open_store("memory"), MemoryStore)
    store = open_store("sqlite://")
    try:
        assert isinstance(store, SqlStore)
        insert(store, ticket())
        assert get(store, "acme", "t1") == ticket()
    finally:
        store.close()


def test_migrations_match_the_tables(sql_url: str) -> None:
    assert upgrade(sql_url) == "0004"
    assert upgrade(sql_url) == "0004"  # idempotent
    store = SqlStore(sql_url, create=False)
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        store.close()


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def test_migration_0003_back_fills_the_outbox_and_goes_down_and_up(sql_url: str) -> None:
    from sqlalchemy import column, inspect, table

    _migrate(sql_url, "0002")
    old_outbox = table(
        "outbox",
        column("tenant_id"), column("id"), column("created_at", UTCDateTime()),
        column("kind"), column("ticket_id"), column("payload", json_type()),
        column("status"), column("attempts"), column("next_attempt_at", UTCDateTime()),
    )
    old = [
        ("sending", None), ("failed", at(7)), ("pending", None), ("sent", None), ("dead", at(8))
    ]
    engine = make_engine(sql_url)
    try:
        with engine.begin() as conn:
            conn.execute(old_outbox.insert(), [
                {"tenant_id": "acme", "id": f"o{n}", "created_at": at(n), "kind": "notify",
                 "ticket_id": "t1", "payload": {"n": n}, "status": status, "attempts": 1,
                 "next_attempt_at": due}
                for n, (status, due) in enumerate(old)
            ])
    finally:
        engine.dispose()
    assert upgrade(sql_url) == "0004"
    store = SqlStore(sql_url, create=False)
    try:
        with store.read() as tx:
            rows = tx.outbox("acme")
        assert [(r.status, r.next_attempt_at) for r in rows] == [
            ("pending", at(0)), ("pending", at(7)), ("pending", at(2)), ("sent", at(3)),
            ("dead", at(8)),
        ]
        assert {(r.channel, r.recipient, r.last_error, r.delivered_at) for r in rows} == {
            (None, None, None, None)
        }
        # Rows a worker held ('sending') or gave up on for now ('failed') are due again.
        assert claim(store, 5, 10, 60) == [("acme", "o0", 2), ("acme", "o2", 2)]
        with store.transaction() as tx:
            tx.put_people("acme", [person("acme", "p1")])
            tx.next_sequence("acme", "ref:retail:repair")
    finally:
        store.close()

    _migrate(sql_url, "0002", down=True)
    engine = make_engine(sql_url)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            assert "people" not in found.get_table_names()
            assert [c["name"] for c in found.get_columns("outbox")] == [
                c.name for c in old_outbox.c
            ]
            assert {i["name"]: i["column_names"] for i in found.get_indexes("outbox")} == {
                "ix_outbox_status": ["status", "created_at"],
                "ix_outbox_tenant": ["tenant_id", "created_at"],
            }
            assert {i["name"]: i["column_names"] for i in found.get_indexes("tickets")}[
                "ix_tickets_assignee"
            ] == ["tenant_id", "assignee"]
            assert conn.exec_driver_sql("SELECT count(*) FROM outbox").scalar() == len(old)
            names = conn.exec_driver_sql("SELECT name FROM sequences").scalars().all()
            assert names == ["ref:retail:repair"]  # the directory's revision went with it
    finally:
        engine.dispose()

    assert upgrade(sql_url) == "0004"
    store = SqlStore(sql_url, create=False)
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        with store.read() as tx:
            assert len(tx.outbox("acme")) == len(old) and tx.directory_rev("acme") == 0
    finally:
        store.close()


def test_two_processes_never_lose_an_update(sql_url: str) -> None:
    store = SqlStore(sql_url)
    try:
        insert(store, ticket(fields={"count": 0}))
        spawn = multiprocessing.get_context("spawn")
        start = spawn.Barrier(2)
        results = spawn.Queue()
        workers = [
            spawn.Process(target=hammer, args=(sql_url, "t1", 200, start, results))
            for _ in range(2)
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
        assert [o[2] for o in outcomes] == [[], []]  # every failure was a Conflict
        ok = sum(o[0] for o in outcomes)
        assert ok + sum(o[1] for o in outcomes) == 400
        final = get(store, "acme", "t1")
        assert final is not None
        assert final.version == 1 + ok
        assert final.fields["count"] == ok
    finally:
        store.close()


@pytest.fixture
def pg_store(tmp_path: Path) -> Iterator[Store]:
    if not os.environ.get(PG_URL_VAR):
        pytest.skip(NO_PG)
    with open_test_store("postgresql", tmp_path) as opened:
        yield opened


def test_postgres_concurrent_idempotency_claim_waits_for_the_winner(pg_store: Store) -> None:
    claimed = threading.Event()
    answer: list[str | None] = []

    def second() -> None:
        with pg_store.transaction() as tx:
            claimed.wait()
            answer.append(tx.claim_idempotency_key("acme", "alarm-1", "t2"))

    with pg_store.transaction() as tx:
        assert tx.claim_idempotency_key("acme", "alarm-1", "t1") is None
        thread = threading.Thread(target=second)
        thread.start()
        claimed.set()
        thread.join(timeout=0.5)
        assert thread.is_alive()  # blocked on our uncommitted key
    thread.join(timeout=10)
    assert answer == ["t1"]


def test_postgres_due_timers_skip_locked_rows(pg_store: Store) -> None:
    with pg_store.transaction() as tx:
        tx.add_timers([timer("acme", f"m{i}", i) for i in range(4)])
    taken: list[list[str]] = []
    first_holds = threading.Event()
    second_done = threading.Event()

    def worker() -> None:
        first_holds.wait()
        with pg_store.transaction() as tx:
            taken.append([t.id for t in tx.due_timers(at(10), 2)])
        second_done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    with pg_store.transaction() as tx:
        taken.append([t.id for t in tx.due_timers(at(10), 2)])
        first_holds.set()
        assert second_done.wait(10)
    thread.join()
    assert taken == [["m0", "m1"], ["m2", "m3"]]


def test_postgres_outbox_claims_skip_locked_rows(pg_store: Store) -> None:
    """Two workers claiming at once take disjoint rows, neither waiting for the other."""
    with pg_store.transaction() as tx:
        tx.add_outbox([outbox_row("acme", f"m{i}", i) for i in range(4)])
    taken: list[list[str]] = []
    first_holds = threading.Event()
    second_done = threading.Event()

    def worker() -> None:
        first_holds.wait()
        with pg_store.transaction() as tx:
            taken.append([r.id for r in tx.claim_outbox(at(10), 2, at(20))])
        second_done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    with pg_store.transaction() as tx:
        taken.append([r.id for r in tx.claim_outbox(at(10), 2, at(20))])
        first_holds.set()
        assert second_done.wait(10)  # not blocked on the rows this transaction holds
    thread.join()
    assert taken == [["m0", "m1"], ["m2", "m3"]]
    with pg_store.read() as tx:
        rows = tx.outbox("acme")
    assert [(r.id, r.attempts, r.next_attempt_at) for r in rows] == [
        (f"m{i}", 1, at(20)) for i in range(4)
    ]


def test_postgres_stores_aware_utc(pg_store: Store) -> None:
    insert(pg_store, ticket(created_at=T0.astimezone(timezone(timedelta(hours=-5)))))
    got = get(pg_store, "acme", "t1")
    assert got is not None and got.created_at == T0 and got.created_at.tzinfo == UTC


def test_sqlite_connections_are_set_up(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with store.engine.connect() as conn:
            pragmas = [
                conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            ]
        assert pragmas == ["wal", 1, 1, 10000]  # synchronous 1 is NORMAL
    finally:
        store.close()


def test_sqlite_reads_do_not_block_a_writer(tmp_path: Path) -> None:
    """A read transaction (plain BEGIN) holds no write lock; writes take it up front."""
    store = SqlStore(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        insert(store, ticket())
        with store.read() as reading:
            assert reading.get_ticket("acme", "t1") is not None
            insert(store, ticket(id="t2"))  # would wait 10 s on a held lock
            assert reading.get_ticket("acme", "t2") is None  # the read's snapshot
        assert get(store, "acme", "t2") is not None
    finally:
        store.close()


def test_sql_rows_read_back_through_core_and_the_other_way(sql_url: str) -> None:
    """The store converts values itself (quicker than SQLAlchemy's processors on SQLite):
    what it writes reads back through Core as written, and the other way round."""
    from sqlalchemy import insert as core_insert
    from sqlalchemy import select

    from runtime.store.sql import audit, events, tickets

    store = SqlStore(sql_url)
    try:
        mine = ticket(
            id="mine", state_entered_at=at(1).astimezone(timezone(timedelta(hours=5))),
            assignee=None, closed=True, fields={"note": "冷柜 ✓", "n": [1, 2.5, None]},
        )
        with store.transaction() as tx:
            tx.insert_ticket(mine)
            tx.add_events([event("acme", "mine", 1)])
            written = tx.add_audit("acme", [draft(1)])
        core = ticket(id="core", updated_at=at(2), tags=[], watchers=["w1", "w2"])
        with store.engine.begin() as conn:
            rows = {r.id: TicketRow(*r) for r in conn.execute(select(tickets))}
            assert [tuple(r) for r in conn.execute(select(events))] == [
                dataclasses.astuple(event("acme", "mine", 1))
            ]
            assert [tuple(r) for r in conn.execute(select(audit))] == [
                dataclasses.astuple(r) for r in written
            ]
            conn.execute(core_insert(tickets), [dataclasses.asdict(core)])
        assert rows == {"mine": mine}
        assert get(store, "acme", "core") == core
        with store.transaction() as tx:
            row = tx.get_ticket("acme", "core")
            assert row is not None
            row.state = "assigned"
            tx.update_ticket(row, 1)
        assert get(store, "acme", "core") == dataclasses.replace(core, state="assigned", version=2)
    finally:
        store.close()


def test_sqlite_in_memory_database_is_shared_by_threads() -> None:
    """`sqlite://` lives in one connection: every transaction, from any thread, uses it,
    one at a time."""
    store = open_store("sqlite://")
    try:
        insert(store, ticket(fields={"count": 0}))

        def work() -> None:
            for _ in range(25):
                with store.transaction() as tx:
                    row = tx.get_ticket("acme", "t1")
                    assert row is not None
                    row.fields["count"] += 1
                    tx.update_ticket(row, row.version)
                    tx.add_audit("acme", [draft(1)])
                with store.read() as tx:
                    assert tx.get_ticket("acme", "t1") is not None

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        final = get(store, "acme", "t1")
        assert final is not None and final.fields["count"] == 100 and final.version == 101
        assert verify(store, "acme") == []
    finally:
        store.close()


def _open_files(path: Path) -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if fd.resolve(strict=False) == path.resolve())


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_sqlite_close_releases_its_connections(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SqlStore(f"sqlite:///{path}")
    insert(store, ticket())
    with store.transaction() as tx, store.read() as reading:  # two connections at once
        tx.add_events([event("acme", "t1", 1)])
        assert reading.events("acme", "t1") == []
    with pytest.raises(Boom), store.transaction() as tx:
        tx.add_events([event("acme", "t1", 2)])
        raise Boom
    with store.read() as reading:
        assert [e.seq for e in reading.events("acme", "t1")] == [1]
    assert _open_files(path) >= 1
    store.close()
    assert _open_files(path) == 0
    with pytest.raises(RuntimeError):
        store.transaction().__enter__()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sqlite_store_after_fork_opens_its_own_connections(tmp_path: Path) -> None:
    """A forked child never uses the parent's SQLite connections (SQLite forbids it)."""
    store = SqlStore(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        insert(store, ticket())  # the parent now has an idle connection
        with store.read() as tx:
            parents = tx._cur
        pid = os.fork()
        if pid == 0:  # the child: report by exit status, never return into pytest
            code = 1
            try:
                with store.transaction() as tx:
                    fresh = tx._cur is not parents
                    tx.add_events([event("acme", "t1", 1)])
                code = 0 if fresh else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        with store.read() as tx:
            assert tx._cur is parents
            assert [e.seq for e in tx.events("acme", "t1")] == [1]
    finally:
        store.close()
