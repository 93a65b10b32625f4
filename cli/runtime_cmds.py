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


ChannelsOption = Annotated[
    str | None,
    typer.Option(
        "--channels",
        "-c",
        help="Channel config (mail server, chat endpoints, secrets; see docs/delivery.md); "
        "default: $TICKETFLOW_CHANNELS, else only in-app messages are delivered.",
    ),
]


def channel_config(path: str | None) -> object | None:
    """The channel config at `path` (or $TICKETFLOW_CHANNELS); exit 2 with located errors."""
    from pathlib import Path

    from dsl.diagnostics import render_text
    from runtime.delivery import ChannelConfig, ChannelConfigError

    given = path or os.environ.get("TICKETFLOW_CHANNELS")
    if not given:
        return None
    try:
        return ChannelConfig.load(Path(given))
    except ChannelConfigError as exc:
        typer.echo(render_text(exc.diagnostics), err=True)
        raise typer.Exit(2) from None


def worker(
    database: DatabaseOption = None,
    channels: ChannelsOption = None,
    interval: Annotated[float, typer.Option(help="Seconds to sleep when nothing is due.")] = 1.0,
    batch: Annotated[int, typer.Option(help="Timers fired / messages sent per batch.")] = 100,
    once: Annotated[bool, typer.Option(help="Do what is due now, then exit.")] = False,
    lease: Annotated[
        float,
        typer.Option(
            help="Seconds a claimed batch of messages is this worker's (if it dies, "
            "others send them after that); at least batch × the HTTP timeout."
        ),
    ] = 300.0,
) -> None:
    """Fire due timers (delayed rules, scheduled events, SLA warnings, breaches and
    escalations) and deliver the outbox (email, webhooks, chat; retries with backoff).
    Start as many as you like on PostgreSQL: they share the work through row locks, each
    timer fires once and each message is claimed by one worker at a time. On SQLite run one."""
    import signal
    import time
    from datetime import timedelta

    from runtime.api import Runtime
    from runtime.store.sql import SqlStore

    url = database_url(database)
    config = channel_config(channels)
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
    rt = Runtime(SqlStore(url, create=False), channels=config)  # type: ignore[arg-type]
    fired = sent = failed = 0
    try:
        while not stopping:
            now_fired = rt.run_due(batch=batch, limit=batch)
            report = rt.drain_outbox(batch=batch, limit=batch, lease=timedelta(seconds=lease))
            fired, sent, failed = fired + now_fired, sent + report.sent, failed + report.dead
            for error in report.errors:
                typer.echo(f"outbox: {error}", err=True)
            idle = now_fired == 0 and report.claimed == 0
            if once and idle:
                break
            if idle:
                time.sleep(interval)
    finally:
        rt.close()
    typer.echo(f"fired {fired} timers, sent {sent} messages, {failed} dead")
