"""The `ticketflow` command: a thin shell over dsl, engine, runtime and builder_api."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from dsl.diagnostics import render_text
from dsl.sources import PathNotFound
from dsl.yaml_loader import DEFAULT_MAX_BYTES, LoadLimits
from engine.load import load_packs
from engine.schema import SCHEMA_PATH, write_schema

app = typer.Typer(
    name="ticketflow",
    help="Low-code engine for ticket and work-order processes.",
    no_args_is_help=True,
    add_completion=False,
)


class OutputFormat(StrEnum):
    """Output formats of `validate`."""

    text = "text"
    json = "json"


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Pack files or directories.")],
    output: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="text for people, json for tools.")
    ] = OutputFormat.text,
    max_bytes: Annotated[
        int, typer.Option(help="Largest file accepted, in bytes.")
    ] = DEFAULT_MAX_BYTES,
    warnings_as_errors: Annotated[
        bool, typer.Option("--strict", help="Fail on warnings too.")
    ] = False,
) -> None:
    """Validate definition packs: exit 0 when valid, 1 when any error, 2 on usage errors."""
    try:
        results = load_packs(paths, LoadLimits(max_bytes=max_bytes))
    except PathNotFound as exc:
        typer.echo(f"error: no such file or directory: {exc}", err=True)
        raise typer.Exit(2) from None
    if not results:
        typer.echo("error: no pack files (*.yaml) found", err=True)
        raise typer.Exit(2)
    failed = any(not r.ok or (warnings_as_errors and r.diagnostics) for r in results)
    if output is OutputFormat.json:
        payload = [
            {
                "pack": str(r.source.root),
                "valid": r.ok,
                "diagnostics": [d.as_json() for d in r.diagnostics],
            }
            for r in results
        ]
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        for r in results:
            if r.diagnostics:
                typer.echo(render_text(r.diagnostics, r.texts))
            errors = sum(d.is_error for d in r.diagnostics)
            warnings = len(r.diagnostics) - errors
            status = "ok" if r.ok else "FAILED"
            typer.echo(
                f"{r.source.root}: {status} ({errors} errors, {warnings} warnings)",
                err=False,
            )
    raise typer.Exit(1 if failed else 0)


@app.command()
def schema(
    out: Annotated[Path, typer.Option(help="File to write.")] = SCHEMA_PATH,
    check: Annotated[bool, typer.Option(help="Exit 1 if the file is out of date.")] = False,
) -> None:
    """Write the JSON Schema of the pack format (schemas/pack.schema.json)."""
    changed = write_schema(out, check_only=check)
    if check and changed:
        typer.echo(f"{out} is out of date; run `ticketflow schema`", err=True)
        raise typer.Exit(1)
    typer.echo(f"{out}: {'updated' if changed else 'up to date'}")


def main() -> None:
    """Entry point for `python -m cli.main`."""
    app(prog_name="ticketflow")


if __name__ == "__main__":
    main()
