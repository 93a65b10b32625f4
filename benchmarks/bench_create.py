"""CPU cost of `Runtime.create` and `Runtime.transition` in-process, on the IT service desk.

Run: .venv/bin/python benchmarks/bench_create.py [--quick] [--save FILE] [--baseline FILE]
                                                 [--profile]

What one operation is, on the memory store and on a SQLite file (WAL, a temporary folder):
  create      `Runtime.create` of an `incident` of examples/workflows/it_service_desk by an
              `employee`, as the HTTP benchmark posts it: the priority matrix, the "logged"
              notification, routing (which finds nobody: no people directory), three SLA
              policies considered and two clocks started.
  transition  one of `resolve` (by a team lead, with a resolution) and `reopen` (by the
              employee, with a comment), alternating over tickets created beforehand: each
              fires rules (a notification; a `set` and a notification) and moves SLA clocks.
The clock is a manual one starting on a Tuesday morning in New York and moving a minute per
command, so every run walks the same calendar days.

Each figure is CPU time (`time.process_time`) per operation, the median over interleaved
rounds. `--save` writes the figures to a JSON file; `--baseline` reads such a file (taken
before a change, by the same script) and prints each figure's ratio new/old. `--profile`
then profiles creates on the memory store with cProfile (shares, not absolute times).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.actors import Actor  # noqa: E402
from runtime.api import Runtime  # noqa: E402
from runtime.clock import ManualClock  # noqa: E402

PACK = ROOT / "examples" / "workflows" / "it_service_desk"
TENANT = "default"
EMPLOYEE = Actor.of("olivia", ["employee"], TENANT)
LEAD = Actor.of("tl1", ["team_lead"], TENANT)
INCIDENT: dict[str, Any] = {
    "site": "new_york",
    "category": "network",
    "affected_service": "office_network",
    "impact": "medium",
    "urgency": "low",
    "users_affected": 8,
    "description": "Laptops lose the Wi-Fi in 12B every few minutes.",
}
RESOLUTION = {
    "resolution_code": "config_change",
    "resolution_notes": "Access point firmware updated; roaming threshold lowered.",
}
START = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # Tuesday 09:00 in New York
STEP = timedelta(minutes=1)

Op = Callable[[], None]


class TickingClock(ManualClock):
    """A manual clock that moves on by STEP every time a command reads it."""

    def now(self) -> datetime:
        return self.advance(STEP)


def open_runtime(url: str) -> Runtime:
    return Runtime.open([PACK], url, clock=TickingClock(START), tenant=TENANT)


def creates(rt: Runtime) -> Op:
    def op() -> None:
        rt.create("incident", INCIDENT, EMPLOYEE, channel="api")

    return op


def transitions(rt: Runtime, tickets: int) -> Op:
    """resolve / reopen, round-robin over `tickets` tickets."""
    ids = [rt.create("incident", INCIDENT, EMPLOYEE, channel="api").id for _ in range(tickets)]
    resolved = dict.fromkeys(ids, False)
    turn = iter(range(1 << 62))

    def op() -> None:
        ticket = ids[next(turn) % len(ids)]
        if resolved[ticket]:
            rt.transition(ticket, "reopen", EMPLOYEE, comment="Still drops every few minutes.")
        else:
            rt.transition(ticket, "resolve", LEAD, RESOLUTION)
        resolved[ticket] = not resolved[ticket]

    return op


def cpu_per_op(op: Op, n: int) -> float:
    """µs of CPU per call of `op`, over `n` calls."""
    gc.collect()
    started = time.process_time()
    for _ in range(n):
        op()
    return (time.process_time() - started) / n * 1e6


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Median µs/op of each case over interleaved rounds."""
    with tempfile.TemporaryDirectory(prefix="bench_create_") as tmp:
        runtimes = {
            "memory": open_runtime("memory"),
            "sqlite": open_runtime(f"sqlite:///{Path(tmp) / 'tickets.db'}"),
        }
        try:
            cases: dict[str, Op] = {}
            for store, rt in runtimes.items():
                cases[f"create/{store}"] = creates(rt)
                cases[f"transition/{store}"] = transitions(rt, args.tickets)
            for op in cases.values():  # warm-up: blueprints compiled, caches filled
                cpu_per_op(op, args.n // 4 or 1)
            samples: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.rounds):
                for name, op in cases.items():
                    samples[name].append(cpu_per_op(op, args.n))
        finally:
            for rt in runtimes.values():
                rt.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def report(figures: dict[str, float], baseline: dict[str, float] | None) -> None:
    head = f"{'operation':<22}{'µs CPU/op':>12}"
    if baseline:
        head += f"{'before':>12}{'new/old':>10}"
    print(head)
    for name, value in figures.items():
        line = f"{name:<22}{value:>12,.0f}"
        if baseline and name in baseline:
            line += f"{baseline[name]:>12,.0f}{value / baseline[name]:>10.2f}"
        print(line)


def profile(args: argparse.Namespace) -> None:
    rt = open_runtime("memory")
    try:
        op = creates(rt)
        cpu_per_op(op, 50)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.n):
            op()
        prof.disable()
    finally:
        rt.close()
    print(f"\ncProfile of {args.n} creates on the memory store (tottime, top 25):")
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--save", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--baseline", type=Path, help="compare with figures saved before")
    parser.add_argument("--profile", action="store_true", help="then cProfile the creates")
    args = parser.parse_args()
    args.rounds, args.n, args.tickets = (3, 150, 40) if args.quick else (7, 400, 100)
    figures = measure(args)
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    report(figures, baseline)
    if args.save:
        args.save.write_text(json.dumps(figures, indent=2) + "\n")
    if args.profile:
        profile(args)


if __name__ == "__main__":
    main()
