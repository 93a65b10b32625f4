"""Stores the runtime runs on: in memory, or SQL (SQLite file, PostgreSQL)."""

from __future__ import annotations

from runtime.store.base import Store, Tx
from runtime.store.memory import MemoryStore

__all__ = ["MemoryStore", "Store", "Tx", "open_store"]


def open_store(url: str | None) -> Store:
    """The store at `url`: None or "memory" for an in-memory one, else a SQLAlchemy URL
    (`sqlite:///path.db`, `sqlite://` in memory, `postgresql+psycopg://…`), migrated to the
    newest schema."""
    if url is None or url == "memory":
        return MemoryStore()
    # Imported here so the in-memory store needs no SQLAlchemy import at start-up.
    from runtime.store.sql import SqlStore

    return SqlStore(url)
