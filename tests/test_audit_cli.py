"""`ticketflow db upgrade` and `ticketflow audit verify` on a real database (a SQLite file,
PostgreSQL when TICKETFLOW_TEST_DATABASE_URL is set): an intact log passes, a changed,
a deleted middle and a deleted last audit row each fail and are named."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from runtime_fixtures import SERVICE, database_url
from typer.testing import CliRunner

from cli.main import app
from runtime.actors import Actor
from runtime.api import Runtime

runner = CliRunner()
CUSTOMER = Actor.of("c1", ["customer"])
DISPATCHER = Actor.of("d1", ["dispatcher"])
AGENT = Actor.of("a1", ["agent"])


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a fresh PostgreSQL schema."""
    with database_url(request.param, tmp_path) as found:
        yield found


@pytest.fixture
def worked(url: str) -> str:
    """The database after a few commands in two tenants; `default` has audit rows 1 to 6:
    publish, create, transition, update, comment, assign."""
    rt = Runtime.open(SERVICE, database_url=url)
    try:
        t = rt.create("repair", {"site": "S001"}, CUSTOMER, channel="web", title="Fridge warm")
        rt.transition(t.id, "assign", DISPATCHER, fields={"assignee": "e1"})
        rt.update(t.id, {"priority": "P2"}, AGENT)
        rt.comment(t.id, "on our way", AGENT)
        rt.assign(t.id, "e2", DISPATCHER)
        rt.publish(SERVICE, tenant="acme")
        rt.create("repair", {"site": "S002"}, Actor.of("c9", ["customer"], tenant="acme"))
        with rt.store.read() as tx:
            assert [r.action for r in tx.audit("default")] == [
                "publish", "create", "transition", "update", "comment", "assign",
            ]
    finally:
        rt.close()
    return url


def verify(url: str) -> Any:
    return runner.invoke(app, ["audit", "verify", "--database", url])


# -- tampering, with plain SQL beside the runtime -------------------------------------------


def execute(url: str, sql: str, **params: Any) -> list[Any]:
    """Run one statement with the database's own driver access, no runtime code."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            with conn:
                return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            result = c.execute(sa.text(sql), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def change_after(url: str, seq: int) -> None:
    (raw,) = execute(url, 'SELECT "after" FROM audit WHERE tenant_id = \'default\' AND seq = :s', s=seq)[0]
    after = raw if isinstance(raw, dict) else json.loads(raw)
    after["assignee"] = "mallory"
    cast = "CAST(:v AS jsonb)" if not url.startswith("sqlite") else ":v"
    execute(url, f'UPDATE audit SET "after" = {cast} WHERE tenant_id = \'default\' AND seq = :s',
            v=json.dumps(after), s=seq)


def delete_row(url: str, seq: int) -> None:
    execute(url, "DELETE FROM audit WHERE tenant_id = 'default' AND seq = :s", s=seq)


# -- tests ----------------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_and_names_the_revision(url: str) -> None:
    first = runner.invoke(app, ["db", "upgrade", "--database", url])
    assert first.exit_code == 0, first.output
    assert first.output.strip() == "database at revision 0004"
    again = runner.invoke(app, ["db", "upgrade", "--database", url])
    assert (again.exit_code, again.output) == (0, first.output)


def test_db_upgrade_after_work_keeps_the_revision(worked: str) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--database", worked])
    assert result.exit_code == 0, result.output
    assert "revision 0004" in result.output
    assert verify(worked).exit_code == 0


def test_intact_log_verifies(worked: str) -> None:
    result = verify(worked)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["acme: intact", "default: intact"]


def test_only_the_tenants_asked_for(worked: str) -> None:
    delete_row(worked, 3)
    result = runner.invoke(app, ["audit", "verify", "--database", worked, "--tenant", "acme"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["acme: intact"]


def test_changed_after_is_named(worked: str) -> None:
    change_after(worked, 4)
    result = verify(worked)
    assert result.exit_code == 1, result.output
    assert "default: row 4: content changed since it was written" in result.output.splitlines()
    assert "acme: intact" in result.output.splitlines()
    assert "row 5" not in result.output  # the rows after the changed one still chain


def test_deleted_middle_row_is_named(worked: str) -> None:
    delete_row(worked, 3)
    result = verify(worked)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "default: row 3 missing" in lines
    assert "default: row 4: does not follow the row before it" in lines
    assert "acme: intact" in lines


def test_deleted_last_row_is_named(worked: str) -> None:
    delete_row(worked, 6)
    result = verify(worked)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "default: the log ends at row 5 but its head records row 6" in lines
    assert "acme: intact" in lines


def test_changed_row_with_recomputed_hash_breaks_the_next_link(worked: str) -> None:
    """A forger who rehashes the changed row still breaks the chain at the row after it."""
    from runtime.audit import chain
    from runtime.store.sql import SqlStore

    change_after(worked, 4)
    store = SqlStore(worked, create=False)
    try:
        with store.read() as tx:
            row = tx.audit("default")[3]
    finally:
        store.close()
    execute(worked, "UPDATE audit SET hash = :h WHERE tenant_id = 'default' AND seq = 4", h=chain(row))
    result = verify(worked)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "default: row 5: does not follow the row before it" in lines
    assert not any("row 4" in line for line in lines)


def test_verify_without_schema_says_so(url: str) -> None:
    result = verify(url)
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "db upgrade" in result.output
