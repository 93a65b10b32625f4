"""`ticketflow assets …`: the assets (machines, rooms, equipment) QR codes name, each
opening its template's form prefilled."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.people_cmds import TenantOption, _runtime
from cli.runtime_cmds import DatabaseOption

assets_app = typer.Typer(help="Assets that QR codes name.", no_args_is_help=True)


@assets_app.command("import")
def assets_import(
    file: Annotated[str, typer.Argument(help="A YAML (`assets: [...]`) or CSV file.")],
    database: DatabaseOption = None,
    tenant: TenantOption = "default",
    pack: Annotated[
        list[str] | None,
        typer.Option("--pack", "-p", help="Publish these packs first (if changed)."),
    ] = None,
) -> None:
    """Add or replace assets by code; each names a template of the tenant's published
    packs that takes QR submissions. All or nothing: on any error nothing changes (exit 1)."""
    from dsl.diagnostics import render_text
    from runtime.api import Runtime
    from runtime.intake_assets import AssetError

    rt = _runtime(database, pack)
    assert isinstance(rt, Runtime)
    try:
        for path in pack or []:
            rt.publish(path, tenant=tenant)
        if not rt.current(tenant):
            typer.echo(f"error: tenant '{tenant}' has no published pack; pass --pack", err=True)
            raise typer.Exit(2)
        count = rt.import_assets(tenant, file)
    except AssetError as exc:
        typer.echo(render_text(exc.diagnostics), err=True)
        typer.echo(f"{len(exc.diagnostics)} problem(s); nothing imported", err=True)
        raise typer.Exit(1) from None
    finally:
        rt.close()
    typer.echo(f"{count} asset(s) written")


@assets_app.command("list")
def assets_list(database: DatabaseOption = None, tenant: TenantOption = "default") -> None:
    """Every asset, one JSON object per line, by code."""
    from runtime.api import Runtime

    rt = _runtime(database)
    assert isinstance(rt, Runtime)
    try:
        found = rt.assets(tenant)
    finally:
        rt.close()
    for asset in found:
        item = {
            "code": asset.code,
            "type": asset.type,
            "name": asset.name,
            "template": asset.template,
            "fields": asset.fields,
        }
        typer.echo(json.dumps({k: v for k, v in item.items() if v}, ensure_ascii=False))
