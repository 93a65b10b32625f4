"""SLA clocks live in the ticket row, so they commit with the command that moved them; the
due-timer index covers the due query's whole ORDER BY (due_at, tenant_id, id), so that
PostgreSQL walks the index instead of sorting every overdue timer.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    kind = sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )
    op.add_column("tickets", sa.Column("sla", kind, nullable=True))
    op.drop_index("ix_timers_due", table_name="timers")
    op.create_index("ix_timers_due", "timers", ["status", "due_at", "tenant_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_timers_due", table_name="timers")
    op.create_index("ix_timers_due", "timers", ["status", "due_at"])
    op.drop_column("tickets", "sla")
