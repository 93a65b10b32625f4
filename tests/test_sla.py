"""SLA clocks end to end: scenario timelines (snapshots) and exact due times."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from runtime_fixtures import STORE_KINDS, counter_ids, database_url
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from cli.main import app
from conftest import ROOT
from runtime.actors import Actor
from runtime.api import Runtime
from runtime.clock import ManualClock

PACK = Path("tests/packs/sla_desk")
SCENARIOS = sorted((ROOT / "tests" / "scenarios" / "sla").glob("*.yaml"))
BERLIN = ZoneInfo("Europe/Berlin")
MIA = Actor.of("mia", ["requester"])
ALI = Actor.of("ali", ["agent"])


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_sla_scenario(
    scenario: Path, snapshot: SnapshotAssertion, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["simulate", str(PACK), str(scenario.relative_to(ROOT))])
    assert result.exit_code == 0, result.output
    assert result.output == snapshot


@pytest.fixture(params=STORE_KINDS)
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Runtime, ManualClock]]:
    clock = ManualClock(berlin("2026-03-01T00:00"))
    with database_url(request.param, tmp_path) as url:
        rt = Runtime.open(ROOT / PACK, database_url=url, clock=clock, new_id=counter_ids())
        # Escalations notify roles: the directory says who holds them.
        rt.put_people(
            "default",
            [{"id": "lea", "roles": ["lead"]}, {"id": "dir", "roles": ["director"]},
             {"id": "max", "roles": ["manager"]}],
        )  # fmt: skip
        try:
            yield rt, clock
        finally:
            rt.close()


def clocks(rt: Runtime, ticket_id: str) -> dict[str, Any]:
    return {c.metric: c for c in rt.sla(ticket_id, ALI)}


def run_until(
    rt: Runtime, clock: ManualClock, until: datetime, step: timedelta = timedelta(minutes=30)
) -> None:
    while clock.now() < until:
        clock.advance(min(step, until - clock.now()))
        rt.run_due()


def test_due_skips_the_easter_holidays(desk: tuple[Runtime, ManualClock]) -> None:
    rt, clock = desk
    clock.set(berlin("2026-04-02T16:00"))
    t = rt.create("incident", {"summary": "Payroll export fails", "priority": "P1"}, MIA)
    c = clocks(rt, t.id)
    # 1 working hour on Thursday, Good Friday to Easter Monday off, 3 hours on Tuesday.
    assert c["resolution"].due == berlin("2026-04-07T12:00")
    assert c["first_response"].due == berlin("2026-04-02T16:30")
    run_until(rt, clock, berlin("2026-04-07T11:59"))
    assert clocks(rt, t.id)["resolution"].state == "warning"
    run_until(rt, clock, berlin("2026-04-07T12:01"))
    c = clocks(rt, t.id)
    assert c["resolution"].state == "breached"
    assert rt.get(t.id, ALI).assignee == "role:manager"
    kinds = [e.kind for e in rt.timeline(t.id, ALI)]
    assert kinds.count("sla.breached") == 2  # first response and resolution, once each
    assert kinds.count("sla.warning") == 2


def test_pause_shifts_the_due_time(desk: tuple[Runtime, ManualClock]) -> None:
    rt, clock = desk
    clock.set(berlin("2026-03-02T09:00"))
    t = rt.create("incident", {"summary": "PSU", "priority": "P2"}, MIA)
    clock.advance(timedelta(minutes=30))
    rt.transition(t.id, "start", ALI)
    assert clocks(rt, t.id)["first_response"].state == "met"
    clock.advance(timedelta(hours=2))
    rt.transition(t.id, "need_parts", ALI)
    paused = clocks(rt, t.id)["resolution"]
    assert (paused.state, paused.elapsed, paused.due) == (
        "paused",
        timedelta(hours=2, minutes=30),
        None,
    )
    clock.set(berlin("2026-03-04T11:30"))
    rt.transition(t.id, "parts_in", ALI)
    resumed = clocks(rt, t.id)["resolution"]
    assert resumed.due == berlin("2026-03-04T17:00")  # 5.5 working hours left
    assert [h["what"] for h in resumed.history] == ["started", "paused", "resumed"]


def test_priority_change_retargets(desk: tuple[Runtime, ManualClock]) -> None:
    rt, clock = desk
    clock.set(berlin("2026-03-03T09:00"))
    t = rt.create("incident", {"summary": "CRM slow"}, MIA)
    assert clocks(rt, t.id)["resolution"].due == berlin("2026-03-04T17:00")  # P3: 16h
    clock.advance(timedelta(hours=3))
    rt.update(t.id, {"priority": "P1"}, ALI)
    c = clocks(rt, t.id)["resolution"]
    assert (c.target, c.elapsed, c.due) == (
        timedelta(hours=4),
        timedelta(hours=3),
        berlin("2026-03-03T13:00"),
    )
    assert c.history[-1]["what"] == "retargeted"


def test_warnings_and_breaches_fire_once(desk: tuple[Runtime, ManualClock]) -> None:
    rt, clock = desk
    clock.set(berlin("2026-03-04T09:00"))
    t = rt.create("incident", {"summary": "VPN", "priority": "P2"}, MIA)
    run_until(rt, clock, berlin("2026-03-06T17:00"), timedelta(minutes=7))
    kinds = [e.kind for e in rt.timeline(t.id, ALI)]
    assert kinds.count("sla.escalated") == 3  # 50%, breach, breach + 2h
    assert kinds.count("sla.breached") == 2
    with rt.store.read() as tx:
        messages = [o.payload.get("message") for o in tx.outbox("default")]
    assert messages.count("half_way") == 1 and messages.count("overdue") == 1
