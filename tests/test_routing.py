"""Routing strategies: who gets a ticket, and why (runtime/routing.py, runtime/geo.py)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.geo import EARTH_RADIUS_KM, GeoGrid, haversine_km
from runtime.routing import (
    Decision,
    Person,
    Roster,
    RouteRequest,
    chain_problems,
    eligible_for_claim,
    route,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BASE = (31.20, 121.40)  # a ticket in Shanghai
KM_LAT = 1 / 111.195  # degrees of latitude per km (R = 6371.0088 km)


def north_of(km: float, base: tuple[float, float] = BASE) -> tuple[float, float]:
    """A point `km` due north of `base` (distance along a meridian is exact)."""
    return (base[0] + km * KM_LAT, base[1])


def person(
    pid: str,
    *,
    team: str = "north",
    role: str = "engineer",
    skills: Mapping[str, int] | None = None,
    at: tuple[float, float] | None = None,
    seen: datetime | None = NOW,
    shift: Callable[[datetime], bool] | None = None,
    active: bool = True,
    max_open: int | None = None,
) -> Person:
    return Person(
        pid,
        roles=frozenset({role}),
        teams=frozenset({team}),
        skills=skills or {},
        location=at,
        location_at=seen if at is not None else None,
        on_shift=shift,
        active=active,
        max_open=max_open,
    )


def request(*strategies: str, **kw: object) -> RouteRequest:
    return RouteRequest(strategies=strategies, now=NOW, **kw)  # type: ignore[arg-type]


class Loads:
    """A dict-backed load provider that records what it was asked."""

    def __init__(self, loads: Mapping[str, float] | None = None) -> None:
        self.loads = dict(loads or {})
        self.asked: list[set[str]] = []

    def __call__(self, ids: Collection[str]) -> Mapping[str, float]:
        self.asked.append(set(ids))
        return {pid: self.loads[pid] for pid in ids if pid in self.loads}

    @property
    def everyone_asked(self) -> set[str]:
        return set().union(*self.asked) if self.asked else set()


class Turns:
    """A durable round-robin counter per key, as the runtime keeps one."""

    def __init__(self) -> None:
        self.counters: dict[str, count[int]] = {}
        self.keys: list[str] = []

    def __call__(self, key: str) -> int:
        self.keys.append(key)
        return next(self.counters.setdefault(key, count()))


def go(people: Iterable[Person], req: RouteRequest, loads: Loads | None = None) -> Decision:
    return route(Roster(people), req, loads or Loads(), Turns())


def step(d: Decision, name: str) -> tuple[int, int, str]:
    (s,) = [s for s in d.steps if s.strategy == name]
    return s.before, s.after, s.detail


# -- candidates -----------------------------------------------------------------------------


def test_candidates_are_active_members_of_the_team_with_the_role() -> None:
    people = [
        person("a"),
        person("b", team="south"),
        person("c", role="dispatcher"),
        person("d", active=False),
        person("e"),
    ]
    d = go(people, request("claim_pool", team="north", role="engineer"))
    assert d.pooled and d.pool == ("a", "e") and d.candidates == 2
    assert step(d, "candidates") == (5, 2, "2 of 5 people active in team north with role engineer")
    everyone = go(people, request("claim_pool"))
    assert everyone.pool == ("a", "b", "c", "e")


def test_nobody_active_in_the_team_names_the_step() -> None:
    d = go([person("a", active=False), person("b", team="south")], request("skills", team="north"))
    assert d.assignee is None and not d.pooled and d.candidates == 0
    assert d.emptied_by == "candidates"
    assert d.reason == "nobody assigned — candidates: nobody active in team north"


# -- skills ---------------------------------------------------------------------------------


def test_skills_keeps_people_with_every_skill_at_the_minimum_level() -> None:
    people = [
        person("a", skills={"hvac": 2, "electrical": 5}),
        person("b", skills={"hvac": 3}),
        person("c", skills={"hvac": 5, "electrical": 2}),
        person("d", skills={"hvac": 4, "electrical": 1}),
        person("e", skills={"electrical": 5}),
    ]
    d = go(people, request("skills", "claim_pool", skills={"hvac": 3, "electrical": 2}))
    assert d.pool == ("c",)
    assert step(d, "skills") == (5, 1, "1 of 5 have electrical ≥ 2 and hvac ≥ 3")
    only_hvac = go(people, request("skills", "claim_pool", skills={"hvac": 3}))
    assert only_hvac.pool == ("b", "c", "d")


def test_skills_without_requirements_keeps_everyone() -> None:
    d = go([person("a"), person("b")], request("skills", "claim_pool"))
    assert d.pool == ("a", "b")
    assert step(d, "skills") == (2, 2, "no skills required")


def test_nobody_with_the_skill_says_who_lacked_what() -> None:
    people = [person("a", skills={"hvac": 2}), person("b", team="south", skills={"hvac": 5})]
    d = go(people, request("skills", "nearest", team="north", skills={"hvac": 3}))
    assert (d.assignee, d.pooled, d.emptied_by) == (None, False, "skills")
    assert d.reason == "nobody assigned — skills: nobody in team north has hvac ≥ 3"


def test_an_emptied_step_after_others_narrowed_says_how_many_were_left() -> None:
    people = [
        person("a", skills={"hvac": 5}, shift=lambda _: False),
        person("b", skills={"hvac": 1}),
        person("c", skills={"hvac": 2}),
    ]
    d = go(people, request("on_shift", "skills", team="north", skills={"hvac": 3}))
    assert d.reason == "nobody assigned — skills: none of the 2 left in team north has hvac ≥ 3"


# -- on shift -------------------------------------------------------------------------------


def test_on_shift_keeps_people_on_shift_and_people_without_a_schedule() -> None:
    seen: list[datetime] = []

    def day_shift(t: datetime) -> bool:
        seen.append(t)
        return 8 <= t.hour < 17

    people = [
        person("a", shift=day_shift),
        person("b", shift=lambda t: t.hour >= 22),
        person("c"),  # no schedule: always on shift
    ]
    d = go(people, request("on_shift", "claim_pool"))
    assert d.pool == ("a", "c")
    assert seen == [NOW]  # asked about the request's `now`
    assert step(d, "on_shift") == (3, 2, "2 of 3 on shift")


def test_on_shift_only_is_an_on_shift_step_first() -> None:
    people = [
        person("a", at=north_of(1), shift=lambda _: False),
        person("b", at=north_of(5)),
    ]
    without = go(people, request("nearest", location=BASE))
    assert without.assignee == "a"
    d = go(people, request("nearest", location=BASE, on_shift_only=True))
    assert d.assignee == "b"
    assert [s.strategy for s in d.steps] == ["candidates", "on_shift", "nearest"]


def test_everyone_off_shift_leaves_nobody() -> None:
    d = go([person("a", shift=lambda _: False)], request("round_robin", team="north"))
    assert d.assignee == "a"  # shifts matter only to an on_shift step
    d = go([person("a", shift=lambda _: False)], request("round_robin", on_shift_only=True))
    assert (d.assignee, d.emptied_by) == (None, "on_shift")
    assert d.reason == "nobody assigned — on_shift: nobody is on shift"


# -- nearest --------------------------------------------------------------------------------


def test_nearest_picks_the_closest_and_says_how_far() -> None:
    people = [
        person("far", at=north_of(9)),
        person("near", at=north_of(2.3)),
        person("mid", at=north_of(4)),
    ]
    d = go(people, request("nearest", location=BASE))
    assert d.assignee == "near"
    assert d.reason == "chosen: near — nearest at 2.3 km"
    assert step(d, "nearest") == (3, 1, "1 of 3 within 1 km of the nearest (2.3 km)")


def test_people_within_the_tie_distance_of_the_nearest_are_tied() -> None:
    people = [
        person("c", at=north_of(2.0)),
        person("b", at=north_of(2.9)),
        person("a", at=north_of(3.1)),  # 1.1 km behind the nearest: not tied
    ]
    d = go(people, request("nearest", "claim_pool", location=BASE))
    assert d.pool == ("b", "c")
    d = go(people, request("nearest", location=BASE))
    assert d.assignee == "b"  # tie broken by id, not by distance
    assert (
        d.reason
        == "chosen: b — 2.9 km away, within 1 km of the nearest (2.0 km), tie among 2 broken by lowest id"
    )
    wider = go(people, request("nearest", "claim_pool", location=BASE, near_tie_km=1.2))
    assert wider.pool == ("a", "b", "c")


def test_equal_distances_are_a_tie_broken_by_id_whatever_the_order() -> None:
    # Four people on a circle around a ticket at (0, 0): by symmetry their distances are
    # equal to the last bit, so nearest with no tie distance keeps all four.
    lat, lon = 0.0, 0.0
    ring = {
        "n": (lat + 0.05, lon),
        "s": (lat - 0.05, lon),
        "e": (lat, lon + 0.05),
        "w": (lat, lon - 0.05),
    }
    assert len({haversine_km((lat, lon), spot) for spot in ring.values()}) == 1
    for order in (["n", "s", "e", "w"], ["w", "e", "s", "n"], ["s", "w", "n", "e"]):
        people = [person(pid, at=ring[pid]) for pid in order]
        d = go(people, request("nearest", location=(lat, lon), near_tie_km=0.0))
        assert d.assignee == "e"  # e, n, s, w are all ~5.56 km; e sorts first
        assert d.candidates == 4


def test_people_without_a_location_are_dropped_when_anyone_has_one() -> None:
    people = [person("a"), person("b", at=north_of(30)), person("c")]
    d = go(people, request("nearest", "claim_pool", location=BASE))
    assert d.pool == ("b",)


def test_when_nobody_has_a_location_nearest_keeps_everyone_and_says_so() -> None:
    d = go([person("a"), person("b")], request("nearest", "claim_pool", location=BASE))
    assert d.pool == ("a", "b")
    assert step(d, "nearest") == (2, 2, "none of the 2 has a location; kept all")


def test_a_ticket_without_a_location_keeps_everyone_and_says_so() -> None:
    people = [person("a", at=north_of(1)), person("b")]
    d = go(people, request("nearest", "claim_pool"))
    assert d.pool == ("a", "b")
    assert step(d, "nearest") == (2, 2, "the ticket has no location; kept all 2")


def test_stale_locations_do_not_count() -> None:
    people = [
        person("stale", at=north_of(3), seen=NOW - timedelta(hours=3)),
        person("fresh", at=north_of(20), seen=NOW - timedelta(minutes=30)),
        person("undated", at=north_of(0.5), seen=None),  # no time: cannot be shown fresh
    ]
    assert go(people, request("nearest", location=BASE)).assignee == "undated"
    d = go(people, request("nearest", location=BASE, location_max_age=timedelta(hours=2)))
    assert d.assignee == "fresh"
    only_stale = [people[0], people[2]]
    d = go(
        only_stale,
        request("nearest", "claim_pool", location=BASE, location_max_age=timedelta(hours=2)),
    )
    assert d.pool == ("stale", "undated")
    assert step(d, "nearest")[2] == "none of the 2 has a location from the last 2h; kept all"


def test_max_km_drops_everyone_farther() -> None:
    people = [person("a", at=north_of(40)), person("b", at=north_of(72.1))]
    assert go(people, request("nearest", location=BASE, max_km=50)).assignee == "a"
    d = go(people[1:], request("nearest", location=BASE, max_km=50, team="north"))
    assert (d.assignee, d.emptied_by) == (None, "nearest")
    assert d.reason == (
        "nobody assigned — nearest: nobody in team north is within 50 km "
        "(the nearest, b, is 72.1 km away)"
    )


def test_max_km_needs_a_known_location() -> None:
    d = go([person("a"), person("b")], request("nearest", location=BASE, max_km=50))
    assert d.emptied_by == "nearest"
    assert d.reason == "nobody assigned — nearest: nobody has a location to check against 50 km"


def test_the_tie_distance_never_reaches_past_max_km() -> None:
    people = [person("a", at=north_of(49.5)), person("b", at=north_of(50.4))]
    d = go(people, request("nearest", "claim_pool", location=BASE, max_km=50))
    assert d.pool == ("a",)


# -- least loaded ---------------------------------------------------------------------------


def test_least_loaded_keeps_the_lowest_load() -> None:
    loads = Loads({"a": 3, "b": 1, "c": 2})
    d = go([person("a"), person("b"), person("c")], request("least_loaded"), loads)
    assert d.assignee == "b"
    assert d.reason == "chosen: b — fewest open tickets (1)"


def test_equal_loads_tie_and_the_tie_break_is_by_id() -> None:
    # Weighted loads are sums of floats: 0.1 + 0.2 is 0.30000000000000004, still a tie with 0.3.
    loads = Loads({"a": 2, "b": 0.3, "c": 0.1 + 0.2, "d": 0.3})
    people = [person(pid) for pid in "dcba"]
    d = go(people, request("least_loaded"), loads)
    assert d.assignee == "b" and d.candidates == 3
    assert (
        d.reason
        == "chosen: b — fewest open tickets (0.3), tie among 3 broken by lowest open load (0.3), then id"
    )


def test_people_the_load_provider_leaves_out_have_no_open_tickets() -> None:
    d = go([person("a"), person("b")], request("least_loaded"), Loads({"a": 1}))
    assert d.assignee == "b"


def test_load_is_asked_only_about_the_current_candidates() -> None:
    people = [
        person("a", skills={"hvac": 3}, at=north_of(1)),
        person("b", skills={"hvac": 3}, at=north_of(1.5)),
        person("c", skills={"hvac": 1}, at=north_of(1)),
        person("d", skills={"hvac": 4}, at=north_of(80)),
    ]
    loads = Loads({"a": 2, "b": 0})
    d = go(
        people,
        request("skills", "nearest", "least_loaded", skills={"hvac": 3}, location=BASE),
        loads,
    )
    assert d.assignee == "b"
    assert loads.asked == [{"a", "b"}]  # once, and only the skilled people nearest the ticket


def test_load_is_not_asked_when_nothing_needs_it() -> None:
    loads = Loads()
    go(
        [person("a", at=north_of(1)), person("b")],
        request("skills", "nearest", "round_robin", location=BASE),
        loads,
    )
    assert loads.asked == []


# -- caps -----------------------------------------------------------------------------------


def test_people_at_or_over_the_cap_are_dropped() -> None:
    loads = Loads({"a": 8, "b": 7.5, "c": 9})
    d = go([person("a"), person("b"), person("c")], request("claim_pool", max_open=8), loads)
    assert d.pool == ("b",)
    assert step(d, "cap") == (
        3,
        1,
        "dropped 2 of 3 at or over their open-ticket cap (the request's cap is 8)",
    )


def test_the_lower_of_the_request_cap_and_the_persons_own_applies() -> None:
    loads = Loads({"a": 3, "b": 3, "c": 3})
    people = [person("a", max_open=3), person("b", max_open=10), person("c")]
    assert go(people, request("claim_pool", max_open=5), loads).pool == ("b", "c")
    assert go(people, request("claim_pool", max_open=2), loads).pool == ()
    loads = Loads({"a": 3, "b": 3, "c": 3})
    assert go(people, request("claim_pool"), loads).pool == ("b", "c")
    assert loads.everyone_asked == {"a", "b"}  # only people a cap applies to


def test_everyone_at_their_cap_leaves_nobody() -> None:
    loads = Loads({"a": 2, "b": 4})
    d = go([person("a"), person("b")], request("least_loaded", team="north", max_open=2), loads)
    assert (d.assignee, d.emptied_by) == (None, "cap")
    assert (
        d.reason
        == "nobody assigned — cap: everyone in team north is at or over the open-ticket cap"
    )


def test_the_cap_is_checked_after_the_filters_so_load_is_asked_about_fewer_people() -> None:
    people = [
        person("a", skills={"hvac": 3}),
        person("b", skills={"hvac": 1}),
        person("c", skills={"hvac": 4}),
    ]
    loads = Loads({"a": 5})
    d = go(people, request("skills", "least_loaded", skills={"hvac": 3}, max_open=5), loads)
    assert d.assignee == "c"
    assert [s.strategy for s in d.steps] == ["candidates", "skills", "cap", "least_loaded"]
    assert loads.asked == [{"a", "c"}]


def test_the_cap_is_checked_before_ranking_so_the_nearest_free_person_wins() -> None:
    people = [person("busy", at=north_of(1)), person("free", at=north_of(3))]
    d = go(people, request("nearest", location=BASE, max_open=4), Loads({"busy": 4}))
    assert d.assignee == "free"
    assert [s.strategy for s in d.steps] == ["candidates", "cap", "nearest"]


# -- round robin ----------------------------------------------------------------------------


def test_round_robin_takes_turns_in_id_order() -> None:
    roster = Roster([person(pid) for pid in ["c", "a", "b"]])
    turns = Turns()
    picks = [
        route(roster, request("round_robin", team="north"), Loads(), turns).assignee
        for _ in range(6)
    ]
    assert picks == ["a", "b", "c", "a", "b", "c"]
    assert set(turns.keys) == {"north"}


def test_round_robin_is_fair_over_many_turns() -> None:
    ids = [f"eng-{i:02d}" for i in range(7)]
    roster = Roster([person(pid) for pid in ids])
    turns = Turns()
    got = Counter(
        route(roster, request("round_robin"), Loads(), turns).assignee for _ in range(7 * 300)
    )
    assert got == {pid: 300 for pid in ids}


def test_round_robin_counts_per_pool_key() -> None:
    roster = Roster([person("a"), person("b"), person("c", role="lead")])
    turns = Turns()
    route(roster, request("round_robin", team="north", role="engineer"), Loads(), turns)
    route(roster, request("round_robin"), Loads(), turns)
    route(roster, request("round_robin", pool_key="night"), Loads(), turns)
    assert turns.keys == ["north/engineer", "*", "night"]


def test_round_robin_after_filters_rotates_over_whoever_is_left() -> None:
    people = [person("a", skills={"hvac": 3}), person("b"), person("c", skills={"hvac": 4})]
    roster, turns = Roster(people), Turns()
    req = request("skills", "round_robin", skills={"hvac": 3})
    picks = [route(roster, req, Loads(), turns) for _ in range(3)]
    assert [d.assignee for d in picks] == ["a", "c", "a"]
    assert (
        picks[1].reason
        == "chosen: c — has hvac ≥ 3 (2 of 3), round-robin turn 1 in * (#2 of 2 by id)"
    )


# -- ends of the chain ----------------------------------------------------------------------


def test_claim_pool_assigns_nobody_and_pools_whoever_is_left() -> None:
    people = [person("a", skills={"hvac": 3}), person("b", skills={"hvac": 4}), person("c")]
    d = go(people, request("skills", "claim_pool", skills={"hvac": 3}))
    assert (d.assignee, d.pooled, d.candidates, d.pool) == (None, True, 2, ("a", "b"))
    assert d.reason == "pooled: 2 may claim (2 of 3 have hvac ≥ 3)"


def test_an_empty_pool_is_nobody_not_a_pool() -> None:
    d = go([person("a")], request("skills", "claim_pool", skills={"hvac": 3}))
    assert (d.assignee, d.pooled, d.emptied_by) == (None, False, "skills")


def test_manual_assigns_nobody_and_does_not_pool() -> None:
    d = go([person("a"), person("b")], request("manual"))
    assert (d.assignee, d.pooled, d.candidates, d.pool) == (None, False, 2, ())
    assert d.reason == "left for manual assignment: 2 eligible"


def test_the_steps_show_how_the_chain_ended() -> None:
    manual = go([person("a"), person("b")], request("manual"))
    assert manual.steps[-1].strategy == "manual" and manual.steps[-1].after == 2
    pooled = go([person("a")], request("claim_pool"))
    assert [s.strategy for s in pooled.steps] == ["candidates", "claim_pool"]


# -- tie-break ------------------------------------------------------------------------------


def test_a_tie_left_at_the_end_is_broken_by_id_when_load_was_not_fetched() -> None:
    people = [person(pid, skills={"hvac": 3}) for pid in ["m", "k", "z"]]
    d = go(people, request("skills", skills={"hvac": 3}))
    assert d.assignee == "k" and d.candidates == 3
    assert step(d, "tie_break") == (3, 1, "lowest id, among 3")
    assert d.reason.endswith("tie among 3 broken by lowest id")


def test_a_tie_left_at_the_end_is_broken_by_load_when_load_was_fetched() -> None:
    people = [person(pid, skills={"hvac": 3}) for pid in ["m", "k", "z"]]
    loads = Loads({"k": 3, "m": 1, "z": 1})
    d = go(people, request("skills", skills={"hvac": 3}, max_open=5), loads)
    assert d.assignee == "m"
    assert (
        d.reason
        == "chosen: m — has hvac ≥ 3 (3 of 3), tie among 3 broken by lowest open load (1), then id"
    )


def test_the_outcome_does_not_depend_on_the_order_people_are_listed_in() -> None:
    import random

    rng = random.Random(4)
    people = [
        person(
            f"p{i}",
            skills={"hvac": rng.randint(1, 5)},
            at=north_of(rng.choice([1.0, 1.0, 2.5, 7.0])),
        )
        for i in range(40)
    ]
    req = request(
        "skills", "nearest", "least_loaded", skills={"hvac": 3}, location=BASE, near_tie_km=0.0
    )
    loads = {f"p{i}": float(rng.randint(0, 2)) for i in range(40)}
    first = go(people, req, Loads(loads))
    for _ in range(5):
        rng.shuffle(people)
        again = go(people, req, Loads(loads))
        assert (again.assignee, again.reason, again.steps) == (
            first.assignee,
            first.reason,
            first.steps,
        )


# -- the full chain and the decision record -------------------------------------------------


def test_a_full_chain_explains_its_choice_in_one_sentence() -> None:
    people = [
        person("eng-17", skills={"hvac": 4}, at=north_of(2.3)),
        person("eng-03", skills={"hvac": 3}, at=north_of(2.6)),
        person("eng-08", skills={"hvac": 5}, at=north_of(40)),
        person("eng-11", skills={"hvac": 2}, at=north_of(0.2)),
        person("eng-21", skills={"hvac": 3}, team="south", at=north_of(0.1)),
    ]
    loads = Loads({"eng-17": 1, "eng-03": 2})
    req = request(
        "skills", "nearest", "least_loaded", team="north", skills={"hvac": 3}, location=BASE
    )
    d = go(people, req, loads)
    assert d.assignee == "eng-17" and d.candidates == 1
    assert (
        d.reason
        == "chosen: eng-17 — has hvac ≥ 3 (3 of 4), nearest at 2.3 km, fewest open tickets (1)"
    )
    assert [(s.strategy, s.before, s.after) for s in d.steps] == [
        ("candidates", 5, 4),
        ("skills", 4, 3),
        ("nearest", 3, 2),
        ("least_loaded", 2, 1),
    ]
    record = d.as_json()
    assert json.loads(json.dumps(record)) == record
    assert record["assignee"] == "eng-17" and record["steps"][1] == {
        "strategy": "skills",
        "before": 4,
        "after": 3,
        "detail": "3 of 4 have hvac ≥ 3",
    }


# -- claims ---------------------------------------------------------------------------------


CLAIM = request(
    "skills", "claim_pool", team="engineers", skills={"hvac": 3}, max_open=8, on_shift_only=True
)


def claim(
    people: list[Person],
    pid: str,
    loads: Mapping[str, float] | None = None,
    req: RouteRequest = CLAIM,
) -> tuple[bool, str, str | None]:
    got = eligible_for_claim(Roster(people), req, pid, Loads(loads))
    return got.allowed, got.reason, got.step


def test_claim_reasons_say_which_check_failed() -> None:
    people = [
        person("ok", team="engineers", skills={"hvac": 3}),
        person("other-team", team="north", skills={"hvac": 5}),
        person("lead", team="engineers", role="lead", skills={"hvac": 5}),
        person("gone", team="engineers", skills={"hvac": 5}, active=False),
        person("novice", team="engineers", skills={"hvac": 2}),
        person("busy", team="engineers", skills={"hvac": 4}),
        person("asleep", team="engineers", skills={"hvac": 4}, shift=lambda _: False),
    ]
    assert claim(people, "ok") == (True, "ok may claim: on shift, has hvac ≥ 3", None)
    assert claim(people, "other-team") == (False, "not in team engineers", "candidates")
    assert claim(people, "gone") == (False, "gone is not active", "candidates")
    assert claim(people, "nobody") == (False, "nobody is not in the directory", "candidates")
    assert claim(people, "novice") == (False, "lacks skill hvac ≥ 3 (has 2)", "skills")
    assert claim(people, "busy", {"busy": 8}) == (False, "has 8 open tickets, the cap is 8", "cap")
    assert claim(people, "asleep") == (False, "off shift", "on_shift")
    with_role = request("claim_pool", team="engineers", role="engineer")
    assert claim(people, "lead", req=with_role) == (
        False,
        "does not have role engineer",
        "candidates",
    )
    no_hvac = request("skills", "claim_pool", skills={"hvac": 3})
    assert claim([person("x")], "x", req=no_hvac) == (False, "lacks skill hvac ≥ 3", "skills")


def test_a_claim_check_with_only_filters_asks_load_about_the_claimant_alone() -> None:
    people = [person(f"p{i}", team="engineers", skills={"hvac": 3}) for i in range(50)]
    loads = Loads({"p7": 2})
    assert eligible_for_claim(Roster(people), CLAIM, "p7", loads).allowed
    assert loads.asked == [{"p7"}]


def test_ranking_steps_before_claim_pool_narrow_who_may_claim() -> None:
    people = [
        person("a", at=north_of(1)),
        person("b", at=north_of(1.8)),
        person("c", at=north_of(12.4)),
    ]
    req = request("nearest", "claim_pool", location=BASE)
    assert claim(people, "b", req=req)[0]
    assert claim(people, "c", req=req) == (
        False,
        "not among the nearest: 12.4 km away, the nearest is 1.0 km",
        "nearest",
    )
    loaded = request("least_loaded", "claim_pool")
    assert claim(people, "a", {"a": 3, "b": 1, "c": 1}, req=loaded) == (
        False,
        "not among the least loaded: 3 open tickets, the lowest is 1",
        "least_loaded",
    )
    far = request("nearest", "claim_pool", location=BASE, max_km=10)
    assert claim(people, "c", req=far) == (False, "12.4 km away, farther than 10 km", "nearest")
    assert claim([*people, person("d")], "d", req=req) == (False, "has no location", "nearest")


def test_the_claim_pool_of_a_chain_without_one_is_what_the_final_pick_chose_from() -> None:
    people = [person("a", skills={"hvac": 3}), person("b", skills={"hvac": 4}), person("c")]
    req = request("skills", "round_robin", skills={"hvac": 3})
    assert claim(people, "b", req=req)[0]
    assert not claim(people, "c", req=req)[0]


# -- requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chain", "problem"),
    [
        ((), "a routing chain needs at least one strategy"),
        (("skills", "closest"), "unknown routing strategy 'closest'"),
        (
            ("claim_pool", "skills"),
            "claim_pool picks the answer, so it must come last (found before skills)",
        ),
        (
            ("round_robin", "least_loaded"),
            "round_robin picks the answer, so it must come last (found before least_loaded)",
        ),
    ],
)
def test_a_chain_that_cannot_run_is_refused(chain: tuple[str, ...], problem: str) -> None:
    assert chain_problems(chain) == [problem]
    with pytest.raises(
        ValueError, match="^" + problem.replace("(", r"\(").replace(")", r"\)") + "$"
    ):
        RouteRequest(strategies=chain, now=NOW)


def test_bad_request_and_person_values_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        RouteRequest(strategies=("skills",), now=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="minimum level"):
        request("skills", skills={"hvac": 0})
    with pytest.raises(ValueError, match="not a location"):
        request("nearest", location=(91.0, 0.0))
    with pytest.raises(ValueError, match="not a location"):
        Person("x", location=(0.0, math.nan))
    with pytest.raises(ValueError, match="appears twice"):
        Roster([person("a"), person("a")])


def test_a_person_keeps_a_copy_of_their_skills() -> None:
    skills = {"hvac": 1}
    p = Person("a", skills=skills)
    skills["hvac"] = 5
    roster = Roster([p])
    assert go([p], request("skills", skills={"hvac": 3})).assignee is None
    assert roster.at_least("hvac", 1) == {"a"}


# -- distances and the grid -----------------------------------------------------------------


def test_haversine_distances() -> None:
    assert haversine_km((0.0, 0.0), (0.0, 0.0)) == 0.0
    assert haversine_km((90.0, 0.0), (-90.0, 0.0)) == pytest.approx(math.pi * EARTH_RADIUS_KM)
    assert haversine_km((0.0, 179.5), (0.0, -179.5)) == pytest.approx(111.195, abs=1e-3)
    assert haversine_km((51.5074, -0.1278), (48.8566, 2.3522)) == pytest.approx(
        343.6, abs=0.2
    )  # London-Paris
    assert haversine_km((89.9, 0.0), (89.9, 180.0)) == pytest.approx(0.2 * 111.195, abs=1e-3)


def brute_nearest(
    points: list[tuple[str, float, float, float]],
    q: tuple[float, float],
    among: set[str] | None,
    tie_km: float,
    max_km: float | None,
    min_stamp: float,
) -> list[tuple[float, str]]:
    """Measure every point: the definition `GeoGrid.nearest` must match."""
    found = [
        (haversine_km(q, (lat, lon)), pid)
        for pid, lat, lon, stamp in points
        if (among is None or pid in among) and stamp >= min_stamp
    ]
    found = [f for f in found if max_km is None or f[0] <= max_km]
    if not found:
        return []
    cutoff = min(found)[0] + tie_km
    if max_km is not None:
        cutoff = min(cutoff, max_km)
    return sorted(f for f in found if f[0] <= cutoff)


lats = st.one_of(
    st.floats(-90, 90),
    st.floats(84, 90),  # near the north pole
    st.floats(-90, -84),  # near the south pole
    st.floats(-0.5, 0.5),
)
lons = st.one_of(
    st.floats(-180, 180),
    st.floats(175, 180),  # either side of the ±180° meridian
    st.floats(-180, -175),
    st.sampled_from([-180.0, 180.0, 0.0]),
)
points = st.tuples(lats, lons)


@dataclass(frozen=True)
class GridCase:
    people: list[tuple[str, float, float, float]]  # id, lat, lon, stamp
    among: set[str] | None
    q: tuple[float, float]
    tie: float
    max_km: float | None
    min_stamp: float
    cell: float | None  # None: the grid picks


@st.composite
def grid_cases(draw: st.DrawFn) -> GridCase:
    spots: list[tuple[float, float]] = draw(st.lists(points, max_size=60))
    # Clusters make many near-equal distances and crowded cells.
    cluster = draw(st.booleans())
    if spots and cluster:
        lat, lon = draw(st.sampled_from(spots))
        offsets = draw(st.lists(st.floats(-0.02, 0.02), max_size=10))
        spots += [(min(90.0, max(-90.0, lat + d)), lon) for d in offsets]
    stamps = draw(
        st.lists(st.sampled_from([0.0, 1.0, 2.0]), min_size=len(spots), max_size=len(spots))
    )
    people = [
        (f"p{i}", lat, lon, s) for i, ((lat, lon), s) in enumerate(zip(spots, stamps, strict=True))
    ]
    ids = [p[0] for p in people]
    return GridCase(
        people=people,
        among=draw(st.none() | st.sets(st.sampled_from(ids))) if ids else None,
        q=draw(points),
        tie=draw(st.sampled_from([0.0, 1.0, 30.0, 600.0, 5000.0])),
        max_km=draw(st.none() | st.sampled_from([1.0, 100.0, 2000.0])),
        min_stamp=draw(st.sampled_from([-math.inf, 1.0])),
        cell=draw(st.sampled_from([None, 0.5, 0.25, 1.0, 5.0, 45.0])),
    )


@settings(max_examples=250, deadline=None)
@given(grid_cases())
def test_grid_nearest_is_the_brute_force_nearest(case: GridCase) -> None:
    grid = GeoGrid(case.people, cell_deg=case.cell)
    lat, lon = case.q
    expected = brute_nearest(case.people, case.q, case.among, case.tie, case.max_km, case.min_stamp)
    assert (
        grid.nearest_grid(lat, lon, case.among, case.tie, case.max_km, case.min_stamp) == expected
    )
    among = case.among if case.among is not None else [p[0] for p in case.people]
    assert grid.nearest_scan(lat, lon, among, case.tie, case.max_km, case.min_stamp) == expected


def test_routing_over_a_large_roster_matches_brute_force() -> None:
    import random

    rng = random.Random(11)
    teams = ["t0", "t1", "t2"]

    def on_shift(t: datetime) -> bool:
        return True

    people = [
        Person(
            f"p{i:05d}",
            teams=frozenset({rng.choice(teams)}),
            skills={"hvac": rng.randint(1, 5), "pos": rng.randint(1, 5)},
            location=(rng.uniform(20, 45), rng.uniform(100, 125)),
            location_at=NOW,
            on_shift=on_shift if i % 2 else (lambda _: False),
        )
        for i in range(6000)
    ]
    roster = Roster(people)
    for i in range(150):
        q = (rng.uniform(20, 45), rng.uniform(100, 125))
        # Everyone, a team (the roster keeps team ∩ skill sets and their grids), and a set a
        # filter made (searched with a membership test).
        team = [None, "t1", "t2"][i % 3]
        shift = i % 2 == 0
        req = request(
            "skills",
            "nearest",
            "claim_pool",
            team=team,
            skills={"hvac": 4, "pos": 2},
            location=q,
            near_tie_km=5.0,
            on_shift_only=shift,
        )
        got = route(roster, req, Loads(), Turns())
        fit = [
            p
            for p in people
            if p.skills["hvac"] >= 4
            and p.skills["pos"] >= 2
            and (team is None or team in p.teams)
            and (not shift or p.on_shift is on_shift)
        ]
        dist = {p.id: haversine_km(q, p.location) for p in fit if p.location}
        best = min(dist.values())
        assert got.pool == tuple(sorted(pid for pid, d in dist.items() if d <= best + 5.0))
