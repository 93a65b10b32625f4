"""Runtime fixtures shared by the runtime tests: one runtime per store kind (memory,
SQLite file, PostgreSQL when TICKETFLOW_TEST_DATABASE_URL is set), on a manual clock."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from runtime.api import Runtime
from runtime.clock import ManualClock
from runtime.store import open_store

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ROOT / "tests" / "packs" / "service"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday, 09:00 in Berlin
PG_URL = os.environ.get("TICKETFLOW_TEST_DATABASE_URL")
STORE_KINDS = ["memory", "sqlite", "postgresql"]


def counter_ids() -> Any:
    """Readable, repeatable ids: t0001, t0002, ..."""
    numbers = itertools.count(1)
    return lambda: f"t{next(numbers):04d}"


@contextmanager
def pg_schema_url(base: str) -> Iterator[str]:
    """A PostgreSQL URL whose connections use a fresh schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@contextmanager
def database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "memory":
        yield "memory"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'tickets.db'}"
    else:
        if not PG_URL:
            pytest.skip("TICKETFLOW_TEST_DATABASE_URL is not set: no PostgreSQL to test on")
        with pg_schema_url(PG_URL) as url:
            yield url


@contextmanager
def make_runtime(kind: str, tmp_path: Path, packs: Any = (SERVICE,)) -> Iterator[tuple[Runtime, ManualClock]]:
    clock = ManualClock(START)
    with database_url(kind, tmp_path) as url:
        rt = Runtime.open(packs, database_url=url, clock=clock, new_id=counter_ids())
        try:
            yield rt, clock
        finally:
            rt.close()


__all__ = ["SERVICE", "START", "STORE_KINDS", "make_runtime", "open_store"]
