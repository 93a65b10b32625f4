"""The child processes of bench_http.py: the load generator, the hello-world peer, and
`ticketflow serve` under a per-thread CPU profiler.

    python benchmarks/http_load.py load < SPEC.json          # prints a JSON result
    uvicorn --app-dir benchmarks http_load:hello_app ...      # the hello-world peer
    python benchmarks/http_load.py serve-profiled OUT.prof serve --database URL ...

The load generator is a closed loop: each of `connections` keep-alive HTTP/1.1
connections sends one pre-encoded request, reads the status line and headers up to
\\r\\n\\r\\n and then Content-Length bytes, and sends the next. It is an asyncio Protocol
(callbacks, no stream objects, no futures per request): on the stock asyncio loop it spends
about 30 µs of CPU per request, a quarter of what the hello-world server spends, so one
core drives some 30,000 requests/s. The result reports its own CPU use during the window so
a reader can check it was not the bottleneck.
"""

from __future__ import annotations

import asyncio
import cProfile
import functools
import json
import os
import resource
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litestar import Litestar, get

HEADER_END = b"\r\n\r\n"
LENGTH_HEADER = b"\r\ncontent-length:"


@get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


hello_app = Litestar(route_handlers=[hello], debug=False)


# -- the load generator --------------------------------------------------------------------


@dataclass(slots=True)
class Spec:
    """One measurement. `requests` are raw HTTP/1.1 requests (latin-1 text). With
    `reuse`, every connection cycles through them; without, each is sent once (a pool of
    one-shot requests, e.g. one transition per ticket) and a connection that finds the pool
    empty stops, which the result reports as `exhausted`. `limit` (> 0) stops after that many
    requests in all, for preparing data rather than measuring (warm-up and duration unused).
    """

    port: int
    connections: int
    warmup: float
    duration: float
    requests: list[str]
    reuse: bool = True
    limit: int = 0
    host: str = "127.0.0.1"


@dataclass(slots=True)
class _Run:
    spec: Spec
    payloads: list[bytes]
    t0: float = float("inf")  # measuring from here ...
    t1: float = float("inf")  # ... to here
    cursor: int = 0
    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)  # measured window only
    warmup_statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    exhausted: bool = False
    open: int = 0
    all_closed: asyncio.Event = field(default_factory=asyncio.Event)

    def next_request(self) -> bytes | None:
        if self.spec.limit and self.sent >= self.spec.limit:
            return None
        if self.spec.reuse:
            found = self.payloads[self.cursor % len(self.payloads)]
        elif self.cursor < len(self.payloads):
            found = self.payloads[self.cursor]
        else:
            self.exhausted = True
            return None
        self.cursor += 1
        self.sent += 1
        return found

    def record(self, status: int, started: float, now: float) -> None:
        if self.t0 <= now < self.t1:
            self.latencies.append(now - started)
            self.statuses[status] += 1
        elif now < self.t0:
            self.warmup_statuses[status] += 1

    def closed(self) -> None:
        self.open -= 1
        if self.open == 0:
            self.all_closed.set()


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.started = 0.0
        self.waiting = False  # a request is out and its response not complete
        self.finished = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.run.open += 1

    def send_next(self) -> None:
        payload = self.run.next_request()
        if payload is None or time.perf_counter() >= self.run.t1:
            self.finish()
            return
        assert self.transport is not None
        self.waiting = True
        self.started = time.perf_counter()
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.waiting:
            end = self.buffer.find(HEADER_END)
            if end < 0:
                return
            total = end + 4 + _content_length(self.buffer, end)
            if len(self.buffer) < total:
                return
            status = int(self.buffer[9:12])
            del self.buffer[:total]
            self.waiting = False
            self.run.record(status, self.started, time.perf_counter())
            self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished:
            self.run.failures["connection lost" if self.waiting else "closed by server"] += 1
            self.finished = True
            self.run.closed()

    def finish(self) -> None:
        if not self.finished:
            self.finished = True
            assert self.transport is not None
            self.transport.close()
            self.run.closed()


def _content_length(buffer: bytearray, end: int) -> int:
    head = bytes(buffer[:end]).lower()
    at = head.find(LENGTH_HEADER)
    if at < 0:
        # Every response of the servers measured has a length; anything else (chunked,
        # read-to-close) would need a real HTTP client, so fail loudly.
        raise RuntimeError(f"response without Content-Length: {head[:300]!r}")
    stop = head.find(b"\r\n", at + 2)
    return int(head[at + len(LENGTH_HEADER) : stop if stop >= 0 else end])


async def run_load(spec: Spec) -> dict[str, Any]:
    """Open every connection, warm up, measure, and summarise (see `Spec`)."""
    run = _Run(spec, [r.encode("latin-1") for r in spec.requests])
    loop = asyncio.get_running_loop()
    connections: list[_Connection] = []
    for _ in range(spec.connections):
        _, conn = await loop.create_connection(lambda: _Connection(run), spec.host, spec.port)
        connections.append(conn)
    begin = time.perf_counter()
    if not spec.limit:
        run.t0 = begin + spec.warmup
        run.t1 = run.t0 + spec.duration
    for conn in connections:
        conn.send_next()
    cpu = asyncio.create_task(_measure_cpu(run)) if not spec.limit else None
    patience = 600.0 if spec.limit else spec.warmup + spec.duration + 60
    try:
        await asyncio.wait_for(run.all_closed.wait(), timeout=patience)
    except TimeoutError:
        run.failures["no response in time"] += sum(c.waiting for c in connections)
    cpu_share = await cpu if cpu is not None else None
    return _summary(run, time.perf_counter() - begin, cpu_share)


async def _measure_cpu(run: _Run) -> float:
    """This process's CPU time during the measured window, as a share of one core."""
    await asyncio.sleep(max(0.0, run.t0 - time.perf_counter()))
    print("t0", flush=True)  # the parent reads the server's CPU clock at each mark
    before = _cpu_seconds()
    await asyncio.sleep(max(0.0, run.t1 - time.perf_counter()))
    print("t1", flush=True)
    return (_cpu_seconds() - before) / run.spec.duration


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _summary(run: _Run, elapsed: float, cpu_share: float | None) -> dict[str, Any]:
    latencies = sorted(run.latencies)

    def pct(p: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None

    return {
        "count": len(latencies),
        "duration": run.spec.duration,
        "p50": pct(0.50),
        "p99": pct(0.99),
        "max": latencies[-1] if latencies else None,
        "statuses": {str(k): v for k, v in sorted(run.statuses.items())},
        "warmup_statuses": {str(k): v for k, v in sorted(run.warmup_statuses.items())},
        "failures": dict(run.failures),
        "exhausted": run.exhausted,
        "sent": run.sent,
        "elapsed": elapsed,
        "client_cpu": cpu_share,
    }


# -- ticketflow serve under a profiler ---------------------------------------------------


def serve_profiled(out: Path, argv: list[str]) -> None:
    """Run the `ticketflow` command line with every thread under cProfile, each timed by
    its own thread's CPU clock (a thread waiting for the GIL, a lock or I/O is not charged),
    and write the merged stats to `out` when the server stops (SIGINT or SIGTERM). SIGUSR1
    clears what was recorded so far: the parent sends it when the measured window opens, so
    start-up, publishing and warm-up are left out."""
    profiles: list[tuple[str, cProfile.Profile]] = []
    lock = threading.Lock()
    bootstrap = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def profiled_bootstrap(self: threading.Thread) -> None:
        profile = _thread_profile("worker", profiles, lock)
        profile.enable()
        try:
            bootstrap(self)
        finally:
            profile.disable()

    def restart(signum: int, frame: object) -> None:
        with lock:
            for _, profile in profiles:
                profile.clear()  # under the GIL: no thread is inside its profiler now

    threading.Thread._bootstrap_inner = profiled_bootstrap  # type: ignore[attr-defined]
    signal.signal(signal.SIGUSR1, restart)
    # uvicorn turns SIGTERM into the same graceful shutdown as SIGINT.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main = _thread_profile("main", profiles, lock)
    sys.argv = ["ticketflow", *argv]
    from cli.main import app

    main.enable()
    try:
        app()
    except SystemExit:
        pass
    finally:
        main.disable()
        _dump(out, profiles, lock)


def _thread_profile(
    kind: str, profiles: list[tuple[str, cProfile.Profile]], lock: threading.Lock
) -> cProfile.Profile:
    """A profiler timed by the calling thread's CPU clock, read through the thread's clock id
    so that reading it from another thread (stats of calls still open at the end are
    closed from the main thread) still reads this thread's time."""
    clock = time.pthread_getcpuclockid(threading.get_ident())
    profile = cProfile.Profile(functools.partial(time.clock_gettime, clock))
    with lock:
        profiles.append((kind, profile))
    return profile


def _dump(out: Path, profiles: list[tuple[str, cProfile.Profile]], lock: threading.Lock) -> None:
    import pstats

    with lock:
        found = list(profiles)
    totals: dict[str, float] = {}
    merged: pstats.Stats | None = None
    for kind, profile in found:
        profile.create_stats()
        if not profile.stats:
            continue  # a thread that ran no Python after the clear
        stats = pstats.Stats(profile)
        totals[kind] = totals.get(kind, 0.0) + stats.total_tt  # type: ignore[attr-defined]
        if merged is None:
            merged = stats
        else:
            merged.add(stats)
    assert merged is not None
    merged.dump_stats(str(out))
    Path(f"{out}.threads.json").write_text(json.dumps(totals))


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "load":
        spec = Spec(**json.load(sys.stdin))
        print(json.dumps(asyncio.run(run_load(spec))))
    elif mode == "serve-profiled" and len(sys.argv) > 3:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        serve_profiled(Path(sys.argv[2]), sys.argv[3:])
    else:
        sys.exit("usage: http_load.py load < SPEC.json | serve-profiled OUT.prof ARGS...")


if __name__ == "__main__":
    main()
