"""`ticketflow assets …`: the assets (machines, rooms, equipment) QR codes name, each
opening its template's form prefilled."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.people_cmds import TenantOption, _runtime, run_import
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
    from runtime.intake_assets import AssetError

    count = run_import(
        database, tenant, pack, lambda rt: rt.import_assets(tenant, file), AssetError
    )
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
