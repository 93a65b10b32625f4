"""Alembic's environment, configured in code (there is no alembic.ini).

`runtime.store.sql.migrate` builds the `Config` and passes an open connection, already in a
transaction, through `config.attributes["connection"]`; the migrations run inside it.
Without a connection, the `sqlalchemy.url` main option names the database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from runtime.store.sql import make_engine, metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Print the SQL for a URL instead of running it (`alembic upgrade --sql`)."""
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no connection and no sqlalchemy.url to migrate")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
