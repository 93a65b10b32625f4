"""Outbox messages delivered per second to a local webhook receiver.

Run: .venv/bin/python benchmarks/bench_outbox.py [--messages N] [--no-pg] [--batch B]

A threaded HTTP receiver on 127.0.0.1 answers 200 to every POST, after checking the HMAC
signature of each body (as a real receiver would). For each database (a SQLite file in a
temporary directory; a fresh PostgreSQL schema, dropped afterwards):

  - N webhook messages (signed with a configured secret, 300-byte JSON bodies) are queued
    through the store's own `add_outbox`, 5,000 per transaction;
  - `Runtime.drain_outbox(batch=B)` delivers them all: claim B under a lease (one
    transaction), POST each (one keep-alive HTTP connection), write the outcomes (one
    transaction) — the wall-clock time is reported as messages per second;

and, as the ceiling in the same run, the same number of signed POSTs sent by a bare loop over
one `httpx.Client` (no database at all). The ratio says what the outbox costs on top of HTTP.

PostgreSQL URL: TICKETFLOW_BENCH_PG_URL, else TICKETFLOW_TEST_DATABASE_URL, else
postgresql+psycopg://postgres@127.0.0.1:5432/test; skipped with a note when unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.api import Runtime
from runtime.delivery import ChannelConfig, sign, verify_signature
from runtime.records import OutboxRow
from runtime.store import open_store

SECRET = "bench-secret"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class _Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as production receivers do
    # One packet per response: unbuffered headers and body in separate writes meet the
    # client's delayed ACK (40 ms a request on Linux), which would measure TCP, not us.
    wbufsize = -1
    disable_nagle_algorithm = True
    count = 0
    bad = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ok = verify_signature(
            SECRET, self.headers.get("X-Ticketflow-Signature", ""), body, time.time()
        )
        with _Receiver.lock:
            _Receiver.count += 1
            _Receiver.bad += not ok
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return


@contextmanager
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _body(i: int) -> str:
    return json.dumps({"event": "resolved", "ticket": {"ref": f"SR-{i:06d}", "store": "S0001",
                       "note": "x" * 200}})  # fmt: skip


def queue(url_db: str, url_hook: str, n: int) -> None:
    store = open_store(url_db)
    try:
        for start in range(0, n, 5000):
            rows = []
            for i in range(start, min(n, start + 5000)):
                payload = {"source": "bench", "url": url_hook, "method": "POST", "secret": "erp",
                           "body": _body(i), "content_type": "application/json"}  # fmt: skip
                row = OutboxRow("bench", uuid.uuid4().hex, NOW, "webhook", None, payload)
                row.channel = "webhook"
                rows.append(row)
            with store.transaction() as tx:
                tx.add_outbox(rows)
    finally:
        store.close()


def drain_rate(url_db: str, url_hook: str, n: int, batch: int) -> tuple[float, int]:
    queue(url_db, url_hook, n)
    config = ChannelConfig.model_validate({"secrets": {"erp": {"value": SECRET}}})
    rt = Runtime(open_store(url_db), channels=config)
    try:
        t0 = time.perf_counter()
        report = rt.drain_outbox(now=NOW, batch=batch, limit=n)
        elapsed = time.perf_counter() - t0
    finally:
        rt.close()
    return report.sent / elapsed, report.sent


def bare_rate(url_hook: str, n: int) -> float:
    with httpx.Client() as client:
        t0 = time.perf_counter()
        for i in range(n):
            body = _body(i).encode()
            signature = sign(SECRET.encode(), body, int(time.time()))
            headers = {"Content-Type": "application/json", "X-Ticketflow-Signature": signature}
            client.post(url_hook, content=body, headers=headers).raise_for_status()
        return n / (time.perf_counter() - t0)


@contextmanager
def pg_schema() -> Iterator[str | None]:
    import sqlalchemy as sa

    base = os.environ.get("TICKETFLOW_BENCH_PG_URL") or os.environ.get(
        "TICKETFLOW_TEST_DATABASE_URL", PG_DEFAULT
    )
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        engine = sa.create_engine(base)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.SQLAlchemyError as exc:
        print(f"PostgreSQL skipped: {exc.__class__.__name__}")
        yield None
        return
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    n = args.messages
    rows: list[tuple[str, float]] = []
    with receiver() as hook:
        ceiling = bare_rate(hook, n)
        rows.append(("bare httpx loop (ceiling)", ceiling))
        with tempfile.TemporaryDirectory() as tmp:
            rate, sent = drain_rate(f"sqlite:///{tmp}/bench.db", hook, n, args.batch)
            assert sent == n, f"only {sent} of {n} sent"
            rows.append((f"outbox drain, SQLite, batch {args.batch}", rate))
        if not args.no_pg:
            with pg_schema() as url:
                if url is not None:
                    rate, sent = drain_rate(url, hook, n, args.batch)
                    assert sent == n, f"only {sent} of {n} sent"
                    rows.append((f"outbox drain, PostgreSQL, batch {args.batch}", rate))
    print(f"{n:,} signed webhook messages to a local receiver (bad signatures: {_Receiver.bad})")
    print(f"{'path':<40} {'msgs/s':>10} {'of ceiling':>11}")
    for name, rate in rows:
        print(f"{name:<40} {rate:>10,.0f} {rate / ceiling:>10.0%}")


if __name__ == "__main__":
    main()
