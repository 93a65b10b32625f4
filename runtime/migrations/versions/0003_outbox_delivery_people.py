"""Outbox delivery, the people directory, assignee load.

Outbox rows get the channel and recipient of a notification, the last attempt's error and
the delivery time. A row is due at `next_attempt_at`, now always set (back-filled from
`created_at`), and the statuses are pending, sent and dead: the old `sending` and `failed`
become pending, so a row some worker held when this runs is delivered again (at least
once). `ix_outbox_due` covers the claim query's whole ORDER BY (status, next_attempt_at,
tenant_id, id), across tenants like `ix_timers_due`; it replaces `ix_outbox_status`.
`ix_outbox_recipient` serves a person's in-app inbox, newest first.

`people` holds each tenant's directory, one JSON document per person; its revision is a
row of `sequences` (name `rev:directory`). `ix_tickets_assignee` gains `closed`, so the
open-load query reads open tickets of an assignee without visiting closed ones.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OUTBOX_COLUMNS = ("channel", "recipient", "last_error", "delivered_at")


def upgrade() -> None:
    op.add_column("outbox", sa.Column("channel", sa.String(), nullable=True))
    op.add_column("outbox", sa.Column("recipient", sa.String(), nullable=True))
    op.add_column("outbox", sa.Column("last_error", sa.String(), nullable=True))
    op.add_column("outbox", sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE outbox SET next_attempt_at = created_at WHERE next_attempt_at IS NULL")
    op.execute("UPDATE outbox SET status = 'pending' WHERE status IN ('sending', 'failed')")
    op.drop_index("ix_outbox_status", table_name="outbox")
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at", "tenant_id", "id"])
    op.create_index("ix_outbox_recipient", "outbox", ["tenant_id", "recipient", "created_at", "id"])

    op.drop_index("ix_tickets_assignee", table_name="tickets")
    op.create_index("ix_tickets_assignee", "tickets", ["tenant_id", "assignee", "closed"])

    data = sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )
    op.create_table(
        "people",
        sa.Column("tenant_id", sa.String(), primary_key=True, nullable=False),
        sa.Column("id", sa.String(), primary_key=True, nullable=False),
        sa.Column("data", data, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("people")
    op.execute("DELETE FROM sequences WHERE name = 'rev:directory'")

    op.drop_index("ix_tickets_assignee", table_name="tickets")
    op.create_index("ix_tickets_assignee", "tickets", ["tenant_id", "assignee"])

    op.drop_index("ix_outbox_recipient", table_name="outbox")
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.create_index("ix_outbox_status", "outbox", ["status", "created_at"])
    # Batch mode: SQLite before 3.35 cannot drop a column, so the table is copied there.
    with op.batch_alter_table("outbox") as batch:
        for name in _OUTBOX_COLUMNS:
            batch.drop_column(name)
