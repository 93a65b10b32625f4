"""The `ticketflow` command: a thin shell over dsl, engine, runtime and builder_api."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cli.intake_cmds import assets_app
from cli.people_cmds import directory_app, outbox_app, publish, versions
from cli.runtime_cmds import audit_app, db_app, worker
from cli.serve_cmds import openapi, serve, token_app
from cli.simulate_cmd import simulate
from dsl.diagnostics import Diagnostic, render_text
from dsl.flow_writer import FlowFormatError, format_flow, write_flow
from dsl.sources import PACK_SUFFIXES, PathNotFound
from dsl.yaml_loader import DEFAULT_MAX_BYTES, LoadLimits
from dsl.yaml_roundtrip import RoundTripError, format_yaml
from dsl.yaml_writer import write_yaml
from engine.load import load_pack_path, load_packs
from engine.schema import SCHEMA_PATH, write_schema

app = typer.Typer(
    name="ticketflow",
    help="Low-code engine for ticket and work-order processes.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(directory_app, name="directory")
app.add_typer(outbox_app, name="outbox")
app.add_typer(assets_app, name="assets")
app.add_typer(token_app, name="token")
app.command()(serve)
app.command()(openapi)
app.command()(worker)
app.command()(simulate)
app.command()(publish)
app.command()(versions)


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
        typer.echo("error: no pack files (*.yaml, *.yml, *.flow) found", err=True)
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
                typer.echo(render_text(r.diagnostics, _with_sources(r.diagnostics, r.texts)))
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


def _with_sources(diagnostics: list[Diagnostic], texts: dict[str, str]) -> dict[str, str]:
    """Texts for the source excerpts, reading files that failed to parse (and so were not
    kept) when they are small enough to show."""
    out = dict(texts)
    for d in diagnostics:
        name = d.span.file if d.span else None
        if name is None or name in out or d.code in ("file-too-large", "yaml-encoding"):
            continue
        path = Path(name)
        if path.is_file() and path.stat().st_size <= DEFAULT_MAX_BYTES:
            out[name] = path.read_text(encoding="utf-8", errors="replace")
    return out


class TargetFormat(StrEnum):
    """What `convert` writes."""

    yaml = "yaml"
    dsl = "dsl"


def _pack_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            typer.echo(f"error: no such file or directory: {path}", err=True)
            raise typer.Exit(2)
        if path.is_file():
            files.append(path)
        else:
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in PACK_SUFFIXES))
    return files


def _formatted(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".flow":
        return format_flow(text, str(path))
    return format_yaml(text, str(path))


@app.command()
def fmt(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to format.")],
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing; exit 1 if a file would change.")
    ] = False,
) -> None:
    """Rewrite pack files (.yaml, .flow) in the canonical layout, keeping comments."""
    files = _pack_files(paths)
    changed: list[Path] = []
    failed = False
    for path in files:
        try:
            new = _formatted(path)
        except (FlowFormatError, RoundTripError) as exc:
            typer.echo(render_text(exc.diagnostics, {str(path): path.read_text("utf-8")}))
            failed = True
            continue
        if new != path.read_text(encoding="utf-8"):
            changed.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    for path in changed:
        typer.echo(f"{'would reformat' if check else 'reformatted'} {path}")
    typer.echo(f"{len(changed)} of {len(files)} files {'need' if check else 'got'} formatting")
    raise typer.Exit(1 if failed or (check and changed) else 0)


@app.command()
def convert(
    path: Annotated[Path, typer.Argument(help="A pack file or directory.")],
    to: Annotated[TargetFormat, typer.Option("--to", help="yaml or dsl.")],
) -> None:
    """Print a pack in the other syntax (YAML ↔ DSL) on standard output."""
    if not path.exists():
        typer.echo(f"error: no such file or directory: {path}", err=True)
        raise typer.Exit(2)
    result = load_pack_path(path)
    if result.pack is None or not result.ok:
        typer.echo(render_text(result.diagnostics, result.texts), err=True)
        raise typer.Exit(1)
    data = result.pack.model_dump(by_alias=True, exclude_defaults=True, mode="json")
    if to is TargetFormat.yaml:
        typer.echo(write_yaml(data), nl=False)
    else:
        typer.echo(write_flow(data), nl=False)


def main() -> None:
    """Entry point for `python -m cli.main`."""
    app(prog_name="ticketflow")


if __name__ == "__main__":
    main()
