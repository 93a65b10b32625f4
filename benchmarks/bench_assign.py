"""Routed ticket creation end to end: `Runtime.create` with skills + nearest + least_loaded
over a directory of 10,000 people, next to the same create without routing.

Run: .venv/bin/python benchmarks/bench_assign.py [--people N] [--tickets N]

The pack is `tests/packs/dispatch` (template `repair`: skills from the category with a
minimum level, nearest from the site within 1 km ties, least_loaded weighted by priority;
template `manual_job`: no automatic routing). People get random skills and levels, teams
and locations over a 300 km square around Shanghai. Each create is one transaction: the
ticket, its events and audit rows, the routing decision, the load query, the assignment.
The directory snapshot is built once (its revision does not move) and reused.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.actors import Actor  # noqa: E402
from runtime.api import Runtime  # noqa: E402

PACK = ROOT / "tests" / "packs" / "dispatch"
SKILLS = ("hvac", "electrical", "refrigeration")


def people(n: int, rng: random.Random) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(n):
        skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(1, 2))}
        out.append(
            {
                "id": f"p{i:06d}",
                "roles": ["engineer"],
                "teams": ["north"],
                "skills": skills,
                "location": {
                    "lat": 31.2 + rng.uniform(-1.4, 1.4),
                    "lon": 121.5 + rng.uniform(-1.6, 1.6),
                },
            }
        )
    return out


def rate(rt: Runtime, template: str, count: int, rng: random.Random) -> float:
    agent = Actor.of("agent", ["agent"])
    started = time.perf_counter()
    for _ in range(count):
        values: dict[str, object] = {}
        if template == "repair":
            site = {"lat": 31.2 + rng.uniform(-1, 1), "lon": 121.5 + rng.uniform(-1, 1)}
            values = {"category": rng.choice(["hvac", "lighting", "fridge"]), "site": site}
        rt.create(template, values, agent)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--tickets", type=int, default=1000)
    args = parser.parse_args()
    rng = random.Random(7)
    print(f"{args.tickets:,} creates, {args.people:,} people in the directory")
    header = f"{'store':<8} {'routed (skills+nearest+least_loaded)':>38}"
    print(f"{header} {'unrouted':>10} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in (("memory", "memory"), ("sqlite", f"sqlite:///{tmp}/bench.db")):
            rt = Runtime.open(PACK, database_url=url)
            rt.put_people("default", people(args.people, rng))
            rt.people("default")  # build the snapshot outside the timing
            routed = rate(rt, "repair", args.tickets, rng)
            plain = rate(rt, "manual_job", args.tickets, rng)
            rt.close()
            print(f"{name:<8} {routed:>32,.0f} /s {plain:>8,.0f} /s {routed / plain:>6.0%}")


if __name__ == "__main__":
    main()
