"""Finding and firing due timers among many waiting ones, on SQLite and PostgreSQL.

Run: .venv/bin/python benchmarks/bench_timers.py [--quick] [--no-pg] [--profile] [--workers]

For each database and each N waiting timers (10,000, 100,000, 1,000,000; --quick: 10,000
and 100,000), on a fresh database (a SQLite file in a temporary directory; a fresh
PostgreSQL schema, dropped afterwards) with the pack `benchmarks/packs/lifecycle` and 100
tickets:

  - N timers of kind `event` due in the future (spread over the next 30 days) are inserted
    through the store's own `add_timers`, 20,000 per transaction (on PostgreSQL followed by
    `ANALYZE timers`, as autovacuum would do after such an insert);
  - then, per timed run, 10,000 more due in the past hour, round-robin over the tickets,
    and `Runtime.run_due(now, batch=B)` fires them, for B = 100 and B = 500: each firing
    loads the ticket, appends an `event` entry to its timeline, updates the ticket, runs
    the rules listening to the event (none) and marks the timer fired, `B` timers per
    transaction. Timers fired by earlier runs stay in the table (status `fired`), as in
    production;
  - finding alone is timed too: `due_timers(now, 10000)` and `due_timers(now, 100)` (one
    batch) in a read transaction, while the 10,000 are due;
  - the plan of the due query: SQLite `EXPLAIN QUERY PLAN`; PostgreSQL `EXPLAIN (ANALYZE,
    BUFFERS)` of the statement a worker runs (`FOR UPDATE SKIP LOCKED`, LIMIT 100).

Time is injected (a fixed instant), so runs are repeatable. The goal: firing time flat as
N grows; under 2 s for 10,000 on SQLite.

--profile: one firing run (10,000 timers, batch 100) on each database under cProfile: own
time by file or package and the hot functions, in µs per timer.

--workers (PostgreSQL): the real `ticketflow worker` command in separate processes on one
schema, 3,000 due timers (--quick: 1,000) on 200 tickets, wall-clock time until none is
waiting: one worker; four workers with the timers round-robin over the tickets in due order
(concurrent batches touch different tickets); four workers with the timers on random
tickets (concurrent batches touch the same tickets). Deadlocks are read from
pg_stat_database (the whole database: other activity counts too).

PostgreSQL URL: TICKETFLOW_BENCH_PG_URL, else TICKETFLOW_TEST_DATABASE_URL, else
postgresql+psycopg://postgres@127.0.0.1:5432/test; skipped with a note when unreachable.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import platform
import pstats
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from runtime.actors import Actor  # noqa: E402
from runtime.api import Runtime  # noqa: E402
from runtime.clock import ManualClock  # noqa: E402
from runtime.records import TimerRow  # noqa: E402

PACK = ROOT / "benchmarks" / "packs" / "lifecycle"
TEMPLATE = "incident"
TENANT = "default"
AGENT = Actor.of("a1", ["agent"])
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TICKETS = 100
DUE = 10_000  # timers fired per timed run
BATCHES = (100, 500)
CHUNK = 20_000  # timers inserted per transaction
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Settings:
    waiting: tuple[int, ...]
    rounds: int  # timed firing runs per batch size
    worker_timers: int


FULL = Settings(waiting=(10_000, 100_000, 1_000_000), rounds=2, worker_timers=3_000)
QUICK = Settings(waiting=(10_000, 100_000), rounds=1, worker_timers=1_000)


@dataclass
class Row:
    """The measurements of one (database, N waiting)."""

    backend: str
    waiting: int
    insert_s: float = 0.0
    find_all: list[float] = field(default_factory=list)  # due_timers(now, 10000), s
    find_batch: list[float] = field(default_factory=list)  # due_timers(now, 100), s
    fire: dict[int, list[float]] = field(default_factory=dict)  # batch → seconds per run


# -- set-up -------------------------------------------------------------------------------------


def seed(rt: Runtime) -> list[str]:
    return [rt.create(TEMPLATE, {"summary": f"Printer {n}"}, AGENT).id for n in range(TICKETS)]


def add_timers(rt: Runtime, count: int, make: Callable[[int], TimerRow]) -> float:
    """Insert `count` timers through the store, CHUNK per transaction; returns seconds."""
    began = time.perf_counter()
    for start in range(0, count, CHUNK):
        rows = [make(n) for n in range(start, min(count, start + CHUNK))]
        with rt.store.transaction() as tx:
            tx.add_timers(rows)
    return time.perf_counter() - began


def future_timer(ids: Sequence[str], count: int) -> Callable[[int], TimerRow]:
    """The n-th of `count` waiting timers, spread over the 30 days after NOW."""
    span = timedelta(days=30).total_seconds()

    def make(n: int) -> TimerRow:
        due = NOW + timedelta(seconds=1 + span * n / count)
        payload = {"event": "reminder"}
        return TimerRow(TENANT, f"w{n:07d}", due, "event", ids[n % len(ids)], payload)

    return make


def due_timer(ids: Sequence[str], prefix: str) -> Callable[[int], TimerRow]:
    """The n-th of DUE timers due in the hour before NOW, round-robin over the tickets."""

    def make(n: int) -> TimerRow:
        due = NOW - timedelta(hours=1) + timedelta(seconds=3600 * n / DUE)
        payload = {"event": "ping"}
        return TimerRow(TENANT, f"{prefix}{n:05d}", due, "event", ids[n % len(ids)], payload)

    return make


def count_waiting(rt: Runtime) -> int:
    with rt.store.engine.connect() as conn:  # type: ignore[attr-defined]
        query = "SELECT count(*) FROM timers WHERE status = 'waiting'"
        return int(conn.exec_driver_sql(query).scalar_one())


# -- measuring --------------------------------------------------------------------------------


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    began = time.perf_counter()
    out = run()
    return time.perf_counter() - began, out


def find(rt: Runtime, limit: int) -> list[TimerRow]:
    with rt.store.read() as tx:
        return tx.due_timers(NOW, limit)


def measure(backend: str, url: str, waiting: int, s: Settings, plans: list[str]) -> Row:
    row = Row(backend, waiting)
    rt = Runtime.open([PACK], database_url=url, clock=ManualClock(NOW))
    try:
        ids = seed(rt)
        row.insert_s = add_timers(rt, waiting, future_timer(ids, waiting))
        if backend == "PostgreSQL":
            with rt.store.engine.begin() as conn:  # type: ignore[attr-defined]
                conn.exec_driver_sql("ANALYZE timers")
        runs = [batch for _ in range(s.rounds) for batch in BATCHES]
        for number, batch in enumerate(runs):
            add_timers(rt, DUE, due_timer(ids, f"d{number}-"))
            for _ in range(3):
                seconds, found = timed(lambda: find(rt, DUE))
                assert len(found) == DUE, len(found)
                row.find_all.append(seconds)
            for _ in range(10):
                row.find_batch.append(timed(lambda: find(rt, 100))[0])
            if number == 0:
                plans.append(explain(rt, backend, waiting))
            seconds, fired = timed(lambda b=batch: rt.run_due(now=NOW, batch=b))
            assert fired == DUE, fired
            row.fire.setdefault(batch, []).append(seconds)
            print(
                f"  {backend} N={waiting:,} batch {batch}: fired {DUE:,} in {seconds:.2f} s",
                flush=True,
            )
        assert count_waiting(rt) == waiting  # the future ones untouched
    finally:
        rt.close()
    return row


def explain(rt: Runtime, backend: str, waiting: int) -> str:
    """The plan of the store's own due statement (as a worker runs it on PostgreSQL)."""
    store: Any = rt.store
    name = "due_locked" if backend == "PostgreSQL" else "due"
    prepared = store._statements[name]  # the exact SQL the store runs
    params = prepared.params({"now": NOW, "limit": 100})
    params = params if isinstance(params, dict) else tuple(params)
    head = f"{backend}, N={waiting:,} waiting + {DUE:,} due, LIMIT 100:"
    with store.engine.connect() as conn:
        if backend == "PostgreSQL":
            sql = f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {prepared.sql}"
            lines = [r[0] for r in conn.exec_driver_sql(sql, params)]
            conn.rollback()  # the rows it locked
        else:
            sql = f"EXPLAIN QUERY PLAN {prepared.sql}"
            lines = [r[-1] for r in conn.exec_driver_sql(sql, params)]
    return "\n".join([head, *(f"    {line}" for line in lines)])


# -- databases ----------------------------------------------------------------------------------


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="tf-timers-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'timers.db'}"


def pg_base_url() -> str:
    return (
        os.environ.get("TICKETFLOW_BENCH_PG_URL")
        or os.environ.get("TICKETFLOW_TEST_DATABASE_URL")
        or DEFAULT_PG
    )


@contextmanager
def pg_url(base: str) -> Iterator[str]:
    """A fresh schema and a URL whose connections use it; dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()


def pg_available(base: str, notes: list[str]) -> bool:
    engine = sa.create_engine(base, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
            sync = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
    except sa.exc.SQLAlchemyError as exc:
        notes.append(f"PostgreSQL skipped: {base} is unreachable ({exc.__class__.__name__})")
        return False
    finally:
        engine.dispose()
    where = sa.engine.make_url(base).render_as_string(hide_password=True).split("@")[-1]
    notes.append(f"PostgreSQL {version}, synchronous_commit={sync}, at {where}")
    return True


# -- --profile ----------------------------------------------------------------------------------


def _layer(path: str, func: str) -> str:
    """Where a profiled function lives: a project file, a package, or a stdlib module."""
    if path == "~":
        for driver in ("sqlite3", "psycopg"):
            if driver in func:
                return f"{driver} (C, the database call)"
        return "builtins"
    if path.startswith(str(ROOT)) and "site-packages" not in path:
        return str(Path(path).relative_to(ROOT))
    parts = Path(path).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    return Path(path).with_suffix("").name


def _where(key: tuple[str, int, str]) -> str:
    path, line, func = key
    return func if path == "~" else f"{func} ({_layer(path, func)}:{line})"


def profile(backend: str, url: str, top: int = 16) -> None:
    rt = Runtime.open([PACK], database_url=url, clock=ManualClock(NOW))
    try:
        ids = seed(rt)
        add_timers(rt, DUE, future_timer(ids, DUE))
        add_timers(rt, DUE, due_timer(ids, "p-"))
        plain, _ = timed(lambda: rt.run_due(now=NOW, batch=100))  # also the warm-up
        add_timers(rt, DUE, due_timer(ids, "q-"))
        prof = cProfile.Profile()
        gc.collect()
        prof.enable()
        fired = rt.run_due(now=NOW, batch=100)
        prof.disable()
        assert fired == DUE
    finally:
        rt.close()
    raw: dict[Any, Any] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    n = DUE
    print(
        f"\n## profile: {backend}, run_due firing {n:,} timers, batch 100: {plain:.2f} s "
        f"unprofiled, {total:.2f} s under cProfile ({total / n * 1e6:,.0f} µs per timer)"
    )
    layers: dict[str, float] = {}
    for (path, _, func), (_, _, tt, _, _) in raw.items():
        layers[_layer(path, func)] = layers.get(_layer(path, func), 0.0) + tt
    print(f"own time by file / package (top {top}):")
    for name, tt in sorted(layers.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {tt / total:6.1%}  {tt / n * 1e6:7.1f} µs/timer  {name}")
    print(f"hot functions by own time (top {top}):")
    for key, (_, nc, tt, ct, _) in sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]:
        print(
            f"  {tt / total:6.1%}  {tt / n * 1e6:7.1f} µs/timer  cum {ct / total:6.1%}  "
            f"{nc / n:5.1f} calls/timer  {_where(key)}"
        )
    mine = [(k, v) for k, v in raw.items() if k[0].startswith(str(ROOT))]
    print(f"project functions by cumulative time (top {top + 6}):")
    for key, (_, nc, _, ct, _) in sorted(mine, key=lambda kv: -kv[1][3])[: top + 6]:
        print(
            f"  {ct / total:6.1%}  {ct / n * 1e6:7.1f} µs/timer  {nc / n:5.1f} calls/timer  "
            f"{_where(key)}"
        )


# -- --workers ----------------------------------------------------------------------------------


def deadlocks(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        query = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        return int(conn.exec_driver_sql(query).scalar_one())


def workers_run(base: str, total: int, workers: int, spread: str) -> tuple[float, int]:
    """Seconds until `workers` worker processes have fired `total` due timers; and the
    deadlocks PostgreSQL counted meanwhile."""
    with pg_url(base) as url:
        rt = Runtime.open([PACK], database_url=url)  # the wall clock, as the workers
        engine = sa.create_engine(url)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            ids = [rt.create(TEMPLATE, {"summary": f"P{n}"}, AGENT).id for n in range(200)]
            pick = random.Random(1)
            base_at = datetime.now(UTC) - timedelta(hours=1)

            def make(n: int) -> TimerRow:
                ticket = ids[n % len(ids)] if spread == "round-robin" else pick.choice(ids)
                due = base_at + timedelta(seconds=n / 10)
                return TimerRow(TENANT, f"d{n:06d}", due, "event", ticket, {"event": "ping"})

            add_timers(rt, total, make)
            before = deadlocks(engine)
            command = [sys.executable, "-m", "cli.main", "worker", "--database", url]
            command += ["--batch", "50", "--interval", "0.05"]
            began = time.monotonic()
            for _ in range(workers):
                quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
                processes.append(subprocess.Popen(command, cwd=ROOT, **quiet))
            while count_waiting(rt):
                if time.monotonic() - began > 900:
                    raise RuntimeError("the workers did not drain the queue in 15 minutes")
                time.sleep(0.05)
            elapsed = time.monotonic() - began
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=30)  # they finish the batch in hand
            return elapsed, deadlocks(engine) - before
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            engine.dispose()
            rt.close()


def section_workers(base: str, s: Settings) -> None:
    total = s.worker_timers
    print(f"\n## worker processes on PostgreSQL: {total:,} due timers on 200 tickets, batch 50")
    print("  (wall-clock time from starting the processes, their ~1 s start-up included)")
    print(f"  {'':38}{'seconds':>9}{'timers/s':>10}{'deadlocks':>11}")
    for workers, spread in ((1, "round-robin"), (4, "round-robin"), (4, "random")):
        elapsed, dead = workers_run(base, total, workers, spread)
        label = f"{workers} worker{'s' if workers > 1 else ''}, {spread} tickets"
        print(f"  {label:38}{elapsed:9.1f}{total / elapsed:10,.0f}{dead:11}", flush=True)


# -- report -------------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def report(rows: list[Row], s: Settings) -> None:
    rounds = f"best of {s.rounds}" if s.rounds > 1 else "one run"
    print(f"\n## firing {DUE:,} due timers among N waiting ({rounds} per batch size)")
    head = "| database | N waiting | insert N (µs/timer) | find 10,000 | find 100 |"
    cols = "".join(f" fire, batch {b} | timers/s |" for b in BATCHES)
    print(head + cols)
    print("| --- " * (5 + 2 * len(BATCHES)) + "|")
    for r in rows:
        cells = [
            r.backend,
            f"{r.waiting:,}",
            f"{r.insert_s / r.waiting * 1e6:.0f}",
            f"{min(r.find_all) * 1e3:.0f} ms",
            f"{statistics.median(r.find_batch) * 1e3:.1f} ms",
        ]
        for b in BATCHES:
            best = min(r.fire[b])
            span = "" if len(r.fire[b]) == 1 else f" ({max(r.fire[b]):.2f})"
            cells += [f"{best:.2f} s{span}", f"{DUE / best:,.0f}"]
        print("| " + " | ".join(cells) + " |")
    sqlite = [min(min(r.fire[b]) for b in BATCHES) for r in rows if r.backend == "SQLite"]
    if sqlite:
        worst = max(sqlite)
        verdict = "met" if worst < 2 else "MISSED"
        print(
            f"goal: {DUE:,} fired in under 2 s on SQLite at every N: {verdict} "
            f"(slowest best run {worst:.2f} s)"
        )
    print("(find: median for 100, best for 10,000; fire: best run, the slowest in brackets)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N up to 100,000, one round")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument(
        "--profile", action="store_true", help="profile one firing run per database"
    )
    parser.add_argument(
        "--workers", action="store_true", help="also time worker processes on PostgreSQL"
    )
    args = parser.parse_args()
    s = QUICK if args.quick else FULL
    started = time.perf_counter()
    notes: list[str] = []
    base = pg_base_url()
    pg = not args.no_pg and pg_available(base, notes)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"ticketflow timer benchmark — Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, SQLAlchemy {_version('sqlalchemy')}, psycopg "
        f"{_version('psycopg')}, {os.cpu_count()} CPUs, load average {load:.1f}"
        f"{' (--quick)' if args.quick else ''}"
    )
    for note in notes:
        print(note)
    rows: list[Row] = []
    plans: list[str] = []
    for waiting in s.waiting:
        with sqlite_url() as url:
            rows.append(measure("SQLite", url, waiting, s, plans))
    if pg:
        for waiting in s.waiting:
            with pg_url(base) as url:
                rows.append(measure("PostgreSQL", url, waiting, s, plans))
    report(rows, s)
    print("\n## plans of the due query")
    for plan in plans:
        print(plan)
    if args.profile:
        with sqlite_url() as url:
            profile("SQLite", url)
        if pg:
            with pg_url(base) as url:
                profile("PostgreSQL", url)
    if args.workers:
        if pg:
            section_workers(base, s)
        else:
            print("\n--workers needs PostgreSQL")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
