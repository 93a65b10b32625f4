"""Routing decisions per second over rosters of 1,000 / 10,000 / 100,000 people.

Run: .venv/bin/python benchmarks/bench_routing.py [--people 1000,10000,100000] [--quick]

People are spread uniformly over a country-sized area (latitude 20–45°, longitude 100–125°:
about 2,800 × 2,500 km), in 20 teams, each with 1–4 of 12 skills at levels 1–5 (so about one
in eight has a given skill at level ≥ 3). Every decision routes a ticket at a random point of
the area that needs a random skill at level ≥ 3. Contenders:

- skills + nearest:                 `("skills", "nearest")`
- skills + nearest + least_loaded:  the same plus `least_loaded`, loads from a dict
- team + skills + nearest:          the first with a team: about N/160 candidates
- round_robin:                      `("round_robin",)` over one team (N/20), over everyone
- brute force:                      skills + nearest the obvious way: a linear scan of every
                                    person (skill check, then a haversine for each one who
                                    qualifies) and the same tie rule; checked to pick the same
                                    assignee as `route` before anything is timed

Also timed: building the Roster, the 12 per-skill spatial grids a roster builds on first use
(each skill's first nearest decision pays for its grid once), and building a RouteRequest
(requests are built before the timed loops). Each rate is the best of --repeat runs of about
--seconds each. Goal: ≥ 1,000 skills + nearest decisions/s at 10,000 people.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.geo import haversine_km
from runtime.routing import Decision, Person, Roster, RouteRequest, route

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AREA = ((20.0, 45.0), (100.0, 125.0))
SKILLS = [f"skill{i:02d}" for i in range(12)]
TEAMS = [f"team{i:02d}" for i in range(20)]


def people(n: int, seed: int) -> list[Person]:
    rng = random.Random(seed)
    (lat0, lat1), (lon0, lon1) = AREA
    out = []
    for i in range(n):
        skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(1, 4))}
        out.append(
            Person(
                f"eng-{i:06d}",
                roles=frozenset({"engineer"}),
                teams=frozenset({rng.choice(TEAMS)}),
                skills=skills,
                location=(rng.uniform(lat0, lat1), rng.uniform(lon0, lon1)),
                location_at=NOW - timedelta(minutes=rng.randint(0, 600)),
            )
        )
    return out


def tickets(n: int, seed: int) -> list[tuple[tuple[float, float], str]]:
    rng = random.Random(seed)
    (lat0, lat1), (lon0, lon1) = AREA
    return [
        ((rng.uniform(lat0, lat1), rng.uniform(lon0, lon1)), rng.choice(SKILLS)) for _ in range(n)
    ]


def requests(
    chain: tuple[str, ...], spots: list[tuple[tuple[float, float], str]]
) -> list[RouteRequest]:
    return [
        RouteRequest(strategies=chain, now=NOW, skills={skill: 3}, location=loc)
        for loc, skill in spots
    ]


def brute_force(
    everyone: list[Person], loc: tuple[float, float], skill: str, tie_km: float
) -> str | None:
    """skills + nearest with no index: what a straightforward implementation does."""
    found = []
    for p in everyone:
        if p.active and p.skills.get(skill, 0) >= 3 and p.location is not None:
            found.append((haversine_km(loc, p.location), p.id))
    if not found:
        return None
    best = min(found)[0]
    return min(pid for d, pid in found if d <= best + tie_km)


def haversine_us() -> float:
    spots = [((20.0 + i % 25, 100.0 + i % 25), (21.0, 101.0)) for i in range(10_000)]
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for a, b in spots:
            haversine_km(a, b)
        best = min(best, time.perf_counter() - began)
    return best / len(spots) * 1e6


def timed(run: Callable[[int], object], per_run: int, repeat: int) -> float:
    """Best rate over `repeat` runs of `run(per_run)`, in calls per second."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        began = time.perf_counter()
        run(per_run)
        best = min(best, time.perf_counter() - began)
    return per_run / best


def calibrate(run: Callable[[int], object], seconds: float) -> int:
    """How many calls take about `seconds`."""
    n = 1
    while True:
        began = time.perf_counter()
        run(n)
        took = time.perf_counter() - began
        if took > seconds / 10 or n >= 1 << 20:
            return max(1, int(n * seconds / max(took, 1e-9)))
        n *= 4


def loop(
    roster: Roster, reqs: list[RouteRequest], load: Callable[[Collection[str]], Mapping[str, float]]
) -> Callable[[int], object]:
    turns = count()

    def run(n: int) -> object:
        out: Decision | None = None
        for i in range(n):
            out = route(roster, reqs[i % len(reqs)], load, lambda _key: next(turns))
        return out

    return run


ROWS = {
    "skills+nearest": "skills + nearest",
    "+least_loaded": "skills + nearest + least_loaded",
    "team+skills+nearest": "team + skills + nearest (~N/160 candidates)",
    "round_robin team": "round_robin over one team (~N/20)",
    "round_robin all": "round_robin over everyone",
    "brute force": "brute force skills + nearest",
}


def measure(n: int, args: argparse.Namespace) -> dict[str, float]:
    everyone = people(n, args.seed)
    gc.collect()
    began = time.perf_counter()
    roster = Roster(everyone)
    out = {"build_ms": (time.perf_counter() - began) * 1000}
    spots = tickets(2000, args.seed + 1)
    loads = {p.id: float(random.Random(p.id).randint(0, 6)) for p in everyone}

    def dict_load(ids: Collection[str]) -> Mapping[str, float]:
        return {pid: loads[pid] for pid in ids}

    began = time.perf_counter()
    for skill in SKILLS:  # what the first skills+nearest decision per skill pays, once
        roster.grid_for(roster.at_least(skill, 3))
    out["subgrids_ms"] = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    nearest = requests(("skills", "nearest"), spots)
    out["request_us"] = (time.perf_counter() - began) / len(spots) * 1e6
    # The assignee must be the brute force's, or the figures mean nothing (checked on the
    # first 200 tickets, 30 past 10,000 people, where each brute-force answer is slow).
    checks = 200 if n <= 10_000 else 30
    for req, (loc, skill) in list(zip(nearest, spots, strict=True))[:checks]:
        got = route(roster, req, dict_load, lambda _: 0).assignee
        want = brute_force(everyone, loc, skill, req.near_tie_km)
        assert got == want, (loc, skill, got, want)

    def brute(k: int) -> object:
        found = None
        for i in range(k):
            loc, skill = spots[i % len(spots)]
            found = brute_force(everyone, loc, skill, 1.0)
        return found

    in_team = [
        RouteRequest(
            strategies=("skills", "nearest"),
            now=NOW,
            team=TEAMS[i % len(TEAMS)],
            skills={skill: 3},
            location=loc,
        )
        for i, (loc, skill) in enumerate(spots)
    ]
    contenders: dict[str, Callable[[int], object]] = {
        "skills+nearest": loop(roster, nearest, dict_load),
        "+least_loaded": loop(
            roster, requests(("skills", "nearest", "least_loaded"), spots), dict_load
        ),
        "team+skills+nearest": loop(roster, in_team, dict_load),
        "round_robin team": loop(
            roster, [RouteRequest(strategies=("round_robin",), now=NOW, team=TEAMS[3])], dict_load
        ),
        "round_robin all": loop(
            roster, [RouteRequest(strategies=("round_robin",), now=NOW)], dict_load
        ),
        "brute force": brute,
    }
    for name, run in contenders.items():
        run(min(50, len(spots)))  # warm up the roster's memos
        out[name] = timed(run, calibrate(run, args.seconds), args.repeat)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--people", default="1000,10000,100000", help="roster sizes, comma-separated"
    )
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one timed run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per contender (best counts)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="--seconds 0.15 --repeat 2")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeat = 0.15, 2
    sizes = [int(s) for s in args.people.split(",")]
    results = []
    for n in sizes:
        print(f"measuring {n:,} people ...", file=sys.stderr, flush=True)
        results.append(measure(n, args))
    print(f"decisions/s, best of {args.repeat} runs of ~{args.seconds}s each; on this machine one")
    print(f"haversine_km call takes {haversine_us():.2f} µs (a yardstick for the figures)\n")
    head = " | ".join(f"{n:>9,}" for n in sizes)
    print(f"| {'people':<44} | {head} |")
    print(f"| {'-' * 44} | " + " | ".join("-" * 8 + ":" for _ in sizes) + " |")

    def row(label: str, cells: list[str]) -> None:
        print(f"| {label:<44} | " + " | ".join(f"{c:>9}" for c in cells) + " |")

    row("Roster() build", [f"{r['build_ms']:.0f} ms" for r in results])
    row("12 skill grids, built on first use", [f"{r['subgrids_ms']:.0f} ms" for r in results])
    row("RouteRequest() construction", [f"{r['request_us']:.1f} µs" for r in results])
    for key, label in ROWS.items():
        row(label, [f"{r[key]:,.0f}" for r in results])
    row(
        "skills + nearest ÷ brute force",
        [f"{r['skills+nearest'] / r['brute force']:.0f}×" for r in results],
    )


if __name__ == "__main__":
    main()
