"""Requests per second and latency of `ticketflow serve` against a Litestar hello-world.

Run: .venv/bin/python benchmarks/bench_http.py [--quick] [--rounds R] [--clients 10,100]
         [--database postgresql+psycopg://postgres@127.0.0.1:5432/test] [--profile]

Three servers run at once on 127.0.0.1, each its own process, started here on a free port
and stopped at the end, all under uvicorn with the same settings: one worker, uvicorn's
defaults for the event loop and HTTP parser (whatever `ticketflow serve` gets; the table
says which), `--log-level warning` (so no access log):

  - the peer: a Litestar app whose one endpoint, GET /hello, returns {"hello": "world"}
    (benchmarks/http_load.py, `hello_app`);
  - `ticketflow serve` on a fresh SQLite file in a temporary directory, publishing the
    example packs to tenant `default`, with two API tokens issued before it starts (olivia,
    `employee`; sam, `service_desk_agent`);
  - with --database, a second `ticketflow serve` on that database (a PostgreSQL URL gets a
    fresh schema, dropped afterwards).

For each number of concurrent clients (keep-alive connections, one request in flight each),
in this order, each measured for a fixed time after a warm-up (5 s after 2 s; --quick: 2 s
after 1 s):

  - hello-world: GET /hello;
  - ticketflow's own GET /healthz (no auth, no database: the app's framework floor);
  - create: POST /api/v1/tenants/default/tickets, an `incident` of the IT service desk pack
    as the employee (201): field validation, the priority-matrix rule, a notification
    queued, routing (which finds nobody: `serve` loads no people directory), SLA clocks
    started; 13 timeline entries;
  - transition: POST …/tickets/{id}/transitions/resolve as the agent with the two fields the
    transition requires (200), each request on a different ticket still `new`, so each one
    takes a real transition: the auto-close timer set, a notification queued, SLA clocks
    stopped; 6 timeline entries. The tickets are those the create runs made, topped up
    through the same API beforehand when there are too few.

The load comes from benchmarks/http_load.py in a process of its own: an asyncio keep-alive
HTTP/1.1 client over raw sockets with pre-encoded requests (a Python HTTP client library
such as httpx costs more CPU per request than the hello-world server, so it would measure
itself). Every response's status is checked: req/s counts 2xx responses only, and a run
with any other status, a dropped connection or too few tickets shows it under `errors`.

Columns: the server's and the client's CPU use during the window, each as a share of one
core (on 2 cores, a client well under 100 % is not the bottleneck, and a server under
100 % waited: for the database, or for CPU taken by other processes); "µs CPU/req", the
server's CPU time per request, and "in loop", the part of it spent in the server's main
thread, the event loop (HTTP parsing, routing, body validation, serialization) — the rest
ran in the worker threads that run sync handlers (the runtime); "of hello", the row's
req/s over hello-world's at the same client count in the same round; "by CPU",
hello-world's server CPU per request over the row's, which holds better when other
processes load the machine. With --rounds R the figures are medians over R interleaved
rounds and the ratios medians of the per-round ratios.

--profile: then a fresh `ticketflow serve` on SQLite with every thread under cProfile
(per-thread CPU clock, see http_load.py) takes the create load at 10 clients; prints own
time by package and the hot functions in µs of CPU per request, and `Runtime.create` timed
in-process on its own for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.actors import Actor  # noqa: E402
from runtime.api import Runtime  # noqa: E402

BENCH = Path(__file__).resolve().parent
LOAD = BENCH / "http_load.py"
EXAMPLES = ROOT / "examples" / "workflows"
TENANT = "default"
TICKETS = f"/api/v1/tenants/{TENANT}/tickets"
INCIDENT = {
    "template": "incident",
    "fields": {
        "site": "new_york",
        "category": "network",
        "affected_service": "office_network",
        "impact": "medium",
        "urgency": "low",
        "users_affected": 8,
        "description": "Laptops lose the Wi-Fi in 12B every few minutes.",
    },
}
RESOLVE = {
    "fields": {
        "resolution_code": "config_change",
        "resolution_notes": "Access point firmware updated; roaming threshold lowered.",
    }
}


# -- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process on 127.0.0.1:port."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def cpu_seconds(self) -> tuple[float, float]:
        """User + system CPU of the whole process and of its main thread (the event loop's),
        from /proc."""
        pid = self.proc.pid
        return _proc_cpu(f"/proc/{pid}/stat"), _proc_cpu(f"/proc/{pid}/task/{pid}/stat")

    def wait_ready(self, path: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited with {self.proc.returncode}:\n{self._tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        sys.exit(f"{self.name} did not answer {path} within {timeout:.0f} s:\n{self._tail()}")

    def stop(self) -> None:
        """SIGINT (uvicorn's graceful shutdown), then SIGKILL after 60 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def _proc_cpu(stat: str) -> float:
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def started(name: str, argv: list[str], health: str, workdir: Path) -> Iterator[Server]:
    port = free_port()
    log = workdir / f"{name.replace(' ', '_')}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(name, proc, port, log)
    try:
        server.wait_ready(health)
        yield server
    finally:
        server.stop()


def hello_argv() -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH), "http_load:hello_app"]


def serve_argv(url: str, profile_to: Path | None = None) -> list[str]:
    args = ["serve", "--database", url]  # the command's default packs: the examples
    if profile_to is not None:
        return [sys.executable, str(LOAD), "serve-profiled", str(profile_to), *args]
    script = Path(sys.executable).with_name("ticketflow")
    if not script.exists():
        sys.exit(f"no {script}: install the project first (`.venv/bin/pip install -e .`)")
    return [str(script), *args]


def example_packs() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.is_dir())


@dataclass
class Target:
    """A ticketflow server, its database and what the load needs to call it."""

    label: str  # SQLite, PostgreSQL
    url: str
    server: Server
    employee: str  # bearer secrets
    agent: str
    transition_rate: float = 0.0  # the last one measured, to size the next pool


def issue_tokens(url: str) -> tuple[str, str]:
    rt = Runtime.open((), url)
    try:
        employee = rt.issue_token(TENANT, "olivia", ["employee"], name="bench").secret
        agent = rt.issue_token(TENANT, "sam", ["service_desk_agent"], name="bench").secret
    finally:
        rt.close()
    return employee, agent


@contextmanager
def ticketflow(
    label: str, url: str, workdir: Path, profile_to: Path | None = None
) -> Iterator[Target]:
    employee, agent = issue_tokens(url)
    with started(f"ticketflow {label}", serve_argv(url, profile_to), "/healthz", workdir) as srv:
        yield Target(label, url, srv, employee, agent)


@contextmanager
def fresh_schema(base: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new schema, dropped afterwards."""
    import sqlalchemy as sa

    schema = f"bench_http_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.SQLAlchemyError as exc:
        sys.exit(f"--database {base}: cannot create a schema: {exc.__class__.__name__}: {exc}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@contextmanager
def extra_database(url: str) -> Iterator[tuple[str, str]]:
    if url.startswith("postgresql"):
        with fresh_schema(url) as schema_url:
            yield "PostgreSQL", schema_url
    else:
        yield url.split(":", 1)[0].split("+")[0], url


# -- requests ------------------------------------------------------------------------------


def raw_request(method: str, path: str, token: str | None = None, body: Any = None) -> str:
    """An HTTP/1.1 request as text (ASCII: the JSON is encoded with ensure_ascii)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    text = ""
    if body is not None:
        text = json.dumps(body, separators=(",", ":"))
        lines += ["Content-Type: application/json", f"Content-Length: {len(text)}"]
    return "\r\n".join(lines) + "\r\n\r\n" + text


def create_request(t: Target) -> str:
    return raw_request("POST", TICKETS, t.employee, INCIDENT)


def transition_requests(t: Target, ids: list[str]) -> list[str]:
    return [
        raw_request("POST", f"{TICKETS}/{i}/transitions/resolve", t.agent, RESOLVE) for i in ids
    ]


def new_tickets(t: Target) -> list[str]:
    """Incidents still `new` (the next transition run's pool)."""
    import sqlalchemy as sa

    engine = sa.create_engine(t.url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT id FROM tickets WHERE tenant_id = :tenant AND template = 'incident'"
                    " AND state = 'new' ORDER BY created_at, id"
                ),
                {"tenant": TENANT},
            )
            return [row[0] for row in found]
    finally:
        engine.dispose()


# -- measuring -----------------------------------------------------------------------------


@dataclass
class Measured:
    name: str
    clients: int
    rate: float  # 2xx responses per second
    p50: float | None  # seconds
    p99: float | None
    server_cpu: float  # share of one core during the window
    loop_cpu: float  # the server's main thread (the event loop) alone
    client_cpu: float
    errors: str  # empty when none


def load(
    server: Server,
    requests: list[str],
    clients: int,
    warmup: float,
    duration: float,
    reuse: bool = True,
    limit: int = 0,
    at_start: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], tuple[float, float]]:
    """Run the load generator against `server`; its JSON result and the server's CPU share
    during the measured window, whole process and event loop thread (the generator prints
    a line at each end of the window, and `at_start` is called at the first)."""
    spec = {
        "port": server.port,
        "connections": clients,
        "warmup": warmup,
        "duration": duration,
        "requests": requests,
        "reuse": reuse,
        "limit": limit,
    }
    proc = subprocess.Popen(
        [sys.executable, str(LOAD), "load"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(spec).encode())
    proc.stdin.close()
    marks: dict[str, tuple[float, float]] = {}
    result: dict[str, Any] | None = None
    for line in proc.stdout:
        text = line.decode().strip()
        if text in ("t0", "t1"):
            marks[text] = server.cpu_seconds()
            if text == "t0" and at_start is not None:
                at_start()
        elif text.startswith("{"):
            result = json.loads(text)
    if proc.wait() != 0 or result is None:
        sys.exit(f"the load generator failed (exit {proc.returncode})")
    if len(marks) != 2:
        return result, (0.0, 0.0)
    (all0, loop0), (all1, loop1) = marks["t0"], marks["t1"]
    return result, ((all1 - all0) / duration, (loop1 - loop0) / duration)


def measure(
    name: str,
    server: Server,
    requests: list[str],
    clients: int,
    args: argparse.Namespace,
    reuse: bool = True,
) -> Measured:
    result, (server_cpu, loop_cpu) = load(
        server, requests, clients, args.warmup, args.duration, reuse
    )
    ok = sum(n for code, n in result["statuses"].items() if code.startswith("2"))
    m = Measured(
        name,
        clients,
        ok / args.duration,
        result["p50"],
        result["p99"],
        server_cpu,
        loop_cpu,
        result["client_cpu"] or 0.0,
        _errors(result),
    )
    print(
        f"  {name:<34} {clients:>4} clients {m.rate:>8,.0f} req/s"
        f"  server CPU {server_cpu:4.0%}  client CPU {m.client_cpu:4.0%}"
        + (f"  ERRORS {m.errors}" if m.errors else ""),
        flush=True,
    )
    return m


def _errors(result: dict[str, Any]) -> str:
    notes = []
    for phase in ("warmup_statuses", "statuses"):
        for code, n in result[phase].items():
            if not code.startswith("2"):
                notes.append(f"{n}×{code}" + (" (warm-up)" if phase == "warmup_statuses" else ""))
    notes += [f"{n}× {what}" for what, n in result["failures"].items()]
    if result["exhausted"]:
        notes.append("ran out of tickets")
    return ", ".join(notes)


def measure_transitions(
    t: Target, clients: int, args: argparse.Namespace, guess: float
) -> Measured:
    """Resolve tickets still `new`, one request per ticket: first make sure there are
    enough for the warm-up and the window at the expected rate, with room to spare."""
    rate = t.transition_rate or guess
    need = int(rate * (args.warmup + args.duration) * 1.5) + 2 * clients
    ids = new_tickets(t)
    if len(ids) < need:
        print(f"  (creating {need - len(ids):,} more tickets on {t.label} for the transitions)")
        result, _ = load(t.server, [create_request(t)], 20, 0, 0, limit=need - len(ids))
        if _errors(result):
            sys.exit(f"could not prepare tickets: {_errors(result)}")
        ids = new_tickets(t)
    requests = transition_requests(t, ids)
    m = measure(f"transition (resolve), {t.label}", t.server, requests, clients, args, False)
    t.transition_rate = max(m.rate, 1.0)
    return m


def run_round(hello: Server, targets: list[Target], args: argparse.Namespace) -> list[Measured]:
    hello_get = [raw_request("GET", "/hello")]
    healthz = [raw_request("GET", "/healthz")]
    rows = []
    for clients in args.clients:
        rows.append(measure("hello-world (Litestar + uvicorn)", hello, hello_get, clients, args))
        rows.append(measure("ticketflow GET /healthz", targets[0].server, healthz, clients, args))
        for t in targets:
            name = f"create ticket, {t.label}"
            create = measure(name, t.server, [create_request(t)], clients, args)
            rows.append(create)
            rows.append(measure_transitions(t, clients, args, guess=max(2 * create.rate, 300)))
    return rows


# -- the table -----------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def report(rounds: list[list[Measured]], http: str, args: argparse.Namespace) -> None:
    print(
        f"\nuvicorn, 1 worker, --log-level warning, {http}; {len(rounds)} round(s) of "
        f"{args.duration:g} s after {args.warmup:g} s warm-up; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    head = (
        f"{'path':<34} {'clients':>7} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'srv CPU':>7} {'µs CPU/req':>10} {'in loop':>7} {'client CPU':>10} {'of hello':>8} "
        f"{'by CPU':>7}  errors"
    )
    print(head)
    for i, first in enumerate(rounds[0]):
        same = [r[i] for r in rounds]
        peers = [_hello(r, first.clients) for r in rounds]
        ratio, by_cpu = _ratios(same, peers)
        med = statistics.median
        print(
            f"{first.name:<34} {first.clients:>7} {med(m.rate for m in same):>8,.0f} "
            f"{_ms(_median_of(m.p50 for m in same)):>7} {_ms(_median_of(m.p99 for m in same)):>7} "
            f"{med(m.server_cpu for m in same):>7.0%} "
            f"{med(_cpu_per_req(m) for m in same) * 1e6:>10,.0f} "
            f"{med(m.loop_cpu / m.rate if m.rate else 0.0 for m in same) * 1e6:>7,.0f} "
            f"{med(m.client_cpu for m in same):>10.0%} {ratio:>8.1%} {by_cpu:>7.1%}  "
            + ("; ".join(m.errors for m in same if m.errors) or "none")
        )
    for clients in args.clients:
        for i, first in enumerate(rounds[0]):
            if first.clients == clients and first.name.startswith("create ticket"):
                same = [r[i] for r in rounds]
                ratio, by_cpu = _ratios(same, [_hello(r, clients) for r in rounds])
                verdict = "met" if ratio >= 0.30 else "missed"
                if any(m.errors for m in same + [_hello(r, clients) for r in rounds]):
                    verdict += " (but the runs had errors: see the table)"
                where = first.name.removeprefix("create ticket, ")
                print(
                    f"goal create ≥ 30% of hello-world, {where}, {clients} clients: "
                    f"{ratio:.1%} of its req/s ({by_cpu:.1%} by CPU per request) — {verdict}"
                )


def _ratios(rows: list[Measured], peers: list[Measured]) -> tuple[float, float]:
    """Medians over rounds of rows' req/s ÷ the peer's, and of the peer's CPU per request ÷
    the row's."""
    pairs = list(zip(rows, peers, strict=True))
    rate = [m.rate / p.rate if p.rate else float("nan") for m, p in pairs]
    cpu = [_cpu_per_req(p) / _cpu_per_req(m) for m, p in pairs]
    return statistics.median(rate), statistics.median(cpu)


def _hello(row: list[Measured], clients: int) -> Measured:
    return next(m for m in row if m.clients == clients and m.name.startswith("hello"))


def _cpu_per_req(m: Measured) -> float:
    return m.server_cpu / m.rate if m.rate else float("inf")


def _median_of(values: Any) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def uvicorn_http() -> str:
    """What uvicorn's "auto" picks here (the same for both servers)."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{parser} parser, {loop} event loop"


# -- --profile -----------------------------------------------------------------------------


def _layer(path: str, func: str) -> str:
    """Where a profiled function lives: a project package, a site package, or stdlib."""
    if path == "~":
        for name in ("sqlite3", "psycopg", "json", "msgspec", "pydantic_core", "hashlib"):
            if name in func:
                return f"{name} (C)"
        if "select" in func or "epoll" in func:
            return "selectors (C, waiting)"
        return "builtins"
    if _ours(path):
        parts = Path(path).relative_to(ROOT).parts
        return parts[0] + "/" if len(parts) > 1 else parts[0]
    parts = Path(path).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    return "stdlib " + Path(path).with_suffix("").name


def _ours(path: str) -> bool:
    return path.startswith(str(ROOT)) and "site-packages" not in path


def _where(key: tuple[str, int, str]) -> str:
    path, line, func = key
    if path == "~":
        return func
    shown = Path(path).relative_to(ROOT) if _ours(path) else _layer(path, func)
    return f"{func} ({shown}:{line})"


def profile_create(args: argparse.Namespace, workdir: Path, top: int = 22) -> None:
    out = workdir / "serve.prof"
    url = f"sqlite:///{workdir / 'profiled.db'}"
    clients = 10
    with ticketflow("SQLite (profiled)", url, workdir, profile_to=out) as t:
        pid = t.server.proc.pid
        result, _ = load(
            t.server,
            [create_request(t)],
            clients,
            args.warmup,
            args.duration,
            at_start=lambda: os.kill(pid, signal.SIGUSR1),  # forget start-up and warm-up
        )
    # Requests answered or started in the window (those open at either end count once).
    served = result["sent"] - sum(result["warmup_statuses"].values())
    if _errors(result):
        print(f"profiled run had errors: {_errors(result)}")
    threads = json.loads(Path(f"{out}.threads.json").read_text())
    stats = pstats.Stats(str(out))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    per = 1e6 / served
    print(
        f"\n## profile: create ticket, SQLite, {clients} clients, {served:,} requests in "
        f"{args.duration:g} s after {args.warmup:g} s warm-up: {total * per:,.0f} µs "
        f"CPU per request under cProfile, {threads.get('main', 0) * per:,.0f} in the event "
        f"loop thread, {threads.get('worker', 0) * per:,.0f} in worker threads "
        f"({result['count'] / args.duration:,.0f} req/s while profiled)"
    )
    layers: dict[str, float] = {}
    for (path, _, func), (_, _, tt, _, _) in raw.items():
        layers[_layer(path, func)] = layers.get(_layer(path, func), 0.0) + tt
    print("own CPU time by package (project: by top-level package):")
    for name, tt in sorted(layers.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {tt / total:6.1%}  {tt * per:7.0f} µs/req  {name}")
    print(f"hot functions by own time (top {top}):")
    for key, (_, nc, tt, ct, _) in sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]:
        print(
            f"  {tt / total:6.1%}  {tt * per:6.0f} µs/req  cum {ct / total:6.1%}  "
            f"{nc / served:6.1f} calls/req  {_where(key)}"
        )
    mine = [(k, v) for k, v in raw.items() if _ours(k[0]) and "benchmarks" not in k[0]]
    print(f"project functions by cumulative time (top {top}):")
    for key, (_, nc, _, ct, _) in sorted(mine, key=lambda kv: -kv[1][3])[:top]:
        print(
            f"  {ct / total:6.1%}  {ct * per:6.0f} µs/req  {nc / served:6.1f} calls/req  "
            + _where(key)
        )
    direct_create(workdir, args)


def direct_create(workdir: Path, args: argparse.Namespace) -> None:
    """`Runtime.create` of the same incident in-process, no HTTP, unprofiled: from one
    thread, and from a pool of 10 threads kept busy (as the server's worker threads are at
    10 clients)."""
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    rt = Runtime.open(example_packs(), f"sqlite:///{workdir / 'direct.db'}", tenant=TENANT)
    actor = Actor.of("olivia", ["employee"], TENANT)
    fields: dict[str, Any] = INCIDENT["fields"]  # type: ignore[assignment]

    def create() -> None:
        rt.create("incident", fields, actor, channel="api")

    try:
        for _ in range(50):  # warm-up
            create()
        print("Runtime.create in-process, SQLite, no HTTP (CPU of the whole process):")
        with ThreadPoolExecutor(10) as pool:
            for threads in (1, 10):
                n, cpu, t0 = 0, time.process_time(), time.perf_counter()
                pending: deque[Future[None]] = deque(pool.submit(create) for _ in range(threads))
                while time.perf_counter() - t0 < args.duration:
                    pending.popleft().result()
                    n += 1
                    pending.append(pool.submit(create))
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu
                for f in pending:
                    f.result()
                print(
                    f"  {threads:>2} in flight: {n / wall:6,.0f} creates/s, "
                    f"{cpu / n * 1e6:6,.0f} µs CPU per create"
                )
    finally:
        rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s runs after 1 s warm-up")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (median)")
    parser.add_argument("--clients", default="10,100", help="concurrent clients, comma-separated")
    parser.add_argument(
        "--database", help="also serve from this database (PostgreSQL: in a fresh schema)"
    )
    parser.add_argument("--profile", action="store_true", help="then profile the create path")
    args = parser.parse_args()
    args.duration, args.warmup = (2.0, 1.0) if args.quick else (5.0, 2.0)
    args.clients = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_http_") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        hello = stack.enter_context(started("hello-world", hello_argv(), "/hello", workdir))
        sqlite_url = f"sqlite:///{workdir / 'tickets.db'}"
        targets = [stack.enter_context(ticketflow("SQLite", sqlite_url, workdir))]
        if args.database:
            label, url = stack.enter_context(extra_database(args.database))
            targets.append(stack.enter_context(ticketflow(label, url, workdir)))
        rounds = []
        for i in range(args.rounds):
            print(f"round {i + 1} of {args.rounds}", flush=True)
            rounds.append(run_round(hello, targets, args))
        stack.close()
        report(rounds, uvicorn_http(), args)
        if args.profile:
            profile_create(args, workdir)


if __name__ == "__main__":
    main()
