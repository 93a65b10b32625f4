"""The initial schema: tickets, their timeline, audit, outbox, timers and bookkeeping.

Revision ID: 0001
Revises:
Create Date: 2025-11-25

Plain SQLAlchemy types only, so this file keeps working whatever `runtime.store.sql`
becomes: timestamps are `DateTime(timezone=True)` (the store's `UTCDateTime` decorates it)
and JSON is JSONB on PostgreSQL. Every key and unique index starts with `tenant_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(name: str, *, key: bool = False, null: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(), primary_key=key, nullable=null)


def _time(name: str, *, null: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=null)


def _int(name: str, *, key: bool = False, big: bool = False) -> sa.Column[int]:
    kind = sa.BigInteger() if big else sa.Integer()
    return sa.Column(name, kind, primary_key=key, nullable=False)


def _json(name: str, *, null: bool = False) -> sa.Column[object]:
    kind = sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )
    return sa.Column(name, kind, nullable=null)


def upgrade() -> None:
    op.create_table(
        "tickets",
        _text("tenant_id", key=True),
        _text("id", key=True),
        _text("ref"),
        _text("pack"),
        _int("pack_version"),
        _text("template"),
        _text("state"),
        _json("fields"),
        _int("version"),
        _time("created_at"),
        _time("updated_at"),
        _time("state_entered_at"),
        _text("title", null=True),
        _text("requester", null=True),
        _text("assignee", null=True),
        _text("team", null=True),
        _text("channel", null=True),
        _json("watchers"),
        _json("tags"),
        _text("parent_id", null=True),
        _text("link", null=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        _int("event_seq"),
        _text("search_text"),
    )
    op.create_index("ix_tickets_created", "tickets", ["tenant_id", "created_at", "id"])
    op.create_index("ix_tickets_state", "tickets", ["tenant_id", "state"])
    op.create_index("ix_tickets_assignee", "tickets", ["tenant_id", "assignee"])
    op.create_index("ix_tickets_team", "tickets", ["tenant_id", "team"])
    op.create_index("ix_tickets_requester", "tickets", ["tenant_id", "requester"])
    op.create_index("ix_tickets_pack", "tickets", ["tenant_id", "pack", "closed"])

    op.create_table(
        "events",
        _text("tenant_id", key=True),
        _text("ticket_id", key=True),
        _int("seq", key=True),
        _time("at"),
        _text("kind"),
        _text("actor"),
        _json("data"),
        _text("visibility"),
    )
    op.create_table(
        "audit",
        _text("tenant_id", key=True),
        _int("seq", key=True, big=True),
        _time("at"),
        _text("actor"),
        _text("action"),
        _text("subject"),
        _json("before", null=True),
        _json("after", null=True),
        _text("prev_hash"),
        _text("hash"),
    )
    op.create_table(
        "audit_heads",
        _text("tenant_id", key=True),
        _int("seq", big=True),
        _text("hash"),
    )
    op.create_table(
        "outbox",
        _text("tenant_id", key=True),
        _text("id", key=True),
        _time("created_at"),
        _text("kind"),
        _text("ticket_id", null=True),
        _json("payload"),
        _text("status"),
        _int("attempts"),
        _time("next_attempt_at", null=True),
    )
    op.create_index("ix_outbox_status", "outbox", ["status", "created_at"])
    op.create_index("ix_outbox_tenant", "outbox", ["tenant_id", "created_at"])

    op.create_table(
        "timers",
        _text("tenant_id", key=True),
        _text("id", key=True),
        _time("due_at"),
        _text("kind"),
        _text("ticket_id", null=True),
        _json("payload"),
        _text("key"),
        _text("status"),
        _time("fired_at", null=True),
    )
    op.create_index("ix_timers_due", "timers", ["status", "due_at"])
    op.create_index("ix_timers_ticket", "timers", ["tenant_id", "ticket_id", "key"])

    op.create_table(
        "idempotency",
        _text("tenant_id", key=True),
        _text("key", key=True),
        _text("ticket_id"),
    )
    op.create_table(
        "sequences",
        _text("tenant_id", key=True),
        _text("name", key=True),
        _int("value", big=True),
    )
    op.create_table(
        "pack_versions",
        _text("tenant_id", key=True),
        _text("pack", key=True),
        _int("version", key=True),
        _time("published_at"),
        _text("published_by"),
        _json("document"),
        _text("digest"),
    )


def downgrade() -> None:
    for table in (
        "pack_versions",
        "sequences",
        "idempotency",
        "timers",
        "outbox",
        "audit_heads",
        "audit",
        "events",
        "tickets",
    ):
        op.drop_table(table)
