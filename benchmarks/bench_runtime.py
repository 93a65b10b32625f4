"""Runtime throughput against its peers and against raw database loops, in one run.

Run: .venv/bin/python benchmarks/bench_runtime.py [--quick] [--profile] [--no-pg]
(the peers come with `pip install -e .[bench]`: transitions, python-statemachine)

(a) In memory, lifecycles/s: one lifecycle is create + the eight transitions of
    `benchmarks/packs/lifecycle` (guard evaluated, rule fired, events and audit written),
    through `Runtime` on the in-memory store; against the same machine (states, transitions,
    a condition on `resolve`) in pytransitions (a `Machine` per ticket, and one shared
    `Machine` with `add_model`/`remove_model` per ticket) and python-statemachine (an
    instance per ticket).
(b) SQLite file in a temporary directory (WAL, synchronous=NORMAL), transition commands/s:
    `Runtime.transition` alternating wait/resume on pre-created tickets, against raw sqlite3
    loops on the same schema writing, per transaction:
      ceiling  UPDATE tickets + INSERT events (the issue's "raw update+insert" ceiling)
      minimum  UPDATE tickets + INSERT events + INSERT audit (what a command must write)
      mirror   the six statements ticketflow issues: SELECT the ticket, UPDATE it, INSERT
               the event, SELECT the audit head, INSERT the audit row, UPDATE the head
    The UPDATE sets state, version, updated_at, state_entered_at and event_seq WHERE
    tenant, id and the expected version match; JSON payloads are the same text ticketflow
    writes; the audit hash is a sha256 chained to the previous one.
(c) PostgreSQL: (b) against raw psycopg loops, each store in a fresh schema dropped
    afterwards. URL: TICKETFLOW_BENCH_PG_URL, else TICKETFLOW_TEST_DATABASE_URL, else
    postgresql+psycopg://postgres@127.0.0.1:5432/test; skipped when unreachable.

Contenders run in interleaved rounds of about `target` seconds each, after a warm-up; the
table gives the median rate and the range over the rounds, and each ratio is the median of
the per-round ratios (robust to load from other processes). `--profile` then runs
ticketflow's (a) and (b) paths under cProfile and prints time by layer and the hot spots,
in µs per lifecycle or per command.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import itertools
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.actors import Actor  # noqa: E402
from runtime.api import Runtime  # noqa: E402
from runtime.audit import GENESIS  # noqa: E402
from runtime.store.sql import upgrade  # noqa: E402

PACK = ROOT / "benchmarks" / "packs" / "lifecycle"
TEMPLATE = "incident"
TENANT = "default"
AGENT = Actor.of("a1", ["agent"])
FIELDS = {"summary": "Printer on fire"}
STATES = (
    "new", "triaged", "assigned", "in_progress", "waiting", "resolved", "verified", "closed",
)
# (name, from, to): the pack's workflow, checked against the pack at start-up.
TRANSITIONS = (
    ("triage", "new", "triaged"),
    ("assign", "triaged", "assigned"),
    ("start", "assigned", "in_progress"),
    ("wait", "in_progress", "waiting"),
    ("resume", "waiting", "in_progress"),
    ("resolve", "in_progress", "resolved"),
    ("verify", "resolved", "verified"),
    ("close", "verified", "closed"),
)
LIFECYCLE = tuple(name for name, _, _ in TRANSITIONS)
GUARDED = "resolve"  # when: 'priority != "P1" or approved'
TO_IN_PROGRESS = LIFECYCLE[:3]
# The loop timed in (b) and (c): from a state, the transition and where it leads.
LOOP = {"in_progress": ("wait", "waiting"), "waiting": ("resume", "in_progress")}
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

Run = Callable[[int], None]


@dataclass(frozen=True)
class Settings:
    rounds: int  # interleaved rounds per section
    target: float  # seconds per timed run
    warm: float  # seconds of warm-up (and calibration) per contender
    tickets: int  # tickets the command loops cycle through
    profile_lifecycles: int
    profile_commands: int


FULL = Settings(rounds=9, target=0.5, warm=0.3, tickets=400, profile_lifecycles=400,
                profile_commands=3000)
QUICK = Settings(rounds=3, target=0.15, warm=0.05, tickets=60, profile_lifecycles=60,
                 profile_commands=400)


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Case:
    """One contender: `start` gives its run function (called once per round if `per_round`,
    so in-memory state does not pile up across rounds)."""

    label: str
    start: Callable[[], Run]
    per_round: bool = False


@dataclass
class Result:
    label: str
    rates: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def best(self) -> float:
        return max(self.rates)

    @property
    def span(self) -> str:
        return f"{_num(min(self.rates))}–{_num(max(self.rates))}"

    def ratio(self, other: Result) -> float:
        """The median over rounds of this rate ÷ the other's in the same round: the two ran
        seconds apart, so load from other processes mostly cancels out."""
        return statistics.median(a / b for a, b in zip(self.rates, other.rates, strict=True))


def _timed(run: Run, n: int) -> float:
    gc.collect()
    started = time.perf_counter()
    run(n)
    return time.perf_counter() - started


def _calibrate(run: Run, warm: float) -> float:
    """Run batches, doubling, until one takes at least half of `warm`: warms the code path
    up and returns the rate of the last batch."""
    n = 1
    while True:
        elapsed = _timed(run, n)
        if elapsed >= warm / 2:
            return n / elapsed
        n *= 2


def compare(cases: Sequence[Case], s: Settings) -> list[Result]:
    """Median rates of the cases over interleaved rounds (the starting case rotates)."""
    runs = [case.start() for case in cases]
    sizes = [max(1, int(_calibrate(run, s.warm) * s.target)) for run in runs]
    results = [Result(case.label) for case in cases]
    for r in range(s.rounds):
        order = list(range(len(cases)))
        order = order[r % len(order):] + order[: r % len(order)]
        for i in order:
            if cases[i].per_round and r > 0:
                runs[i] = cases[i].start()
                runs[i](1)  # first-use costs (a runtime compiles its blueprint) stay out
            results[i].rates.append(sizes[i] / _timed(runs[i], sizes[i]))
    return results


def _num(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:,.1f}"


# -- (a) in memory ----------------------------------------------------------------------------


def check_pack(rt: Runtime) -> None:
    """The peers are built from TRANSITIONS: it must be the pack's workflow."""
    (bp,) = rt.current(TENANT)
    wf = bp.templates[TEMPLATE].workflow
    found = sorted((tr.name, src, tr.to) for src, trs in wf.by_state.items() for tr in trs)
    if found != sorted(TRANSITIONS) or set(wf.states) != set(STATES):
        raise SystemExit(f"benchmarks/packs/lifecycle no longer matches TRANSITIONS: {found}")
    if wf.index[("in_progress", GUARDED)].guard is None:
        raise SystemExit(f"'{GUARDED}' lost its guard")


def ticketflow_lifecycles() -> Run:
    rt = Runtime.open([PACK], database_url="memory")
    create, transition = rt.create, rt.transition

    def run(n: int) -> None:
        for _ in range(n):
            t = create(TEMPLATE, FIELDS, AGENT)
            for name in LIFECYCLE:
                t = transition(t.id, name, AGENT)
            if t.state != "closed" or t.fields["follow_up"] is not True:
                raise AssertionError(f"lifecycle ended in {t.state}, fields {t.fields}")

    return run


class PeerTicket:
    """The model a peer state machine drives: the fields the guard reads."""

    def __init__(self) -> None:
        self.priority = "P3"
        self.approved = False

    def can_resolve(self) -> bool:
        return self.priority != "P1" or self.approved


PT_TRANSITIONS = [
    {"trigger": name, "source": src, "dest": to}
    | ({"conditions": "can_resolve"} if name == GUARDED else {})
    for name, src, to in TRANSITIONS
]


def _fire(model: Any) -> None:
    for name in LIFECYCLE:
        getattr(model, name)()
    if model.state != "closed":
        raise AssertionError(f"peer lifecycle ended in {model.state}")


def pytransitions_per_ticket() -> Run:
    from transitions import Machine

    def run(n: int) -> None:
        for _ in range(n):
            model = PeerTicket()
            Machine(model=model, states=list(STATES), transitions=PT_TRANSITIONS,
                    initial="new", auto_transitions=False)
            _fire(model)

    return run


def pytransitions_shared() -> Run:
    from transitions import Machine

    machine = Machine(model=None, states=list(STATES), transitions=PT_TRANSITIONS,
                      initial="new", auto_transitions=False)

    def run(n: int) -> None:
        for _ in range(n):
            model = PeerTicket()
            machine.add_model(model)
            _fire(model)
            machine.remove_model(model)

    return run


def statemachine_class() -> type[Any]:
    """A python-statemachine class with the states and transitions of TRANSITIONS."""
    from statemachine import State, StateMachine

    states = {s: State(initial=s == STATES[0], final=s == STATES[-1]) for s in STATES}
    attrs: dict[str, Any] = {"__module__": __name__, **states}
    for name, src, to in TRANSITIONS:
        extra = {"cond": "can_resolve"} if name == GUARDED else {}
        attrs[name] = states[src].to(states[to], **extra)
    return type("IncidentMachine", (StateMachine,), attrs)


def statemachine_per_ticket() -> Run:
    machine = statemachine_class()

    def run(n: int) -> None:
        for _ in range(n):
            model = PeerTicket()
            sm = machine(model)
            for name in LIFECYCLE:
                getattr(sm, name)()
            if model.state != "closed":
                raise AssertionError(f"peer lifecycle ended in {model.state}")

    return run


def section_a(s: Settings) -> list[Result]:
    cases = [
        Case("ticketflow Runtime, memory store", ticketflow_lifecycles, per_round=True),
        Case(f"pytransitions {_version('transitions')}, Machine per ticket",
             pytransitions_per_ticket, per_round=True),
        Case("pytransitions, shared Machine + add/remove_model", pytransitions_shared,
             per_round=True),
        Case(f"python-statemachine {_version('python-statemachine')}, instance per ticket",
             statemachine_per_ticket, per_round=True),
    ]
    return compare(cases, s)


# -- (b) and (c): persisted commands ----------------------------------------------------------


def seed(rt: Runtime, count: int) -> list[str]:
    """`count` tickets in `in_progress`, where the wait/resume loop starts."""
    ids = []
    for _ in range(count):
        t = rt.create(TEMPLATE, FIELDS, AGENT)
        for name in TO_IN_PROGRESS:
            rt.transition(t.id, name, AGENT)
        ids.append(t.id)
    return ids


def ticketflow_commands(rt: Runtime, ids: list[str]) -> Run:
    """Transition commands round-robin over the tickets: every command is a real move."""
    state = dict.fromkeys(ids, "in_progress")
    order = itertools.cycle(ids)
    transition = rt.transition

    def run(n: int) -> None:
        for _ in range(n):
            ticket_id = next(order)
            name, to = LOOP[state[ticket_id]]
            if transition(ticket_id, name, AGENT).state != to:
                raise AssertionError(f"{ticket_id} did not reach {to}")
            state[ticket_id] = to

    return run


# What ticketflow writes for the loop's transitions, as stored (compact JSON).
EVENT_DATA = {
    name: f'{{"transition":"{name}","from":"{src}","to":"{to}"}}'
    for src, (name, to) in LOOP.items()
}
AUDIT_BEFORE = {name: f'{{"state":"{src}"}}' for src, (name, _) in LOOP.items()}
AUDIT_AFTER = {name: f'{{"state":"{to}"}}' for _, (name, to) in LOOP.items()}
RAW_KINDS = {
    "ceiling": "UPDATE + INSERT event (issue's ceiling)",
    "minimum": "UPDATE + INSERT event + INSERT audit",
    "mirror": "ticketflow's 6 statements",
}


@dataclass(frozen=True)
class Raw:
    """What differs between the raw sqlite3 and psycopg loops."""

    cursor: Any
    begin: Callable[[], None]
    commit: Callable[[], None]
    now: Callable[[], Any]
    mark: str  # parameter marker
    lock: str  # row lock of the audit head (PostgreSQL)

    def sql(self, text: str) -> str:
        return text.replace("?", self.mark)


def raw_loop(raw: Raw, kind: str) -> Run:
    """One transition per transaction, written straight through the driver (see the module
    docstring for what each kind writes)."""
    cur, sql = raw.cursor, raw.sql
    select_ticket = sql("SELECT * FROM tickets WHERE tenant_id = ? AND id = ?")
    update_ticket = sql(
        "UPDATE tickets SET state = ?, version = ?, updated_at = ?, state_entered_at = ?, "
        "event_seq = ? WHERE tenant_id = ? AND id = ? AND version = ?"
    )
    insert_event = sql(
        "INSERT INTO events (tenant_id, ticket_id, seq, at, kind, actor, data, visibility) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    select_head = sql("SELECT seq, hash FROM audit_heads WHERE tenant_id = ?") + raw.lock
    insert_audit = sql(
        'INSERT INTO audit (tenant_id, seq, at, actor, action, subject, "before", "after", '
        "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    set_head = sql("UPDATE audit_heads SET seq = ?, hash = ? WHERE tenant_id = ?")
    cur.execute(sql("SELECT id, state, version, event_seq FROM tickets WHERE tenant_id = ?"),
                (TENANT,))
    tickets = {r[0]: (r[1], r[2], r[3]) for r in cur.fetchall()}
    cur.execute(select_head, (TENANT,))
    head = cur.fetchone()
    raw.commit()
    audit_seq, audit_hash = int(head[0]), str(head[1])
    state_at, version_at, seq_at = 6, 8, 22  # column positions in `tickets`
    order = itertools.cycle(sorted(tickets))
    mirror, with_audit = kind == "mirror", kind != "ceiling"

    def run(n: int) -> None:
        nonlocal audit_seq, audit_hash
        for _ in range(n):
            ticket_id = next(order)
            now = raw.now()
            raw.begin()
            if mirror:
                cur.execute(select_ticket, (TENANT, ticket_id))
                row = cur.fetchone()
                state, version, seq = row[state_at], row[version_at], row[seq_at]
            else:
                state, version, seq = tickets[ticket_id]
            name, to = LOOP[state]
            cur.execute(update_ticket, (to, version + 1, now, now, seq + 1, TENANT, ticket_id,
                                        version))
            if cur.rowcount != 1:
                raise AssertionError(f"{ticket_id} changed under the raw loop")
            cur.execute(insert_event, (TENANT, ticket_id, seq + 1, now, "transitioned",
                                       AGENT.id, EVENT_DATA[name], "public"))
            if with_audit:
                if mirror:
                    cur.execute(select_head, (TENANT,))
                    audit_seq, audit_hash = cur.fetchone()
                after = AUDIT_AFTER[name]
                digest = hashlib.sha256(
                    f"{audit_hash}|{audit_seq + 1}|{ticket_id}|{after}".encode()
                ).hexdigest()
                cur.execute(insert_audit, (TENANT, audit_seq + 1, now, AGENT.id, "transition",
                                           ticket_id, AUDIT_BEFORE[name], after, audit_hash,
                                           digest))
                audit_seq, audit_hash = audit_seq + 1, digest
                if mirror:
                    cur.execute(set_head, (audit_seq, audit_hash, TENANT))
            raw.commit()
            tickets[ticket_id] = (to, version + 1, seq + 1)

    return run


SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


def _sqlite_text_now() -> str:
    # How SQLAlchemy stores ticketflow's UTC datetimes in SQLite.
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def sqlite_raw(path: Path, source: Path, kind: str) -> tuple[Run, sqlite3.Connection]:
    """A raw loop on a copy of the schema at `path`, with the tickets of `source`."""
    upgrade(f"sqlite:///{path}")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(pragma)
    conn.execute("ATTACH DATABASE ? AS src", (str(source),))
    conn.execute("BEGIN")
    conn.execute("INSERT INTO tickets SELECT * FROM src.tickets")
    conn.execute("INSERT INTO audit_heads VALUES (?, 0, ?)", (TENANT, GENESIS))
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE src")
    cur = conn.cursor()
    raw = Raw(cur, lambda: cur.execute("BEGIN IMMEDIATE"), lambda: cur.execute("COMMIT"),
              _sqlite_text_now, "?", "")
    cur.execute("BEGIN")  # raw_loop reads its starting point, then commits
    return raw_loop(raw, kind), conn


def section_b(s: Settings, notes: list[str]) -> list[Result]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tf-bench-")))
        path = tmp / "ticketflow.db"
        rt = Runtime.open([PACK], database_url=f"sqlite:///{path}")
        stack.callback(rt.close)
        ids = seed(rt, s.tickets)
        with rt.store.engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        notes.append(f"ticketflow's SQLite connection: journal_mode={mode}, synchronous={sync} "
                     "(1 = NORMAL)")
        cases = [Case("ticketflow Runtime.transition", lambda: ticketflow_commands(rt, ids))]
        for kind, label in RAW_KINDS.items():

            def start(kind: str = kind) -> Run:
                run, conn = sqlite_raw(tmp / f"raw_{kind}.db", path, kind)
                stack.callback(conn.close)
                return run

            cases.append(Case(f"raw sqlite3: {label}", start))
        cases.append(Case("reference: the same loop, ticketflow memory store",
                          lambda: memory_commands(s)))
        return compare(cases, s)


def memory_commands(s: Settings) -> Run:
    """The command loop of (b) on the in-memory store: the runtime without a database."""
    rt = Runtime.open([PACK], database_url="memory")
    return ticketflow_commands(rt, seed(rt, s.tickets))


def pg_base_url() -> str:
    return (os.environ.get("TICKETFLOW_BENCH_PG_URL")
            or os.environ.get("TICKETFLOW_TEST_DATABASE_URL") or DEFAULT_PG)


def _libpq(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def pg_schema(admin: Any, base: str) -> Iterator[tuple[str, str]]:
    """A fresh schema and a SQLAlchemy URL whose connections use it; dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield schema, f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def section_c(s: Settings, notes: list[str]) -> list[Result] | None:
    import psycopg

    base = pg_base_url()
    try:
        admin = psycopg.connect(_libpq(base), autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        notes.append(f"PostgreSQL skipped: {base} is unreachable ({str(exc).strip()})")
        return None
    with ExitStack() as stack:
        stack.callback(admin.close)
        version = admin.execute("SHOW server_version").fetchone()
        sync = admin.execute("SHOW synchronous_commit").fetchone()
        notes.append(f"PostgreSQL {version[0] if version else '?'}, synchronous_commit="
                     f"{sync[0] if sync else '?'}, at {_libpq(base).split('@')[-1]}")
        schema, url = stack.enter_context(pg_schema(admin, base))
        rt = Runtime.open([PACK], database_url=url)
        stack.callback(rt.close)
        ids = seed(rt, s.tickets)
        cases = [Case("ticketflow Runtime.transition", lambda: ticketflow_commands(rt, ids))]
        for kind, label in RAW_KINDS.items():

            def start(kind: str = kind) -> Run:
                raw_schema, raw_url = stack.enter_context(pg_schema(admin, base))
                upgrade(raw_url)
                copy = f'INSERT INTO "{raw_schema}".tickets SELECT * FROM "{schema}".tickets'
                admin.execute(copy)
                admin.execute(f'INSERT INTO "{raw_schema}".audit_heads VALUES (%s, 0, %s)',
                              (TENANT, GENESIS))
                conn = psycopg.connect(_libpq(base), options=f"-csearch_path={raw_schema}")
                stack.callback(conn.close)
                raw = Raw(conn.cursor(), lambda: None, conn.commit, lambda: datetime.now(UTC),
                          "%s", " FOR UPDATE")
                return raw_loop(raw, kind)

            cases.append(Case(f"raw psycopg: {label}", start))
        return compare(cases, s)


# -- profiling --------------------------------------------------------------------------------


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
    stdlib = Path(path).with_suffix("").name
    return parts[-2] if stdlib in ("__init__", "encoder", "decoder") else stdlib


def _where(key: tuple[str, int, str]) -> str:
    path, line, func = key
    if path == "~":
        return func
    layer = _layer(path, func)
    return f"{func} ({layer}:{line})"


def profile(label: str, run: Run, n: int, unit: str, top: int = 14) -> None:
    prof = cProfile.Profile()
    prof.enable()
    run(n)
    prof.disable()
    stats = pstats.Stats(prof)
    raw: dict[Any, Any] = stats.stats
    total = sum(v[2] for v in raw.values())
    print(f"\n## profile: {label}: {n:,} {unit}s, {total:.2f} s under cProfile, "
          f"{total / n * 1e6:,.0f} µs per {unit} (profiled)")
    layers: dict[str, float] = {}
    for (path, _, func), (_, _, tt, _, _) in raw.items():
        layers[_layer(path, func)] = layers.get(_layer(path, func), 0.0) + tt
    print(f"own time by file / package (top {top}):")
    for name, tt in sorted(layers.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {tt / total:6.1%}  {tt / n * 1e6:8.1f} µs/{unit}  {name}")
    print(f"hot functions by own time (top {top}):")
    for key, (_, nc, tt, ct, _) in sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]:
        print(f"  {tt / total:6.1%}  {tt / n * 1e6:8.1f} µs/{unit}  cum {ct / total:6.1%}  "
              f"{nc / n:6.1f} calls/{unit}  {_where(key)}")
    mine = [(k, v) for k, v in raw.items()
            if k[0].startswith(str(ROOT)) and "site-packages" not in k[0]]
    print(f"project functions by cumulative time (top {top + 6}):")
    for key, (_, nc, _, ct, _) in sorted(mine, key=lambda kv: -kv[1][3])[: top + 6]:
        print(f"  {ct / total:6.1%}  {ct / n * 1e6:8.1f} µs/{unit}  {nc / n:6.1f} calls/{unit}"
              f"  {_where(key)}")


def profiles(s: Settings) -> None:
    run = ticketflow_lifecycles()
    run(max(5, s.profile_lifecycles // 10))
    profile("(a) ticketflow lifecycle, memory store", run, s.profile_lifecycles, "lifecycle")
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        rt = Runtime.open([PACK], database_url=f"sqlite:///{Path(tmp) / 'profile.db'}")
        try:
            run = ticketflow_commands(rt, seed(rt, s.tickets))
            run(s.tickets)
            profile("(b) ticketflow transition command, SQLite", run, s.profile_commands,
                    "command")
        finally:
            rt.close()


# -- report -----------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def table(title: str, unit: str, results: list[Result], ratio_head: str,
          ratio: Callable[[Result, Result], str]) -> None:
    """Median rate, range, and ticketflow's (first row's) ratio to each row: the median of
    the per-round ratios, and best round ÷ best round (what an idle machine would show)."""
    tf = results[0]
    width = max(len(r.label) for r in results) + 2
    print(f"\n{title}")
    print(f"  {'':{width}}{unit:>13}  {'range over rounds':>17}  {ratio_head:>22}  best÷best")
    for r in results:
        if r is tf:
            cells = f"{'—':>22}  {'—':>9}"
        else:
            cells = f"{ratio(tf, r):>22}  {ratio(_Best(tf), _Best(r)):>9}"
        print(f"  {r.label:{width}}{_num(r.median):>13}  {r.span:>17}  {cells}")


class _Best(Result):
    """A result reduced to its best round, for best ÷ best."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.label, [result.best])


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report_a(results: list[Result]) -> None:
    tf = results[0]
    table("(a) in memory: full lifecycles per second (create + 8 transitions = 9 commands)",
          "lifecycles/s", results, "ticketflow ÷ peer", lambda a, b: f"{a.ratio(b):.2f}×")
    per_ticket, shared, psm = (tf.ratio(r) for r in results[1:])
    best = tf.best / results[1].best
    print(f"  goal ≥ 2× pytransitions (9,500/s on the issue's machine): {per_ticket:.2f}× the "
          f"Machine per ticket (best÷best {best:.2f}×), {shared:.2f}× the shared Machine — "
          f"{_verdict(per_ticket >= 2)}")
    print(f"  goal faster than both peers: {_verdict(min(per_ticket, shared, psm) > 1)} "
          f"(python-statemachine: {psm:.2f}×); ticketflow spends "
          f"{1e6 / tf.median / 9:,.0f} µs per command")


def report_db(title: str, results: list[Result], goal: bool) -> None:
    tf = results[0]
    table(title, "commands/s", results, "ticketflow as % of it",
          lambda a, b: f"{a.ratio(b):.1%}")
    ceiling = tf.ratio(results[1])
    minimum = tf.ratio(results[2])
    line = (f"  vs the raw UPDATE+INSERT ceiling: {ceiling:.1%} (best÷best "
            f"{tf.best / results[1].best:.1%}); vs the raw minimum with audit: {minimum:.1%}")
    print(line + (f" — goal ≥ 30% of the ceiling {_verdict(ceiling >= 0.30)}" if goal else ""))
    print(f"  ticketflow {1e6 / tf.median:,.0f} µs per command, raw minimum "
          f"{1e6 / results[2].median:,.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (seconds)")
    parser.add_argument("--profile", action="store_true",
                        help="then profile ticketflow's (a) and (b) paths with cProfile")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args()
    s = QUICK if args.quick else FULL
    started = time.perf_counter()
    rt = Runtime.open([PACK], database_url="memory")
    check_pack(rt)
    notes: list[str] = []
    print(f"ticketflow runtime benchmark — Python {platform.python_version()}, SQLite "
          f"{sqlite3.sqlite_version}, SQLAlchemy {_version('sqlalchemy')}, psycopg "
          f"{_version('psycopg')}, {os.cpu_count()} CPUs")
    print(f"median of {s.rounds} interleaved rounds of ~{s.target:g} s per contender"
          f"{' (--quick)' if args.quick else ''}; ratios are medians of per-round ratios")
    report_a(section_a(s))
    report_db("(b) SQLite file, WAL, synchronous=NORMAL: transition commands per second "
              f"(wait/resume over {s.tickets} tickets)", section_b(s, notes), goal=True)
    pg = None if args.no_pg else section_c(s, notes)
    if pg is not None:
        report_db(f"(c) PostgreSQL: transition commands per second (wait/resume over "
                  f"{s.tickets} tickets)", pg, goal=False)
    elif args.no_pg:
        notes.append("PostgreSQL skipped: --no-pg")
    print()
    for note in notes:
        print(f"note: {note}")
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.profile:
        profiles(s)


if __name__ == "__main__":
    main()
