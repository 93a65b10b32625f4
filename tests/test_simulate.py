"""`ticketflow simulate`: scenarios of the example packs, expectations, bad scenarios.

Each scenario under `examples/scenarios/<pack>/` runs against `examples/workflows/<pack>/`;
its text timeline is snapshot-tested in `__snapshots__/test_simulate.ambr`. After changing
a scenario, the output format or the runtime on purpose, review and refresh them with
`pytest tests/test_simulate.py --snapshot-update`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from cli.main import app
from conftest import ROOT
from runtime.clock import SystemClock

SCENARIOS = ROOT / "examples" / "scenarios"
WORKFLOWS = ROOT / "examples" / "workflows"
CASES = sorted(p.relative_to(ROOT) for p in SCENARIOS.glob("*/*.yaml"))

runner = CliRunner()


def simulate(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["simulate", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def pack_of(scenario: Path) -> Path:
    return Path("examples") / "workflows" / scenario.parent.name


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Paths in the output are as given; run from the root so snapshots name them alike.
    monkeypatch.chdir(ROOT)


def test_every_example_pack_has_scenarios() -> None:
    packs = {p.name for p in WORKFLOWS.iterdir() if p.is_dir()}
    assert packs <= {c.parent.name for c in CASES}
    for case in CASES:
        assert {"lifecycle.yaml", "reopen.yaml", "denials.yaml", "sla.yaml", "special.yaml"} <= {
            p.name for p in (ROOT / case).parent.iterdir()
        }


@pytest.mark.parametrize("scenario", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_scenario_timeline(scenario: Path, snapshot: SnapshotAssertion) -> None:
    code, output = simulate(pack_of(scenario), scenario)
    assert output == snapshot
    assert code == 0, output


@pytest.mark.parametrize("scenario", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_scenario_steps_all_succeed_or_fail_as_expected(scenario: Path) -> None:
    # --strict: a step without `expect:` must succeed, so a lifecycle cannot break unseen.
    code, output = simulate(pack_of(scenario), scenario, "--strict")
    assert code == 0, output
    assert output.splitlines()[-1].startswith("PASSED")


def test_json_is_the_same_run_as_data() -> None:
    scenario = SCENARIOS / "retail_store" / "lifecycle.yaml"
    _, text = simulate(pack_of(scenario), scenario)
    code, output = simulate(pack_of(scenario), scenario, "--format", "json")
    assert code == 0
    report = json.loads(output)
    assert (report["pack"], report["timezone"], report["passed"]) == (
        "retail_store",
        "Asia/Shanghai",
        True,
    )
    assert report["start"] == "2026-03-02T09:00:00+08:00"
    kinds = [e["kind"] for e in report["entries"]]
    steps = YAML(typ="safe").load(scenario.read_text(encoding="utf-8"))["steps"]
    waits = sum(1 for step in steps if "wait" in step)
    assert (kinds.count("step"), kinds.count("wait")) == (len(steps) - waits, waits)
    for entry in report["entries"]:
        assert entry["headline"] in text
        for event in entry["events"]:
            assert event["text"] in text
    timer = next(e for e in report["entries"] if e["kind"] == "timer")
    assert (timer["at"], timer["offset"]) == ("2026-03-06T11:25:00+08:00", "+4d2h25m")
    assert [ev["kind"] for ev in timer["events"]] == ["rule", "transitioned"]
    assert [{k: v for k, v in t.items() if k != "id"} for t in report["tickets"]] == [
        {
            "name": "r1",
            "ref": "SR-202600001",
            "template": "store_repair",
            "state": "closed",
            "parent": None,
        },
    ]


def test_output_does_not_depend_on_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = SCENARIOS / "property" / "lifecycle.yaml"
    first = simulate(pack_of(scenario), scenario)

    def no_wall_clock(self: SystemClock) -> datetime:
        raise AssertionError("simulate read the wall clock")

    monkeypatch.setattr(SystemClock, "now", no_wall_clock)
    second = simulate(pack_of(scenario), scenario)
    assert second == first
    assert first[0] == 0


# -- expectations -------------------------------------------------------------------------

RETAIL = Path("examples/workflows/retail_store")

HEADER = """\
start: 2026-03-02T09:00:00+08:00
actors:
  li: {roles: [store_manager], attributes: {stores: [S0001]}}
  wang: {roles: [dispatcher]}
  zhao: {roles: [engineer]}
steps:
  - {actor: li, create: store_repair, fields: {store_no: S0001, category: hvac}, as: r1}
"""


def write(tmp_path: Path, steps: str, header: str = HEADER) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(header + steps, encoding="utf-8")
    return path


def test_failed_expectation_exits_1_and_names_the_step(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  - {actor: wang, transition: assign, ticket: r1, fields: {assignee: zhao}, expect: denied}\n"
        "  - {actor: li, transition: confirm, ticket: r1, expect: unavailable}\n",
    )
    code, output = simulate(RETAIL, path)
    assert code == 1
    assert "FAILED: expected denied, got ok" in output
    assert output.splitlines()[-2:] == [
        "FAILED: 3 steps, 0 timers fired, 1 refused; 2 expectations, 1 failed",
        "  step 2 (line 8): expected denied, got ok",
    ]


def test_strict_requires_unmarked_steps_to_succeed(tmp_path: Path) -> None:
    path = write(
        tmp_path, "  - {actor: li, transition: assign, ticket: r1, fields: {assignee: zhao}}\n"
    )
    assert simulate(RETAIL, path)[0] == 0
    code, output = simulate(RETAIL, path, "--strict")
    assert code == 1
    assert "step 2 (line 8): expected ok, got denied" in output


def test_denial_shows_code_message_and_field_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path, "  - {actor: li, create: store_repair, fields: {store_no: X1}, expect: invalid}\n"
    )
    code, output = simulate(RETAIL, path)
    assert code == 0
    assert "invalid: [invalid-fields] invalid values: store_no, category" in output
    assert "  - category: must have a value" in output
    assert "  - store_no: must match the pattern ^S\\d{4}$" in output
    assert "as expected (invalid)" in output


def test_step_on_a_ticket_that_was_never_opened_is_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  - {actor: zhao, create: store_repair, fields: {store_no: S0001, category: hvac}, as: r2}\n"
        "  - {actor: wang, transition: assign, ticket: r2, fields: {assignee: zhao}}\n",
    )
    code, output = simulate(RETAIL, path)
    assert code == 1
    assert (
        "step 3 (line 9): ticket 'r2' does not exist: the step that should open it failed" in output
    )


def test_links_name_tickets_opened_by_rules(tmp_path: Path) -> None:
    header = HEADER.replace(
        "zhao: {roles: [engineer]}", "zhao: {roles: [engineer]}\n  hq: {roles: [admin]}"
    )
    steps = "  - {actor: hq, update: {priority: P1}, ticket: r1, links: {i1: store_inspection}}\n"
    code, output = simulate(RETAIL, write(tmp_path, steps, header))
    assert code == 1
    assert "step 2 (line 9): no store_inspection ticket was opened to call 'i1'" in output


def test_after_fires_timers_at_their_due_instant(tmp_path: Path) -> None:
    steps = """\
  - {actor: wang, transition: assign, ticket: r1, fields: {assignee: zhao}}
  - {actor: zhao, transition: start, ticket: r1}
  - {actor: zhao, update: {engineer_notes: done}, ticket: r1}
  - actor: zhao
    transition: resolve
    ticket: r1
    fields: {signature: {image: "data:image/png;base64,AAAA", signed_by: li}}
  - {after: 4d, actor: li, update: {rating: 5}, ticket: r1, expect: denied}
"""
    code, output = simulate(RETAIL, write(tmp_path, steps), "--format", "json")
    assert code == 0, output
    entries = json.loads(output)["entries"]
    assert [(e["kind"], e["offset"]) for e in entries[-2:]] == [("timer", "+3d"), ("step", "+4d")]
    assert entries[-2]["headline"] == "timer: rule auto_close on r1"
    assert entries[-1]["error"]["code"] == "permission-denied"


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(
            "  - {actor: lu, comment: hello, ticket: r1}\n",
            ":8:13: error[unknown-actor]: unknown actor 'lu'",
            id="unknown-actor",
        ),
        pytest.param(
            "  - {actor: wang, transition: assign, ticket: r9}\n",
            ":8:47: error[unknown-ticket]: unknown ticket 'r9'",
            id="unknown-ticket",
        ),
        pytest.param(
            "  - {after: 10 mins, actor: wang, comment: hello, ticket: r1}\n",
            ":8:13: error[invalid-duration]: invalid duration '10 mins'",
            id="bad-duration",
        ),
        pytest.param(
            "  - {actor: wang, comment: hello, tickt: r1}\n",
            ":8:35: error[unknown-key]: unknown key 'tickt'",
            id="wrong-key",
        ),
        pytest.param(
            "  - {actor: wang, transition: asign, ticket: r1}\n",
            ":8:31: error[unknown-transition]: workflow 'repair' of r1 has no transition 'asign'",
            id="unknown-transition",
        ),
        pytest.param(
            "  - {at: 2026-03-01T09:00:00+08:00, actor: wang, comment: hello, ticket: r1}\n",
            ":8:10: error[time-goes-back]: Sun 2026-03-01 09:00 is before the previous step",
            id="time-goes-back",
        ),
        pytest.param(
            "  - {actor: wang, assign: zhao, ticket: r1, create: store_repair}\n",
            ":8:19: error[several-commands]: one command per step; found create and assign",
            id="two-commands",
        ),
    ],
)
def test_bad_scenario_is_located_and_exits_2(tmp_path: Path, steps: str, expected: str) -> None:
    path = write(tmp_path, steps)
    result = runner.invoke(app, ["simulate", str(RETAIL), str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith(f"{path}{expected}"), result.stderr
    assert result.stdout == ""


def test_unknown_role_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "", HEADER.replace("roles: [dispatcher]", "roles: [dispacher]"))
    result = runner.invoke(app, ["simulate", str(RETAIL), str(path)])
    assert result.exit_code == 2
    assert f"{path}:4:18: error[unknown-role]: the pack has no role 'dispacher'" in result.stderr
    assert "hint: did you mean 'dispatcher'?" in result.stderr


def test_invalid_pack_exits_2(tmp_path: Path) -> None:
    pack = tmp_path / "pack.yaml"
    pack.write_text("pack: broken\ntitle: Broken\ntimezone: Mars/Olympus\n", encoding="utf-8")
    result = runner.invoke(app, ["simulate", str(pack), str(write(tmp_path, ""))])
    assert result.exit_code == 2
    assert "unknown time zone 'Mars/Olympus'" in result.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", str(RETAIL), str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr


def test_scenario_time_without_offset_is_pack_time(tmp_path: Path) -> None:
    path = write(tmp_path, "", HEADER.replace("2026-03-02T09:00:00+08:00", "2026-03-02 09:00"))
    code, output = simulate(RETAIL, path, "--format", "json")
    assert code == 0
    report = json.loads(output)
    assert report["start"] == "2026-03-02T09:00:00+08:00"
    assert datetime.fromisoformat(report["entries"][0]["at"]).astimezone(UTC).hour == 1


def test_docs_show_the_current_output() -> None:
    # docs/simulate.md quotes the retail lifecycle scenario and its output verbatim.
    doc = (ROOT / "docs" / "simulate.md").read_text(encoding="utf-8")
    scenario = Path("examples/scenarios/retail_store/lifecycle.yaml")
    assert (ROOT / scenario).read_text(encoding="utf-8") in doc
    _, output = simulate(pack_of(scenario), scenario)
    quoted = doc.split("The scenario above prints:\n\n```text\n", 1)[1].split("\n```", 1)[0]
    assert quoted == output.rstrip("\n")


def test_bad_scenario_as_json(tmp_path: Path) -> None:
    path = write(tmp_path, "  - {actor: lu, comment: hello, ticket: r1}\n")
    result = runner.invoke(app, ["simulate", str(RETAIL), str(path), "--format", "json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["passed"] is False
    (diag,) = report["diagnostics"]
    assert {k: diag[k] for k in ("code", "line", "column", "pointer")} == {
        "code": "unknown-actor",
        "line": 8,
        "column": 13,
        "pointer": "/steps/1/actor",
    }


DISPATCH_SCENARIO = """\
title: Pool, claim race, transfer and delegation
start: 2026-03-03T10:00:00+08:00
actors:
  cust: {roles: [customer], locale: zh}
  sun: {roles: [engineer], teams: [south], skills: [hvac]}
  zhou: {roles: [engineer], teams: [south], skills: [hvac]}
  wu: {roles: [engineer], teams: [south], skills: [electrical]}
  wang: {roles: [engineer], teams: [north]}
  desk: {roles: [agent]}
people:
  - {id: wang, skills: {hvac: 4, electrical: 2}, location: {lat: 31.24, lon: 121.48}}
  - {id: chen, roles: [engineer], teams: [north], skills: {electrical: 1}, location: {lat: 31.241, lon: 121.481}}
steps:
  - {actor: cust, create: pooled, fields: {category: hvac}, as: p1}
  - {actor: wu, claim: true, ticket: p1, expect: denied}
  - {after: 1m, actor: sun, claim: true, ticket: p1}
  - {actor: zhou, claim: true, ticket: p1, expect: conflict}
  - {actor: cust, create: repair, fields: {category: hvac, site: {lat: 31.2405, lon: 121.4805}}, as: r1}
  - {actor: wang, delegate: chen, ticket: r1, comment: off sick tomorrow}
  - {actor: desk, transfer: south, ticket: r1, comment: across the river}
"""


def test_claim_transfer_and_delegate_steps(tmp_path: Path) -> None:
    path = tmp_path / "dispatch.yaml"
    path.write_text(DISPATCH_SCENARIO, encoding="utf-8")
    code, output = simulate(ROOT / "tests" / "packs" / "dispatch", path, "--strict")
    assert code == 0, output
    assert "routed: chosen: wang" in output
    assert "wu: claim p1" in output and "lacks skill hvac" in output
    assert "claimed by sun" in output
    assert 'wang: delegate r1 to chen "off sick tomorrow"' in output
    assert "desk: transfer r1 to south" in output
    assert output.splitlines()[-1].startswith("PASSED")
