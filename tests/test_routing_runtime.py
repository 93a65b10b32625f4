"""Routing inside the runtime: strategies and chains on real tickets, the claim pool,
transfers, delegation and the directory they read — on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from runtime_fixtures import ROOT, STORE_KINDS, database_url, make_runtime

from engine.people import DirectoryError
from runtime.actors import Actor
from runtime.api import Runtime
from runtime.clock import ManualClock
from runtime.records import Conflict, InvalidCommand, PermissionDenied

DISPATCH = ROOT / "tests" / "packs" / "dispatch"
PEOPLE = ROOT / "tests" / "people" / "dispatch.yaml"
CUSTOMER = Actor.of("cust", ["customer"], locale="zh")
AGENT = Actor.of("agent1", ["agent"])
NEAR_WANG = {"lat": 31.2405, "lon": 121.4805, "address": "Nanjing Rd 1"}


@pytest.fixture(params=STORE_KINDS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Runtime, ManualClock]]:
    with make_runtime(request.param, tmp_path, (DISPATCH,)) as (rt, clock):
        rt.import_people("default", str(PEOPLE))
        yield rt, clock


def staff(rt: Runtime, person: str) -> Actor:
    return rt.actor("default", person)


def kinds(rt: Runtime, ticket_id: str) -> list[str]:
    return [e.kind for e in rt.timeline(ticket_id, AGENT)]


def routed(rt: Runtime, ticket_id: str) -> dict[str, Any]:
    return next(e.data for e in rt.timeline(ticket_id, AGENT) if e.kind == "routed")


def step(why: dict[str, Any], strategy: str) -> dict[str, Any]:
    return next(s for s in why["steps"] if s["strategy"] == strategy)


# -- strategies and chains ------------------------------------------------------------------


def test_skills_then_nearest_picks_the_qualified_engineer_close_by(
    env: tuple[Runtime, ManualClock],
) -> None:
    rt, _ = env
    # hvac needs level 3: li (level 2) is nearer but not qualified, zhao (5) is 40 km away.
    t = rt.create("repair", {"category": "hvac", "site": NEAR_WANG}, CUSTOMER)
    assert (t.assignee, t.team) == ("wang", "north")
    why = routed(rt, t.id)
    assert why["assignee"] == "wang"
    chain = [s["strategy"] for s in why["steps"] if s["strategy"] != "candidates"]
    assert chain == ["skills", "nearest", "least_loaded"]
    assert step(why, "skills")["after"] == 2  # wang and zhao have hvac ≥ 3
    assert "wang" in why["reason"]
    assert kinds(rt, t.id)[:3] == ["created", "routed", "assigned"]


def test_a_tie_on_distance_is_broken_by_load(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    # lighting needs electrical: wang and chen are 150 m apart, both within the 1 km tie band.
    first = rt.create("repair", {"category": "lighting", "site": NEAR_WANG}, CUSTOMER)
    second = rt.create("repair", {"category": "lighting", "site": NEAR_WANG}, CUSTOMER)
    assert {first.assignee, second.assignee} == {"wang", "chen"}
    why = routed(rt, second.id)
    assert step(why, "nearest")["after"] == 2  # both tied on distance
    assert step(why, "least_loaded")["after"] == 1  # load decided


def test_priority_weights_count_in_least_loaded(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    one = rt.create("loaded", {"priority": "P1"}, AGENT)  # weight 3 for its assignee
    others = [rt.create("loaded", {"priority": "P3"}, AGENT) for _ in range(3)]
    # Four engineers in north; the P1 holder has load 3, so the next three spread elsewhere.
    assert one.assignee not in {o.assignee for o in others}
    assert len({o.assignee for o in others}) == 3


def test_max_open_caps_and_then_nobody_is_left(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    made = [rt.create("loaded", {}, AGENT) for _ in range(8)]  # 4 engineers × cap 2
    assert all(t.assignee is not None for t in made)
    extra = rt.create("loaded", {}, AGENT)
    # Nobody under the cap: the ticket is not assigned to a person; the `unrouted` rule
    # hands it to the desk and tells the dispatcher.
    assert extra.assignee is None and extra.team == "desk"
    events = rt.timeline(extra.id, AGENT)
    none = next(e for e in events if e.kind == "routing.none")
    assert "open-ticket cap" in none.data["reason"]
    assert "notify.queued" in [e.kind for e in events]


def test_nobody_with_the_skill_leaves_it_unassigned_and_a_rule_reacts(
    env: tuple[Runtime, ManualClock],
) -> None:
    rt, _ = env
    rt.remove_people("default", ["li"])  # the only refrigeration engineer
    t = rt.create("repair", {"category": "fridge", "site": NEAR_WANG}, CUSTOMER)
    assert t.assignee is None
    events = rt.timeline(t.id, AGENT)
    none = next(e for e in events if e.kind == "routing.none")
    assert "refrigeration" in none.data["reason"]
    assert rt.get(t.id, AGENT).team == "desk"
    to_dispatcher = [o for o in rt.outbox("default") if o.recipient == "disp"]
    assert sorted(o.channel or "" for o in to_dispatcher) == ["email", "in_app"]


def test_round_robin_among_those_on_shift(env: tuple[Runtime, ManualClock]) -> None:
    rt, clock = env
    clock.advance(timedelta(hours=18))  # 10:00 in Shanghai: the day shift
    day = [rt.create("rota", {}, AGENT).assignee for _ in range(4)]
    assert day in (["day1", "day2"] * 2, ["day2", "day1"] * 2)
    clock.advance(timedelta(hours=12))  # 22:00: the night shift alone
    assert rt.create("rota", {}, AGENT).assignee == "night1"


def test_manual_routing_assigns_nobody_and_says_nothing(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = rt.create("manual_job", {}, AGENT)
    assert (t.assignee, t.team) == (None, "desk")
    assert not {"routed", "routing.none"} & set(kinds(rt, t.id))


# -- claim pool -----------------------------------------------------------------------------


def test_claim_pool_first_claim_wins(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = rt.create("pooled", {"category": "hvac"}, CUSTOMER)
    assert t.assignee == "pool:south"
    sun, zhou, wu = staff(rt, "sun"), staff(rt, "zhou"), staff(rt, "wu")
    assert [x.id for x in rt.claimable(sun)] == [t.id]
    assert rt.claimable(wu) == []  # lacks hvac
    with pytest.raises(PermissionDenied, match="hvac"):
        rt.claim(t.id, wu)
    assert rt.claim(t.id, sun).assignee == "sun"
    with pytest.raises(Conflict, match="claimed by sun"):
        rt.claim(t.id, zhou)
    assert rt.claimable(zhou) == []
    claims = [e for e in rt.timeline(t.id, AGENT) if e.kind == "assigned"]
    assert [e.data["how"] for e in claims] == ["pool", "claim"]


def test_pool_members_see_a_pooled_ticket_others_do_not(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = rt.create("pooled", {"category": "hvac"}, CUSTOMER)
    assert rt.get(t.id, staff(rt, "sun")).id == t.id
    north = staff(rt, "wang")
    assert t.id not in [x.id for x in rt.query(north).items]


# -- transfer and delegation -----------------------------------------------------------------


def test_transfer_keeps_every_hand_off(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = rt.create("repair", {"category": "hvac", "site": NEAR_WANG}, CUSTOMER)
    wang = staff(rt, "wang")
    moved = rt.transfer(t.id, "south", wang, note="south side of the river", reroute=False)
    assert (moved.team, moved.assignee) == ("south", None)
    hand_offs = [e.data for e in rt.timeline(t.id, AGENT) if e.kind == "assigned"]
    assert [h["how"] for h in hand_offs] == ["assign", "transfer"]
    assert hand_offs[1]["from_team"] == "north" and hand_offs[1]["to_team"] == "south"
    with pytest.raises(InvalidCommand, match="did you mean 'south'"):
        rt.transfer(t.id, "sout", AGENT)
    # wang handed it over: no longer his, nor his team's, he cannot see it any more.
    assert t.id not in [x.id for x in rt.query(wang).items]


def test_transfer_reroutes_within_the_new_team(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = rt.create("repair", {"category": "lighting", "site": NEAR_WANG}, CUSTOMER)
    moved = rt.transfer(t.id, "south", AGENT)
    # South's electricians (zhou, wu) have no known location: nearest keeps both, load
    # ties at zero, and the lowest id wins.
    assert (moved.team, moved.assignee) == ("south", "wu")
    hvac = rt.create("repair", {"category": "hvac", "site": NEAR_WANG}, CUSTOMER)
    stuck = rt.transfer(hvac.id, "south", AGENT)  # nobody in south has hvac ≥ 3
    assert stuck.assignee is None and stuck.team == "desk"  # the unrouted rule took it


def test_delegation_by_the_assignee_keeps_them_watching(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = rt.create("repair", {"category": "hvac", "site": NEAR_WANG}, CUSTOMER)
    with pytest.raises(PermissionDenied, match="only the assignee"):
        rt.delegate(t.id, "chen", staff(rt, "li"))
    done = rt.delegate(t.id, "chen", staff(rt, "wang"), note="on leave")
    assert done.assignee == "chen" and "wang" in done.watchers
    with pytest.raises(InvalidCommand, match="no active person 'nobody'"):
        rt.delegate(t.id, "nobody", staff(rt, "chen"))


def test_bulk_assign_assigns_each(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    made = [rt.create("manual_job", {}, AGENT) for _ in range(3)]
    results = rt.bulk_assign(
        [t.id for t in made] + ["missing"], "user:day1", Actor.of("d", ["dispatcher"])
    )
    assert [r.ok for r in results] == [True, True, True, False]
    assert {r.ticket.assignee for r in results if r.ticket} == {"day1"}


# -- the directory --------------------------------------------------------------------------


def test_directory_refuses_unknown_names_located_and_changes_nothing(
    env: tuple[Runtime, ManualClock], tmp_path: Path
) -> None:
    rt, _ = env
    before = rt.people("default").rev
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "people:\n"
        "  - {id: new1, teams: [north]}\n"
        "  - {id: new2, teams: [nort], skills: {hvca: 2}}\n",
        encoding="utf-8",
    )
    with pytest.raises(DirectoryError) as caught:
        rt.import_people("default", str(bad))
    lines = [d.headline() for d in caught.value.diagnostics]
    assert any(":3:" in line and "unknown team 'nort'" in line for line in lines), lines
    assert any("unknown skill 'hvca'" in line for line in lines), lines
    hints = [d.hint for d in caught.value.diagnostics]
    assert "did you mean 'north'?" in hints and "did you mean 'hvac'?" in hints
    after = rt.people("default")
    assert after.rev == before and after.get("new1") is None


def test_directory_from_csv_and_a_full_sync(
    env: tuple[Runtime, ManualClock], tmp_path: Path
) -> None:
    rt, _ = env
    sheet = tmp_path / "staff.csv"
    sheet.write_text(
        "id,name,roles,teams,skills,lat,lon,email\n"
        "wang,Wang Wei,engineer,north,hvac:4;electrical,31.24,121.48,wang@example.com\n"
        "new3,New Three,engineer;agent,north;desk,refrigeration:2,,,\n",
        encoding="utf-8",
    )
    result = rt.import_people("default", str(sheet), replace=True)
    assert (result.written, result.removed) == (2, 12)
    people = rt.people("default")
    assert sorted(people.people) == ["new3", "wang"]
    assert people.people["wang"].skill_levels() == {"hvac": 4, "electrical": 1}
    assert people.members("desk") == ("new3",)


def test_csv_errors_name_the_row(env: tuple[Runtime, ManualClock], tmp_path: Path) -> None:
    rt, _ = env
    sheet = tmp_path / "staff.csv"
    sheet.write_text("id,name,max_open\nok1,Fine,3\n,No id,x\n", encoding="utf-8")
    with pytest.raises(DirectoryError) as caught:
        rt.import_people("default", str(sheet))
    assert all(d.span is not None and d.span.line == 3 for d in caught.value.diagnostics)


def test_reported_location_moves_nearest(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    far_site = {"lat": 31.10, "lon": 121.20}  # 30 km from everyone
    assert rt.create("repair", {"category": "hvac", "site": far_site}, CUSTOMER).assignee == "wang"
    # zhao (hvac 5) reports from there: now he is the nearest qualified engineer.
    rt.report_location("default", "zhao", far_site["lat"], far_site["lon"])
    assert rt.create("repair", {"category": "hvac", "site": far_site}, CUSTOMER).assignee == "zhao"


# -- the claim race -------------------------------------------------------------------------


def _claimer(url: str, ticket_id: str, person: str, start: Any, results: Any) -> None:
    rt = Runtime.open([], database_url=url)
    try:
        actor = rt.actor("default", person)
        start.wait()
        try:
            rt.claim(ticket_id, actor)
            results.put((person, "won"))
        except Conflict as exc:
            results.put((person, f"conflict: {exc.message}"))
    finally:
        rt.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_claim_race_between_8_processes_has_one_winner(kind: str, tmp_path: Path) -> None:
    with database_url(kind, tmp_path) as url:
        rt = Runtime.open([DISPATCH], database_url=url)
        people = [f"eng{i}" for i in range(8)]
        rt.put_people(
            "default",
            [
                {"id": p, "roles": ["engineer"], "teams": ["south"], "skills": ["hvac"]}
                for p in people
            ],
        )
        ticket = rt.create("pooled", {"category": "hvac"}, CUSTOMER)
        rt.close()
        ctx = multiprocessing.get_context("spawn")
        start, results = ctx.Barrier(8), ctx.Queue()
        procs = [
            ctx.Process(target=_claimer, args=(url, ticket.id, p, start, results)) for p in people
        ]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        winners = [who for who, what in outcomes if what == "won"]
        assert len(winners) == 1, outcomes
        losers = [what for who, what in outcomes if what != "won"]
        assert all(w.startswith("conflict: ") for w in losers), losers
        rt = Runtime.open([], database_url=url)
        try:
            assert rt.get(ticket.id, AGENT).assignee == winners[0]
            claims = [e for e in rt.timeline(ticket.id, AGENT) if e.data.get("how") == "claim"]
            assert len(claims) == 1
        finally:
            rt.close()


def test_user_field_and_team_lead_recipients(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = rt.create("repair", {"category": "hvac", "site": NEAR_WANG}, CUSTOMER)
    rt.transfer(t.id, "desk", AGENT, reroute=False)
    rt.update(t.id, {"approver": "boss"}, AGENT)
    # field:approver reaches the person the field names, and the rule assigns it to them;
    # team_lead reaches the desk's dispatchers (the team's lead_role).
    assert rt.get(t.id, AGENT).assignee == "boss"
    queued = [e.data for e in rt.timeline(t.id, AGENT) if e.kind == "notify.queued"][-1]
    assert queued["recipients"] == ["boss", "disp"]


def test_a_claim_is_checked_against_the_chain_that_pooled_the_ticket(
    env: tuple[Runtime, ManualClock],
) -> None:
    rt, _ = env
    t = rt.create("repair", {"category": "hvac", "site": NEAR_WANG}, CUSTOMER)
    wang = rt.actor("default", "wang")
    rt.transition(t.id, "accept", wang)
    pooled = rt.transition(t.id, "release", wang)  # the rule pools it: [skills, claim_pool]
    assert pooled.assignee == "pool:north"
    # zhao is 40 km away: the template's chain (nearest) would exclude him, the pooling
    # chain does not; li lacks hvac ≥ 3 either way.
    zhao, li = rt.actor("default", "zhao"), rt.actor("default", "li")
    assert [x.id for x in rt.claimable(zhao)] == [t.id] and rt.claimable(li) == []
    assert rt.claim(t.id, zhao).assignee == "zhao"


def test_an_assign_action_that_finds_nobody_still_moves_the_ticket_to_its_team(
    env: tuple[Runtime, ManualClock],
) -> None:
    rt, _ = env
    t = rt.create("manual_job", {}, AGENT)
    assert rt.get(t.id, AGENT).team == "desk"
    # The rule routes among the night crew, which has nobody: the ticket waits in the
    # night crew's queue (and the timeline says why nobody was chosen).
    done = rt.transition(t.id, "accept", Actor.of("d", ["dispatcher"]))
    assert (done.team, done.assignee) == ("night_crew", None)
    assert "routing.none" in kinds(rt, t.id)
