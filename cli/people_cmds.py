"""`ticketflow directory …` and `ticketflow outbox …`: the staff directory routing reads,
and the messages waiting to go out (or given up on)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from cli.runtime_cmds import DatabaseOption, _missing_schema, database_url

directory_app = typer.Typer(help="People: agents, teams, skills, shifts.", no_args_is_help=True)
outbox_app = typer.Typer(help="Messages to deliver, and dead letters.", no_args_is_help=True)

TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="Tenant.")]
T = TypeVar("T")


def _runtime(database: str | None, packs: list[str] | None = None) -> object:
    from runtime.api import Runtime

    url = database_url(database)
    missing = _missing_schema(url)
    if missing and not packs:
        typer.echo(f"error: {missing}; run `ticketflow db upgrade --database {url}`", err=True)
        raise typer.Exit(2)
    return Runtime.open([], url)


def run_import(
    database: str | None,
    tenant: str,
    packs: list[str] | None,
    load: Callable[[Any], T],
    refused: type[Exception],
) -> T:
    """An all-or-nothing import: publish `packs` (if changed), then `load(runtime)`. When it
    raises `refused`, print its located diagnostics and exit 1; with no pack published for
    the tenant, exit 2."""
    from dsl.diagnostics import render_text

    rt: Any = _runtime(database, packs)
    try:
        for path in packs or []:
            rt.publish(path, tenant=tenant)
        if not rt.current(tenant):
            typer.echo(f"error: tenant '{tenant}' has no published pack; pass --pack", err=True)
            raise typer.Exit(2)
        return load(rt)
    except refused as exc:
        diagnostics = getattr(exc, "diagnostics", ())
        typer.echo(render_text(list(diagnostics)), err=True)
        typer.echo(f"{len(diagnostics)} problem(s); nothing imported", err=True)
        raise typer.Exit(1) from None
    finally:
        rt.close()


@directory_app.command("import")
def directory_import(
    file: Annotated[str, typer.Argument(help="A YAML (`people: [...]`) or CSV file.")],
    database: DatabaseOption = None,
    tenant: TenantOption = "default",
    pack: Annotated[
        list[str] | None,
        typer.Option("--pack", "-p", help="Publish these packs first (if changed)."),
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Remove people not in the file (a full sync).")
    ] = False,
) -> None:
    """Load people; every team, skill, role and calendar they name must exist in the
    tenant's published packs. All or nothing: on any error nothing changes (exit 1)."""
    from engine.people import DirectoryError

    result = run_import(
        database,
        tenant,
        pack,
        lambda rt: rt.import_people(tenant, file, replace=replace),
        DirectoryError,
    )
    typer.echo(f"{result.written} people written, {result.removed} removed (revision {result.rev})")


@directory_app.command("list")
def directory_list(database: DatabaseOption = None, tenant: TenantOption = "default") -> None:
    """Everyone in the directory, one JSON object per line."""
    from runtime.api import Runtime

    rt = _runtime(database)
    assert isinstance(rt, Runtime)
    try:
        for spec in rt.people(tenant).people.values():
            typer.echo(
                json.dumps(spec.model_dump(mode="json", exclude_defaults=True), ensure_ascii=False)
            )
    finally:
        rt.close()


@outbox_app.command("list")
def outbox_list(
    database: DatabaseOption = None,
    tenant: TenantOption = "default",
    status: Annotated[str | None, typer.Option(help="pending, sent or dead.")] = None,
) -> None:
    """Messages, oldest first: id, status, attempts, channel, recipient, last error."""
    from runtime.api import Runtime
    from runtime.records import InvalidCommand

    rt = _runtime(database)
    assert isinstance(rt, Runtime)
    try:
        rows = rt.outbox(tenant, status)
    except InvalidCommand as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    finally:
        rt.close()
    for row in rows:
        where = row.recipient or row.payload.get("url") or "-"
        error = f"  {row.last_error}" if row.last_error else ""
        typer.echo(
            f"{row.id}  {row.status:7}  {row.attempts}  {row.channel or row.kind}  {where}{error}"
        )
    typer.echo(f"{len(rows)} message(s)")


@outbox_app.command("retry")
def outbox_retry(
    ids: Annotated[list[str], typer.Argument(help="Ids of dead messages.")],
    database: DatabaseOption = None,
    tenant: TenantOption = "default",
) -> None:
    """Send dead messages again (their attempts start over); exit 1 if some id was not
    a dead message of the tenant."""
    from runtime.api import Runtime

    rt = _runtime(database)
    assert isinstance(rt, Runtime)
    try:
        count = rt.retry_outbox(tenant, ids)
    finally:
        rt.close()
    typer.echo(f"{count} of {len(ids)} message(s) queued again")
    if count < len(ids):
        raise typer.Exit(1)


def publish(
    pack: Annotated[str, typer.Argument(help="The pack: a directory or file.")],
    database: DatabaseOption = None,
    tenant: TenantOption = "default",
    migrate: Annotated[
        list[str] | None,
        typer.Option(
            "--migrate",
            "-m",
            help="OLD=NEW: move open tickets from a state the new version drops (repeatable).",
        ),
    ] = None,
) -> None:
    """Publish a pack as a new immutable version of the tenant's pack; publishing an
    unchanged pack does nothing. Exit 1 when refused (errors, or open tickets in states
    the new version drops without --migrate), 2 on a bad argument."""
    from runtime.api import Runtime
    from runtime.records import PublishRefused

    moves: dict[str, str] = {}
    for item in migrate or []:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            typer.echo(f"error: --migrate takes OLD=NEW, not '{item}'", err=True)
            raise typer.Exit(2)
        moves[old] = new
    rt = Runtime.open([], database_url(database))
    try:
        before = rt.store_heads(tenant)
        row = rt.publish(pack, tenant=tenant, migrate=moves or None)
    except PublishRefused as exc:
        typer.echo(f"refused: {exc.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        rt.close()
    if before.get(row.pack) == row.version:
        typer.echo(f"{row.pack} is unchanged at version {row.version}")
    else:
        typer.echo(f"published {row.pack} version {row.version}")


def versions(
    pack: Annotated[str, typer.Argument(help="The pack's name, e.g. retail_store.")],
    database: DatabaseOption = None,
    tenant: TenantOption = "default",
) -> None:
    """The published versions of a pack: number, when, by whom, digest."""
    from runtime.api import Runtime

    rt = _runtime(database)
    assert isinstance(rt, Runtime)
    try:
        rows = rt.versions(tenant, pack)
    finally:
        rt.close()
    if not rows:
        typer.echo(f"no published version of '{pack}' for tenant '{tenant}'", err=True)
        raise typer.Exit(1)
    for row in rows:
        typer.echo(
            f"{row.version}  {row.published_at.isoformat()}  {row.published_by}  {row.digest[:12]}"
        )
