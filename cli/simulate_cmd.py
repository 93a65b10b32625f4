"""`ticketflow simulate PACK SCENARIO`: try a workflow on a controlled clock before
publishing it."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from dsl.diagnostics import render_text as render_diagnostics
from runtime.simulate import BadInput, render_text, report_json
from runtime.simulate import simulate as run_scenario


class SimulateFormat(StrEnum):
    """Output formats of `simulate`."""

    text = "text"
    json = "json"


def simulate(
    pack: Annotated[Path, typer.Argument(help="The pack: a file or a directory of files.")],
    scenario: Annotated[Path, typer.Argument(help="The scenario file (YAML).")],
    output: Annotated[
        SimulateFormat, typer.Option("--format", "-f", help="text for people, json for tools.")
    ] = SimulateFormat.text,
    strict: Annotated[
        bool, typer.Option("--strict", help="A step without 'expect:' must succeed.")
    ] = False,
) -> None:
    """Run a scenario of timed commands against a pack on an in-memory store and print the
    timeline. Exit 0 when every expectation holds, 1 when one fails, 2 when the pack or the
    scenario is invalid."""
    for path in (pack, scenario):
        if not path.exists():
            typer.echo(f"error: no such file or directory: {path}", err=True)
            raise typer.Exit(2)
    result = run_scenario(pack, scenario, strict=strict)
    if isinstance(result, BadInput):
        if output is SimulateFormat.json:
            payload = {"passed": False, "diagnostics": [d.as_json() for d in result.diagnostics]}
            typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        else:
            typer.echo(render_diagnostics(result.diagnostics, result.texts), err=True)
        raise typer.Exit(2)
    if output is SimulateFormat.json:
        typer.echo(json.dumps(report_json(result), ensure_ascii=False, indent=2, default=str))
    else:
        typer.echo(render_text(result))
    raise typer.Exit(0 if result.ok else 1)
