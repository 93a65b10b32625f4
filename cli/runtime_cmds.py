"""`ticketflow db …` and `ticketflow audit …`: the database behind the runtime."""

from __future__ import annotations

import os
from typing import Annotated

import typer

DATABASE_HELP = "SQLAlchemy URL, e.g. sqlite:///tickets.db or postgresql+psycopg://…"
DEFAULT_URL = "sqlite:///tickets.db"

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", "-d", help=DATABASE_HELP + " (default: $TICKETFLOW_DATABASE_URL)"),
]


def database_url(given: str | None) -> str:
    return given or os.environ.get("TICKETFLOW_DATABASE_URL") or DEFAULT_URL


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOption = None) -> None:
    """Create or migrate the database schema to the newest revision."""
    from runtime.store.sql import upgrade

    revision = upgrade(database_url(database))
    typer.echo(f"database at revision {revision}")


@audit_app.command("verify")
def audit_verify(
    database: DatabaseOption = None,
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", "-t", help="Only these tenants.")
    ] = None,
) -> None:
    """Check every tenant's hash chain: exit 0 when intact, 1 when a row was changed,
    inserted or deleted, 2 when there is no ticketflow database at the URL."""
    from runtime.audit import verify
    from runtime.store.sql import SqlStore

    url = database_url(database)
    missing = _missing_schema(url)
    if missing:
        typer.echo(f"error: {missing}; run `ticketflow db upgrade --database {url}`", err=True)
        raise typer.Exit(2)
    store = SqlStore(url, create=False)
    try:
        with store.read() as tx:
            tenants = tenant or tx.audit_tenants()
        broken = 0
        for name in tenants:
            problems = verify(store, name)
            for problem in problems:
                typer.echo(f"{name}: {problem}")
            if problems:
                broken += 1
            else:
                typer.echo(f"{name}: intact")
    finally:
        store.close()
    raise typer.Exit(1 if broken else 0)


def _missing_schema(url: str) -> str | None:
    """Why there is no audit log at `url`, or None. Never creates a database file."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    in_file = parsed.database not in (None, "", ":memory:")
    on_disk = parsed.get_backend_name() == "sqlite" and in_file
    if on_disk and not os.path.exists(str(parsed.database)):
        return f"no database file {parsed.database}"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
    except sa.exc.SQLAlchemyError as exc:
        reason = exc.args[0] if exc.args else exc
        return f"cannot open the database: {exc.__class__.__name__}: {reason}"
    finally:
        engine.dispose()
    if not {"audit", "audit_heads"} <= tables:
        return "the database has no ticketflow schema"
    return None


def worker(
    database: DatabaseOption = None,
    interval: Annotated[float, typer.Option(help="Seconds to sleep when nothing is due.")] = 1.0,
    batch: Annotated[int, typer.Option(help="Timers fired per transaction.")] = 100,
    once: Annotated[bool, typer.Option(help="Fire what is due now, then exit.")] = False,
) -> None:
    """Fire due timers (delayed rules, scheduled events, SLA warnings, breaches and
    escalations). Start as many as you like on PostgreSQL: they share the work through row
    locks and each timer fires once. On SQLite run one."""
    import signal
    import time

    from runtime.api import Runtime
    from runtime.store.sql import SqlStore

    url = database_url(database)
    missing = _missing_schema(url)
    if missing:
        typer.echo(f"error: {missing}; run `ticketflow db upgrade --database {url}`", err=True)
        raise typer.Exit(2)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True  # finish the batch in hand, then leave

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rt = Runtime(SqlStore(url, create=False))
    total = 0
    try:
        while not stopping:
            fired = rt.run_due(batch=batch, limit=batch)
            total += fired
            if once and fired == 0:
                break
            if fired == 0:
                time.sleep(interval)
    finally:
        rt.close()
    typer.echo(f"fired {total} timers")
