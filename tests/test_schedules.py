"""Scheduled rules: preventive maintenance plans open tickets on their cron schedule."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from runtime_fixtures import counter_ids

from conftest import EXAMPLES
from engine.load import load_pack_path
from runtime.actors import Actor
from runtime.api import Runtime
from runtime.clock import ManualClock

SHANGHAI = ZoneInfo("Asia/Shanghai")
SYSTEM = Actor.system()


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def plans(rt: Runtime) -> list[tuple[str, str]]:
    items = rt.query(SYSTEM, templates=["pm_inspection"], limit=500).items
    return [(t.fields["pm_plan"], t.fields["asset"]) for t in items]


def test_weekly_plan_opens_its_tickets_every_monday(tmp_path: Path) -> None:
    clock = ManualClock(local("2026-03-01T12:00"))  # a Sunday
    rt = Runtime.open(EXAMPLES / "manufacturing", database_url=f"sqlite:///{tmp_path / 't.db'}",
                      clock=clock, new_id=counter_ids())
    assert rt.run_due() == 0
    clock.set(local("2026-03-02T07:00"))  # Monday 07:00: the weekly compressor round
    rt.run_due()
    assert plans(rt) == [("PM-UT-AC-W", "UT-AC-01"), ("PM-UT-AC-W", "UT-AC-02")]
    clock.advance(timedelta(days=6, hours=23))
    rt.run_due()
    assert len(plans(rt)) == 2  # nothing before next Monday 07:00
    clock.advance(timedelta(hours=1))
    rt.run_due()
    assert len(plans(rt)) == 4
    with rt.store.read() as tx:
        waiting = [t for t in tx.timers("default") if t.kind == "schedule" and t.status == "waiting"]
    weekly = [t for t in waiting if t.payload["rule"] == "pm_air_compressors_weekly"]
    assert [t.due_at.astimezone(SHANGHAI) for t in weekly] == [local("2026-03-16T07:00")]


def test_a_new_version_takes_over_the_schedule(tmp_path: Path) -> None:
    clock = ManualClock(local("2026-03-01T12:00"))
    rt = Runtime.open(EXAMPLES / "manufacturing", database_url="memory", clock=clock,
                      new_id=counter_ids())
    pack = load_pack_path(EXAMPLES / "manufacturing").pack
    assert pack is not None
    data = pack.model_dump(mode="json", by_alias=True, exclude_unset=True)
    del data["rules"]["pm_air_compressors_weekly"]
    rt.publish(type(pack).model_validate(data))
    clock.set(local("2026-03-02T07:00"))
    rt.run_due()
    assert plans(rt) == []  # version 1's timer found a newer version and did nothing
