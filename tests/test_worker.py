"""`ticketflow worker` as real processes against one database: every due timer fires exactly
once, a worker killed with SIGKILL in the middle of its work loses nothing, timers not yet
due wait, cancelled timers never fire.

The workers run on the wall clock (they are the real command), so the timers here are due
in the past or far in the future, never "about now": nothing depends on sleeping.
Every process is started with a deadline and killed in a `finally`, so a hang fails the
test instead of blocking the run.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
import sqlalchemy as sa
from runtime_fixtures import ROOT, SERVICE, START, counter_ids, database_url

from runtime.actors import Actor
from runtime.api import Runtime
from runtime.audit import verify
from runtime.clock import ManualClock
from runtime.records import TimerRow

TENANT = "default"
CUSTOMER = Actor.of("c1", ["customer"])
EVENT = "ping"  # no rule of the service pack listens to it: firing writes the timeline entry
DEADLINE = 120.0  # seconds for the workers to drain the queue
STOP_WAIT = 30.0  # seconds for a worker to leave after SIGTERM


# -- helpers --------------------------------------------------------------------------------


def open_runtime(url: str) -> Runtime:
    """The service pack published at `url`, on a manual clock, with readable ids."""
    clock = ManualClock(START)
    return Runtime.open(SERVICE, database_url=url, clock=clock, new_id=counter_ids())


def make_tickets(rt: Runtime, count: int) -> list[str]:
    return [
        rt.create("repair", {"site": "S001"}, CUSTOMER, channel="web", title=f"Fridge {n}").id
        for n in range(count)
    ]


def event_timer(number: int, ticket_id: str, due: datetime, **extra: Any) -> TimerRow:
    return TimerRow(TENANT, f"tm{number:06d}", due, "event", ticket_id, {"event": EVENT}, **extra)


def add_timers(rt: Runtime, rows: Sequence[TimerRow]) -> None:
    """Schedule `rows` directly, in one transaction (as a command's flush would)."""
    with rt.store.transaction() as tx:
        tx.add_timers(rows)


def status_counts(engine: sa.Engine) -> Counter[str]:
    """Timers by status, one cheap query (polled while the workers run)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, count(*) FROM timers GROUP BY status"))
        return Counter({str(status): int(n) for status, n in rows})


def fired_entries(rt: Runtime, ticket_ids: Sequence[str]) -> Counter[str]:
    """How many `event` timeline entries carry each timer id (checking on the way that
    each timeline is numbered 1, 2, 3 … without gap or repeat)."""
    seen: Counter[str] = Counter()
    with rt.store.read() as tx:
        for ticket_id in ticket_ids:
            timeline = tx.events(TENANT, ticket_id)
            ticket = tx.get_ticket(TENANT, ticket_id)
            assert ticket is not None
            assert [e.seq for e in timeline] == list(range(1, ticket.event_seq + 1))
            for entry in timeline:
                if entry.kind == "event":
                    assert entry.data["event"] == EVENT
                    seen[entry.data["timer"]] += 1
    return seen


def start_worker(url: str, log: IO[str], *extra: str) -> subprocess.Popen[str]:
    """`ticketflow worker` in its own process (`python -m cli.main`, the console script's
    entry point), its output to `log`."""
    command = [sys.executable, "-m", "cli.main", "worker", "--database", url, *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)


def stop(processes: Sequence[subprocess.Popen[str]]) -> None:
    """Kill whatever is still running and reap it (the test's `finally`)."""
    for process in processes:
        if process.poll() is None:
            process.kill()
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):  # a zombie we cannot reap
            process.wait(timeout=10)


def reported(log: Path) -> int:
    """The `fired N timers` a worker prints when it leaves."""
    lines = [x for x in log.read_text().splitlines() if x.startswith("fired ")]
    assert lines, f"no summary line in {log}:\n{log.read_text()}"
    return int(lines[-1].split()[1])


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL schema (skips without TICKETFLOW_TEST_DATABASE_URL)."""
    with database_url("postgresql", tmp_path) as url:
        yield url


# -- many workers on PostgreSQL ------------------------------------------------------------

WORKERS = 4
WORKER_ARGS = ("--batch", "50", "--interval", "0.05")


def run_workers(
    url: str, tmp_path: Path, total: int, kill_one_halfway: bool
) -> tuple[float, list[int], int | None]:
    """Start WORKERS worker processes on `url` and wait until no timer is waiting; with
    `kill_one_halfway`, the first one is killed with SIGKILL once half the timers fired.
    The survivors are stopped with SIGTERM and must leave cleanly. Returns the seconds
    taken, the counts the survivors report, and the fired count at the kill."""
    engine = sa.create_engine(url)
    processes: list[subprocess.Popen[str]] = []
    logs = [tmp_path / f"worker{n}.log" for n in range(WORKERS)]
    outputs = [log.open("w") for log in logs]
    killed_at = None
    try:
        assert status_counts(engine) == {"waiting": total}
        began = time.monotonic()
        deadline = began + DEADLINE
        if kill_one_halfway:
            # The victim starts first and has committed work before the others start, so
            # the SIGKILL certainly hits a worker that is taking part.
            processes.append(start_worker(url, outputs[0], *WORKER_ARGS))
            while status_counts(engine)["fired"] == 0:
                assert processes[0].poll() is None, logs[0].read_text()
                assert time.monotonic() < deadline, "the first worker fired nothing"
                time.sleep(0.02)
        while len(processes) < WORKERS:
            processes.append(start_worker(url, outputs[len(processes)], *WORKER_ARGS))
        survivors = processes[1:] if kill_one_halfway else processes

        if kill_one_halfway:
            while (counts := status_counts(engine))["fired"] < total // 2:
                assert time.monotonic() < deadline, f"stalled before half: {counts}"
                time.sleep(0.02)
            os.kill(processes[0].pid, signal.SIGKILL)
            assert processes[0].wait(timeout=STOP_WAIT) == -signal.SIGKILL
            killed_at = counts["fired"]

        while (counts := status_counts(engine))["waiting"]:
            for process in survivors:
                n = processes.index(process)
                assert process.poll() is None, f"worker {n} left:\n{logs[n].read_text()}"
            assert time.monotonic() < deadline, f"not drained in {DEADLINE} s: {counts}"
            time.sleep(0.05)
        elapsed = time.monotonic() - began

        for process in survivors:
            process.send_signal(signal.SIGTERM)
        for process in survivors:
            n = processes.index(process)
            assert process.wait(timeout=STOP_WAIT) == 0, logs[n].read_text()
        return elapsed, [reported(logs[processes.index(p)]) for p in survivors], killed_at
    finally:
        stop(processes)
        engine.dispose()
        for output in outputs:
            output.close()


def check_fired_once(rt: Runtime, ticket_ids: Sequence[str], rows: Sequence[TimerRow]) -> None:
    """Every timer fired, with exactly one timeline entry; timelines without gaps; the
    audit chain intact."""
    with rt.store.read() as tx:
        timers = tx.timers(TENANT)
    assert Counter(t.status for t in timers) == {"fired": len(rows)}
    assert all(t.fired_at is not None for t in timers)
    entries = fired_entries(rt, ticket_ids)
    assert set(entries) == {r.id for r in rows}, "a timer fired without its timeline entry"
    assert [i for i, n in entries.items() if n != 1] == [], "a timer fired more than once"
    assert verify(rt.store, TENANT) == []


def test_four_workers_fire_10000_timers_once_and_survive_a_sigkill(
    pg_url: str, tmp_path: Path
) -> None:
    total, tickets = 10_000, 200
    rt = open_runtime(pg_url)
    try:
        ticket_ids = make_tickets(rt, tickets)
        # Due over the last 10,000 seconds, round-robin over the tickets in due order.
        base = datetime.now(UTC) - timedelta(hours=3)
        rows = [
            event_timer(n, ticket_ids[n % tickets], base + timedelta(seconds=n))
            for n in range(total)
        ]
        add_timers(rt, rows)
        elapsed, survivors, killed_at = run_workers(pg_url, tmp_path, total, True)
        check_fired_once(rt, ticket_ids, rows)
        by_victim = total - sum(survivors)
        assert by_victim > 0  # what the killed worker committed before it died
    finally:
        rt.close()
    print(
        f"\n{total} timers, {WORKERS} workers (batch 50): drained in {elapsed:.1f} s "
        f"({total / elapsed:,.0f} timers/s, with start-up); SIGKILL at {killed_at} fired; "
        f"committed by the killed worker {by_victim}, by the others {survivors}"
    )


def test_workers_contending_for_the_same_tickets_fire_each_timer_once(
    pg_url: str, tmp_path: Path
) -> None:
    """Timers on randomly chosen tickets: concurrent batches touch the same tickets, so
    workers meet version conflicts and deadlocks, roll batches back and fall back to one
    timer per transaction. Still each timer fires exactly once, and none is set aside."""
    total, tickets = 1_000, 200
    rt = open_runtime(pg_url)
    try:
        ticket_ids = make_tickets(rt, tickets)
        pick = random.Random(20260302)
        base = datetime.now(UTC) - timedelta(hours=1)
        rows = [
            event_timer(n, pick.choice(ticket_ids), base + timedelta(seconds=n))
            for n in range(total)
        ]
        add_timers(rt, rows)
        elapsed, survivors, _ = run_workers(pg_url, tmp_path, total, False)
        check_fired_once(rt, ticket_ids, rows)
        assert sum(survivors) == total
    finally:
        rt.close()
    print(
        f"\n{total} timers on random tickets, {WORKERS} workers (batch 50): drained in "
        f"{elapsed:.1f} s ({total / elapsed:,.0f} timers/s); fired per worker {survivors}"
    )


# -- one worker on SQLite ----------------------------------------------------------------------


def test_one_worker_on_sqlite_fires_each_timer_once(tmp_path: Path) -> None:
    count, tickets = 2_000, 50
    with database_url("sqlite", tmp_path) as url:
        rt = open_runtime(url)
        try:
            ticket_ids = make_tickets(rt, tickets)
            base = datetime.now(UTC) - timedelta(hours=1)
            rows = [
                event_timer(n, ticket_ids[n % tickets], base + timedelta(seconds=n // 2))
                for n in range(count)
            ]
            add_timers(rt, rows)
            log = tmp_path / "worker.log"
            with log.open("w") as out:
                process = start_worker(url, out, "--batch", "100", "--once")
                try:
                    began = time.monotonic()
                    code = process.wait(timeout=DEADLINE)
                    elapsed = time.monotonic() - began
                finally:
                    stop([process])
            assert code == 0, log.read_text()
            assert reported(log) == count
            check_fired_once(rt, ticket_ids, rows)
        finally:
            rt.close()
    print(f"\n{count} timers, one SQLite worker (--once, batch 100): {elapsed:.1f} s with start-up")


# -- what must not fire ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_worker_leaves_future_and_cancelled_timers(kind: str, tmp_path: Path) -> None:
    with database_url(kind, tmp_path) as url:
        rt = open_runtime(url)
        try:
            a, b = make_tickets(rt, 2)
            now = datetime.now(UTC)
            rows = [
                event_timer(1, a, now - timedelta(minutes=5)),  # due: fires
                event_timer(2, b, now - timedelta(minutes=1)),  # due: fires
                event_timer(3, a, now + timedelta(days=1)),  # tomorrow: waits
                event_timer(4, b, now + timedelta(hours=1)),  # in an hour: waits
                event_timer(5, a, now - timedelta(minutes=4), key="reminder"),  # cancelled below
                event_timer(6, b, now - timedelta(minutes=3), status="cancelled"),  # stored so
            ]
            add_timers(rt, rows)
            with rt.store.transaction() as tx:
                assert tx.cancel_timers(TENANT, a, "reminder") == 1
            log = tmp_path / "worker.log"
            with log.open("w") as out:
                process = start_worker(url, out, "--once")
                try:
                    code = process.wait(timeout=DEADLINE)
                finally:
                    stop([process])
            assert code == 0, log.read_text()
            assert reported(log) == 2
            with rt.store.read() as tx:
                status = {t.id: t.status for t in tx.timers(TENANT)}
            assert status == {
                "tm000001": "fired",
                "tm000002": "fired",
                "tm000003": "waiting",
                "tm000004": "waiting",
                "tm000005": "cancelled",
                "tm000006": "cancelled",
            }
            assert fired_entries(rt, [a, b]) == {"tm000001": 1, "tm000002": 1}

            # In-process, on an explicit instant: due at exactly `now` fires, a microsecond
            # later does not; a cancelled timer stays cancelled whatever the instant.
            later = now + timedelta(hours=1)
            assert rt.run_due(now=later - timedelta(microseconds=1)) == 0
            assert rt.run_due(now=later) == 1
            assert rt.run_due(now=now + timedelta(days=2)) == 1
            assert rt.run_due(now=now + timedelta(days=2)) == 0
            with rt.store.read() as tx:
                status = {t.id: t.status for t in tx.timers(TENANT)}
            assert [i for i, s in status.items() if s == "cancelled"] == ["tm000005", "tm000006"]
            assert fired_entries(rt, [a, b]) == {f"tm00000{n}": 1 for n in range(1, 5)}
        finally:
            rt.close()


# -- the outbox ----------------------------------------------------------------------------

MESSAGES = 2000
OUTBOX_ARGS = ("--batch", "20", "--interval", "0.05", "--lease", "2")


def webhook_rows(url: str, count: int) -> list[Any]:
    from runtime.records import OutboxRow

    rows = []
    for n in range(count):
        payload = {"source": "test", "url": url, "method": "POST", "secret": "erp",
                   "body": f'{{"n": {n}}}', "content_type": "application/json"}  # fmt: skip
        row = OutboxRow(TENANT, f"msg{n:05d}", START, "webhook", None, payload)
        row.channel = "webhook"
        rows.append(row)
    return rows


def test_four_workers_deliver_the_outbox_and_survive_a_sigkill(pg_url: str, tmp_path: Path) -> None:
    from loopback import webhook_server

    with webhook_server(secret="s3cret") as hook:
        channels = tmp_path / "channels.yaml"
        channels.write_text("secrets: {erp: {value: s3cret}}\ntimeout: 0.1\n", encoding="utf-8")
        rt = open_runtime(pg_url)
        rows = webhook_rows(f"{hook.url}/in", MESSAGES)
        with rt.store.transaction() as tx:
            tx.add_outbox(rows)
        engine = sa.create_engine(pg_url)
        logs = [(tmp_path / f"w{n}.log").open("w") for n in range(WORKERS)]
        args = ("--channels", str(channels), *OUTBOX_ARGS)
        processes = [start_worker(pg_url, logs[0], *args)]
        try:
            deadline = time.monotonic() + DEADLINE
            while len(hook.accepted) < MESSAGES // 4:
                assert time.monotonic() < deadline and processes[0].poll() is None
                time.sleep(0.02)
            processes += [start_worker(pg_url, logs[n], *args) for n in range(1, WORKERS)]
            time.sleep(0.2)
            os.kill(processes[0].pid, signal.SIGKILL)  # mid-batch: its claims wait out the lease
            while True:
                with engine.connect() as conn:
                    left = conn.execute(
                        sa.text("SELECT count(*) FROM outbox WHERE status <> 'sent'")
                    ).scalar()
                if left == 0:
                    break
                assert time.monotonic() < deadline, f"{left} messages not sent in {DEADLINE} s"
                time.sleep(0.05)
            for process in processes[1:]:
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=STOP_WAIT) == 0
        finally:
            stop(processes)
            engine.dispose()
            for log in logs:
                log.close()
        # At least once: every message reached the receiver, each application-level once;
        # a message the killed worker sent but never recorded may have arrived twice.
        assert sorted(hook.delivered_ids()) == [r.id for r in rows]
        assert len(hook.accepted) >= MESSAGES
        assert len(hook.accepted) - MESSAGES <= 20  # at most the killed worker's one batch
        with rt.store.read() as tx:
            sent = tx.outbox(TENANT, "sent")
        assert len(sent) == MESSAGES and all(r.delivered_at is not None for r in sent)
        rt.close()
