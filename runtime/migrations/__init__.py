"""Alembic migrations of the runtime's database schema (see `runtime.store.sql.migrate`)."""
