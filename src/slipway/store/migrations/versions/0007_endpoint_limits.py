"""endpoint limits: per-endpoint overrides of the server's serving limits

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("max_inflight", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_queue", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("request_timeout_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("batch_max_rows", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("batch_wait_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        for column in (
            "batch_wait_ms",
            "batch_max_rows",
            "request_timeout_s",
            "max_queue",
            "max_inflight",
        ):
            batch.drop_column(column)
