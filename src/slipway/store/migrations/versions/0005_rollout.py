"""rollout: traffic plans (canary, shadows, stop switch), rollouts, analysis templates

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from slipway.store.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("canary_version_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("canary_weight", sa.Float(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column("routing", sa.String(length=8), server_default="random", nullable=False)
        )
        batch.add_column(
            sa.Column("shadow_version_ids", sa.JSON(), server_default="[]", nullable=False)
        )
        batch.add_column(sa.Column("stopped_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("stop_reason", sa.String(length=2000), nullable=True))
        batch.add_column(sa.Column("fallback_version_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            op.f("fk_endpoints_canary_version_id_versions"),
            "versions",
            ["canary_version_id"],
            ["id"],
        )
        batch.create_foreign_key(
            op.f("fk_endpoints_fallback_version_id_versions"),
            "versions",
            ["fallback_version_id"],
            ["id"],
        )
    with op.batch_alter_table("prediction_records") as batch:
        batch.add_column(
            sa.Column("arm", sa.String(length=8), server_default="primary", nullable=False)
        )
        batch.add_column(sa.Column("mirror_of", sa.String(length=32), nullable=True))
    with op.batch_alter_table("monitor_windows") as batch:
        batch.add_column(
            sa.Column("shadow", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("from_version_id", sa.String(length=32), nullable=False),
        sa.Column("to_version_id", sa.String(length=32), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=False),
        sa.Column("to_version", sa.Integer(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("step_duration_s", sa.Float(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("routing", sa.String(length=8), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("analysis", sa.JSON(), nullable=False),
        sa.Column("last_analysis", sa.JSON(), nullable=True),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("decision", sa.String(length=2000), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("step_started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_version_id"], ["versions.id"], name=op.f("fk_rollouts_from_version_id_versions")
        ),
        sa.ForeignKeyConstraint(
            ["to_version_id"], ["versions.id"], name=op.f("fk_rollouts_to_version_id_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )
    op.create_index("ix_rollouts_endpoint_state", "rollouts", ["endpoint", "state"], unique=False)
    op.create_table(
        "analysis_templates",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_analysis_templates")),
    )


def downgrade() -> None:
    op.drop_table("analysis_templates")
    op.drop_index("ix_rollouts_endpoint_state", table_name="rollouts")
    op.drop_table("rollouts")
    with op.batch_alter_table("monitor_windows") as batch:
        batch.drop_column("shadow")
    with op.batch_alter_table("prediction_records") as batch:
        batch.drop_column("mirror_of")
        batch.drop_column("arm")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_constraint(op.f("fk_endpoints_fallback_version_id_versions"), "foreignkey")
        batch.drop_constraint(op.f("fk_endpoints_canary_version_id_versions"), "foreignkey")
        for column in (
            "fallback_version_id",
            "stop_reason",
            "stopped_at",
            "shadow_version_ids",
            "routing",
            "canary_weight",
            "canary_version_id",
        ):
            batch.drop_column(column)
