"""The `ticketflow` command: exit codes and output formats."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from conftest import EXAMPLES, MINIMAL

runner = CliRunner()


def test_validate_examples_exits_zero() -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert "FAILED" not in result.output


def test_validate_reports_errors_with_location_and_hint(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(MINIMAL.replace("workflow: basic", "workflow: basik"), encoding="utf-8")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"{path}:10:15: error[unknown-reference]: unknown workflow 'basik'"
    assert "  hint: did you mean 'basic'?" in lines


def test_validate_json_format(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(MINIMAL.replace("Asia/Shanghai", "Mars/Olympus"), encoding="utf-8")
    result = runner.invoke(app, ["validate", "--format", "json", str(path)])
    assert result.exit_code == 1
    (report,) = json.loads(result.output)
    assert report["valid"] is False
    (diag,) = report["diagnostics"]
    assert {k: diag[k] for k in ("code", "line", "column", "file", "pointer")} == {
        "code": "unknown-timezone",
        "line": 3,
        "column": 11,
        "file": str(path),
        "pointer": "/timezone",
    }


def test_usage_errors_exit_two(tmp_path: Path) -> None:
    assert runner.invoke(app, ["validate", str(tmp_path / "missing.yaml")]).exit_code == 2
    assert runner.invoke(app, ["validate"]).exit_code == 2
    assert runner.invoke(app, ["validate", "--format", "xml", str(EXAMPLES)]).exit_code == 2
    assert runner.invoke(app, ["validate", str(tmp_path)]).exit_code == 2  # no yaml inside


def test_size_limit_option(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    result = runner.invoke(app, ["validate", "--max-bytes", "100", str(path)])
    assert result.exit_code == 1 and "file-too-large" in result.output


def test_strict_fails_on_warnings(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(MINIMAL.replace("{en: Repair, zh: 报修}", "{en: Repair}"), encoding="utf-8")
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
    assert runner.invoke(app, ["validate", "--strict", str(path)]).exit_code == 1


def test_schema_check_detects_drift(tmp_path: Path) -> None:
    out = tmp_path / "pack.schema.json"
    assert runner.invoke(app, ["schema", "--out", str(out)]).exit_code == 0
    assert runner.invoke(app, ["schema", "--out", str(out), "--check"]).exit_code == 0
    out.write_text("{}", encoding="utf-8")
    assert runner.invoke(app, ["schema", "--out", str(out), "--check"]).exit_code == 1


def test_parse_errors_show_the_source_line(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text("pack: x\ntimezone:UTC\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "    2 | timezone:UTC" in result.output


def test_fmt_check_and_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(
        MINIMAL.replace(
            "    title: {en: Repair", "      # the template's name\n    title: {en: Repair"
        ),
        encoding="utf-8",
    )
    assert runner.invoke(app, ["fmt", "--check", str(path)]).exit_code == 1
    assert runner.invoke(app, ["fmt", str(path)]).exit_code == 0
    formatted = path.read_text(encoding="utf-8")
    assert "    # the template's name\n    title:" in formatted
    assert runner.invoke(app, ["fmt", "--check", str(path)]).exit_code == 0
    assert runner.invoke(app, ["fmt", str(path)]).exit_code == 0
    assert path.read_text(encoding="utf-8") == formatted


def test_fmt_reports_unparseable_files(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text("a: [1,\n", encoding="utf-8")
    result = runner.invoke(app, ["fmt", str(path)])
    assert result.exit_code == 1 and "yaml-syntax" in result.output
    assert path.read_text(encoding="utf-8") == "a: [1,\n"


def test_convert_to_dsl_and_back_gives_the_same_pack(tmp_path: Path) -> None:
    pack = EXAMPLES / "retail_store"
    dsl = runner.invoke(app, ["convert", str(pack), "--to", "dsl"])
    assert dsl.exit_code == 0
    flow = tmp_path / "retail.flow"
    flow.write_text(dsl.output, encoding="utf-8")
    assert runner.invoke(app, ["validate", str(flow)]).exit_code == 0
    yaml_back = runner.invoke(app, ["convert", str(flow), "--to", "yaml"])
    direct = runner.invoke(app, ["convert", str(pack), "--to", "yaml"])
    assert yaml_back.exit_code == 0 and yaml_back.output == direct.output


def test_convert_refuses_an_invalid_pack(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(MINIMAL.replace("workflow: basic", "workflow: basik"), encoding="utf-8")
    result = runner.invoke(app, ["convert", str(path), "--to", "dsl"])
    assert result.exit_code == 1
