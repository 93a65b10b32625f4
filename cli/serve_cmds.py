"""`ticketflow serve` (the HTTP API under uvicorn) and `ticketflow token …`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.runtime_cmds import DatabaseOption, database_url

EXAMPLES_ROOT = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = EXAMPLES_ROOT / "workflows"

token_app = typer.Typer(help="API tokens of the HTTP API.", no_args_is_help=True)

TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="Tenant.")]


def _example_packs() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.is_dir()) if EXAMPLES.is_dir() else []


def serve(
    packs: Annotated[
        list[Path] | None,
        typer.Argument(help="Packs to publish at start (default: the example packs)."),
    ] = None,
    database: DatabaseOption = None,
    tenant: TenantOption = "default",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    trust_gateway: Annotated[
        bool,
        typer.Option(help="Take the caller from X-Ticketflow-Tenant/-User/-Roles headers."),
    ] = False,
    gateway_secret: Annotated[
        str | None,
        typer.Option(
            envvar="TICKETFLOW_GATEWAY_SECRET",
            help="With --trust-gateway: the X-Ticketflow-Gateway-Secret the gateway sends.",
        ),
    ] = None,
    intake: Annotated[
        Path | None,
        typer.Option(
            help="Intake channels (docs/intake.md); default with the example packs: "
            "examples/intake.yaml."
        ),
    ] = None,
    assets: Annotated[
        list[Path] | None,
        typer.Option(
            help="Asset files to import at start (repeat); default with the example "
            "packs: examples/assets/."
        ),
    ] = None,
    captcha_url: Annotated[
        str | None,
        typer.Option(help="Verify URL of the captcha service (hCaptcha, Turnstile, reCAPTCHA)."),
    ] = None,
    captcha_secret: Annotated[
        str | None, typer.Option(envvar="TICKETFLOW_CAPTCHA_SECRET", help="Its secret key.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the builder and runtime HTTP API (OpenAPI at /schema)."""
    import uvicorn

    from builder_api.app import ApiSettings, create_app
    from builder_api.captcha import site_verify
    from runtime.api import Runtime
    from runtime.intake import IntakeConfig, IntakeConfigError

    examples = not packs
    chosen = packs if packs else _example_packs()
    if examples:
        intake = intake or EXAMPLES_ROOT / "intake.yaml"
        assets = assets if assets is not None else sorted((EXAMPLES_ROOT / "assets").glob("*.*"))
    try:
        config = IntakeConfig.load(intake) if intake else None
    except IntakeConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    url = database_url(database)
    rt = Runtime.open(chosen, url, tenant=tenant, intake=config)
    for path in assets or ():
        rt.import_assets(tenant, path)
    if not rt.tokens(tenant) and not trust_gateway:
        typer.echo(
            f"no API tokens for tenant '{tenant}' yet: create one with\n"
            f"  ticketflow token issue --database {url} --tenant {tenant} "
            "--user admin --role ticketflow:admin",
            err=True,
        )
    if (captcha_url is None) != (captcha_secret is None):
        typer.echo("error: --captcha-url and --captcha-secret go together", err=True)
        raise typer.Exit(2)
    settings = ApiSettings(
        trust_gateway=trust_gateway,
        gateway_secret=gateway_secret,
        captcha=site_verify(captcha_url, captcha_secret)
        if captcha_url and captcha_secret
        else None,
    )
    typer.echo(
        f"serving {len(chosen)} pack(s) on {url} at http://{host}:{port} (/schema)", err=True
    )
    try:
        uvicorn.run(create_app(rt, settings), host=host, port=port, log_level=log_level)
    finally:
        rt.close()


def openapi(
    out: Annotated[Path | None, typer.Option(help="File to write.")] = None,
    check: Annotated[bool, typer.Option(help="Exit 1 if the file is out of date.")] = False,
) -> None:
    """Write the OpenAPI document of the HTTP API (schemas/openapi.json)."""
    from builder_api.openapi import OPENAPI_PATH, write_openapi

    path = out or OPENAPI_PATH
    changed = write_openapi(path, check_only=check)
    if check and changed:
        typer.echo(f"{path} is out of date; run `ticketflow openapi`", err=True)
        raise typer.Exit(1)
    typer.echo(f"{path}: {'updated' if changed else 'up to date'}")


@token_app.command("issue")
def token_issue(
    user: Annotated[str, typer.Option(help="User id the token acts as.")],
    role: Annotated[
        list[str],
        typer.Option("--role", "-r", help="Role (repeat); ticketflow:admin for builders."),
    ],
    database: DatabaseOption = None,
    tenant: TenantOption = "default",
    name: Annotated[str, typer.Option(help="What the token is for.")] = "",
    expires: Annotated[
        datetime | None, typer.Option(help="Expiry (ISO 8601, UTC when no offset).")
    ] = None,
) -> None:
    """Issue a token and print its secret (shown this once)."""
    from datetime import UTC

    from runtime.api import Runtime
    from runtime.records import InvalidCommand

    rt = Runtime.open((), database_url(database))
    try:
        when = expires.replace(tzinfo=UTC) if expires and expires.tzinfo is None else expires
        issued = rt.issue_token(tenant, user, role, name, when)
    except InvalidCommand as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    finally:
        rt.close()
    typer.echo(issued.secret)
    typer.echo(f"token {issued.row.id} for {user} ({', '.join(issued.row.roles)})", err=True)


@token_app.command("list")
def token_list(database: DatabaseOption = None, tenant: TenantOption = "default") -> None:
    """The tenant's tokens (never their secrets)."""
    from runtime.api import Runtime

    rt = Runtime.open((), database_url(database))
    try:
        for row in rt.tokens(tenant):
            state = "revoked" if row.revoked_at else "live"
            roles = ",".join(row.roles)
            typer.echo(f"{row.id}\t{row.user_id}\t{roles}\t{state}\t{row.name}")
    finally:
        rt.close()


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (from `token list`).")],
    database: DatabaseOption = None,
    tenant: TenantOption = "default",
) -> None:
    """Revoke a token: it stops working at once (within 5 s on other servers)."""
    from runtime.api import Runtime
    from runtime.records import NotFound

    rt = Runtime.open((), database_url(database))
    try:
        rt.revoke_token(tenant, token_id)
    except NotFound as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        rt.close()
    typer.echo(f"revoked {token_id}")
