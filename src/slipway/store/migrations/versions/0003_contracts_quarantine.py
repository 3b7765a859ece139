"""data contracts on versions, contract mode on endpoints, the quarantine

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from slipway.store.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("contract", sa.JSON(), nullable=True))
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(
            sa.Column("contract_mode", sa.String(16), nullable=False, server_default="reject")
        )
    with op.batch_alter_table("endpoints") as batch:
        batch.alter_column("contract_mode", existing_type=sa.String(16), server_default=None)
    op.create_table(
        "quarantine",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("row_index", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("route", sa.String(16), nullable=False),
        sa.Column("row", sa.JSON(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("prediction_id", sa.String(48), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    op.create_index(
        "ix_quarantine_endpoint_status_created",
        "quarantine",
        ["endpoint", "status", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    raise NotImplementedError("slipway migrations are forward-only; restore a backup instead")
