"""API tokens, builder drafts, intake, alarms and assets.

`api_tokens` keeps a token's sha256, never its secret; its unique index leads with
`tenant_id` like every other, and a plain index on `hash` finds a request's token whatever
its tenant.
`drafts` holds a pack being edited in the builder, with the revision a save must name.
`intake` keeps every item an intake channel received under its idempotency key, and
`ix_intake_ticket` lists a ticket's items in (received_at, key) order. `alarms` tracks
monitoring alarms so repeats attach to one ticket; `assets` is a tenant's catalogue of
QR-coded assets.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("api_tokens", "drafts", "intake", "alarms", "assets")


def _text(name: str, *, key: bool = False, null: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(), primary_key=key, nullable=null)


def _time(name: str, *, null: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=null)


def _int(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False)


def _json(name: str) -> sa.Column[object]:
    kind = sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )
    return sa.Column(name, kind, nullable=False)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        _text("tenant_id", key=True),
        _text("id", key=True),
        _text("hash"),
        _text("user_id"),
        _json("roles"),
        _text("name"),
        _time("created_at"),
        _time("expires_at", null=True),
        _time("revoked_at", null=True),
    )
    op.create_index(
        "ux_api_tokens_tenant_hash", "api_tokens", ["tenant_id", "hash"], unique=True
    )
    op.create_index("ix_api_tokens_hash", "api_tokens", ["hash"])
    op.create_table(
        "drafts",
        _text("tenant_id", key=True),
        _text("pack", key=True),
        _json("files"),
        _int("revision"),
        _time("updated_at"),
        _text("updated_by"),
    )
    op.create_table(
        "intake",
        _text("tenant_id", key=True),
        _text("key", key=True),
        _text("channel"),
        _time("received_at"),
        _text("outcome"),
        _text("ticket_id", null=True),
        _json("data"),
    )
    op.create_index("ix_intake_ticket", "intake", ["tenant_id", "ticket_id", "received_at", "key"])
    op.create_table(
        "alarms",
        _text("tenant_id", key=True),
        _text("key", key=True),
        _text("ticket_id"),
        _time("first_at"),
        _time("last_at"),
        _int("count"),
        _time("resolved_at", null=True),
    )
    op.create_table(
        "assets",
        _text("tenant_id", key=True),
        _text("code", key=True),
        _json("data"),
        _time("updated_at"),
    )


def downgrade() -> None:
    # Dropping a table drops its indexes.
    for table in reversed(_TABLES):
        op.drop_table(table)
