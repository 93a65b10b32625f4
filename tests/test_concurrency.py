"""Many processes on one database (a SQLite file, PostgreSQL when
TICKETFLOW_TEST_DATABASE_URL is set): no lost update, every conflict reported as a
`Conflict`, and one ticket per idempotency key.

The PROCESSES processes are a `spawn` pool started once for the module (starting eight
interpreters costs far more than the work); each task is a top-level function (spawned
children import this module) that opens its own `Runtime` on the shared database URL and
waits at a barrier, so all of them start their commands together.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_fixtures import SERVICE, database_url

from runtime.actors import Actor
from runtime.api import Runtime
from runtime.audit import verify
from runtime.records import Conflict, TicketflowError, TransitionUnavailable

PROCESSES = 8
TICKETS = 5
ROUNDS = 20  # attempts per process
TIMEOUT = 120  # seconds to wait for a worker (a hang fails the test, it does not block)

CUSTOMER = Actor.of("c1", ["customer"])
DISPATCHER = Actor.of("d1", ["dispatcher"])
ENGINEER = Actor.of("e1", ["engineer"])
AGENT = Actor.of("a1", ["agent"])
PARTS = {"parts": [{"part_no": "C-220", "qty": 1}]}
SETUP_TRANSITIONS = ("assign", "start")  # new → assigned → in_progress
NEXT = {"in_progress": "need_parts", "waiting_parts": "parts_in"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a fresh PostgreSQL schema."""
    with database_url(request.param, tmp_path) as found:
        yield found


# -- workers (run in the pool's processes) --------------------------------------------------


def warm_up() -> None:
    """Pool initializer: pay for the imports once per process, before any test starts."""
    import runtime.store.sql  # noqa: F401


def transition_worker(
    url: str, ticket_ids: list[str], rounds: int, with_version: bool, worker: int, start: Any
) -> dict[str, Any]:
    """Flip the tickets between in_progress and waiting_parts `rounds` times: read, then
    take whichever transition the state read offers. Reports per-ticket successes and
    every failure by kind; a failure outside TicketflowError is `unexpected`."""
    report: dict[str, Any] = {
        "pid": os.getpid(), "ok": Counter(), "conflicts": Counter(), "unavailable": Counter(),
        "other_errors": [], "unexpected": [],
    }
    rt = Runtime.open(SERVICE, database_url=url)
    try:
        start.wait()
        for i in range(rounds):
            ticket_id = ticket_ids[(i + worker) % len(ticket_ids)]
            try:
                seen = rt.get(ticket_id, ENGINEER)
                name = NEXT[seen.state]
                fields = PARTS if name == "need_parts" else None
                version = seen.version if with_version else None
                rt.transition(ticket_id, name, ENGINEER, fields=fields, expected_version=version)
                report["ok"][(ticket_id, name)] += 1
            except Conflict:
                report["conflicts"][ticket_id] += 1
            except TransitionUnavailable:
                report["unavailable"][ticket_id] += 1
            except TicketflowError as error:
                report["other_errors"].append(f"{type(error).__name__}: {error.message}")
            except Exception:
                report["unexpected"].append(traceback.format_exc())
    finally:
        rt.close()
    return report


def create_worker(url: str, key: str, start: Any) -> tuple[int, str]:
    """Open a runtime, wait for the others, then create with the shared idempotency key;
    returns (pid, ticket id). An exception reaches the test through the pool."""
    rt = Runtime.open(SERVICE, database_url=url)
    try:
        start.wait()
        ticket = rt.create("repair", {"site": "S001"}, CUSTOMER, channel="api", idempotency_key=key)
        return os.getpid(), ticket.id
    finally:
        rt.close()


# -- helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workers() -> Iterator[tuple[Any, Any]]:
    """PROCESSES spawned processes, started once for the module (starting them costs far
    more than the tests' work), and a manager for the barrier they start behind."""
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager, spawn.Pool(PROCESSES, initializer=warm_up) as pool:
        yield pool, manager
        pool.close()
        pool.join()


def run_workers(workers: tuple[Any, Any], target: Any, args: list[tuple[Any, ...]]) -> list[Any]:
    """Run target(*args[n], barrier) in every process at once; the barrier lets none start
    its commands before all have opened their runtime."""
    pool, manager = workers
    start = manager.Barrier(len(args), timeout=TIMEOUT)
    pending = [pool.apply_async(target, (*a, start)) for a in args]
    return [p.get(timeout=TIMEOUT) for p in pending]


def tickets_in_progress(rt: Runtime, count: int) -> list[str]:
    ids = []
    for n in range(count):
        t = rt.create("repair", {"site": f"S{n:03d}"}, CUSTOMER, channel="web", title=f"Fridge {n}")
        rt.transition(t.id, "assign", DISPATCHER, fields={"assignee": ENGINEER.id})
        t = rt.transition(t.id, "start", ENGINEER)
        assert (t.state, t.version) == ("in_progress", 1 + len(SETUP_TRANSITIONS))
        ids.append(t.id)
    return ids


# -- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("with_version", [True, False], ids=["expected_version", "no_version"])
def test_concurrent_transitions_lose_no_update(
    url: str, workers: tuple[Any, Any], with_version: bool
) -> None:
    rt = Runtime.open(SERVICE, database_url=url)
    try:
        ids = tickets_in_progress(rt, TICKETS)
        reports = run_workers(
            workers, transition_worker,
            [(url, ids, ROUNDS, with_version, n) for n in range(PROCESSES)],
        )
        assert len({r["pid"] for r in reports}) == PROCESSES
        unexpected = [u for r in reports for u in r["unexpected"]]
        assert unexpected == [], "unexpected exceptions (e.g. 'database is locked'):\n" + "\n".join(unexpected)
        assert [e for r in reports for e in r["other_errors"]] == []
        ok: Counter[tuple[str, str]] = sum((r["ok"] for r in reports), Counter())
        conflicts = sum((r["conflicts"] for r in reports), Counter())
        unavailable = sum((r["unavailable"] for r in reports), Counter())
        attempts = sum(ok.values()) + sum(conflicts.values()) + sum(unavailable.values())
        assert attempts == PROCESSES * ROUNDS, "every attempt ends in a success or a reported error"
        if with_version:
            # A stale read with expected_version is always a Conflict, never anything else.
            assert sum(unavailable.values()) == 0
        assert sum(conflicts.values()) + sum(unavailable.values()) > 0, "the workers never collided"

        for ticket_id in ids:
            done = {name: ok[(ticket_id, name)] for name in NEXT.values()}
            successes = sum(done.values())
            final = rt.get(ticket_id, AGENT)
            # One version per successful command: create, the set-up, the workers' wins.
            assert final.version == 1 + len(SETUP_TRANSITIONS) + successes, ticket_id
            # The transitions strictly alternate: each success moved the state.
            assert done["need_parts"] - done["parts_in"] == (final.state == "waiting_parts")
            kinds = Counter(e.kind for e in rt.timeline(ticket_id, AGENT))
            assert kinds["transitioned"] == len(SETUP_TRANSITIONS) + successes, ticket_id
        with rt.store.read() as tx:
            audit = tx.audit("default", limit=100_000)
        transitions = Counter(row.subject for row in audit if row.action == "transition")
        assert {i: transitions[i] for i in ids} == {
            i: len(SETUP_TRANSITIONS) + ok[(i, "need_parts")] + ok[(i, "parts_in")] for i in ids
        }
        # The parts_request rule opened one stock issue per need_parts taken.
        issues = rt.query(Actor.system(), templates=["stock_issue"], limit=500).items
        assert len(issues) == sum(ok[(i, "need_parts")] for i in ids)
        assert verify(rt.store, "default") == []
    finally:
        rt.close()


def test_concurrent_creates_with_one_idempotency_key_make_one_ticket(
    url: str, workers: tuple[Any, Any]
) -> None:
    rt = Runtime.open(SERVICE, database_url=url)
    try:
        reports = run_workers(workers, create_worker, [(url, "alarm-4711")] * PROCESSES)
        assert len({pid for pid, _ in reports}) == PROCESSES
        ids = {ticket_id for _, ticket_id in reports}
        assert len(ids) == 1, f"all {PROCESSES} creators get the same ticket, got {ids}"
        tickets = rt.query(AGENT, limit=500).items
        assert [t.id for t in tickets] == list(ids)
        with rt.store.read() as tx:
            creates = [a for a in tx.audit("default", limit=100_000) if a.action == "create"]
        assert len(creates) == 1
        assert verify(rt.store, "default") == []
    finally:
        rt.close()
