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
    inserted or deleted."""
    from runtime.audit import verify
    from runtime.store.sql import SqlStore

    store = SqlStore(database_url(database), create=False)
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
