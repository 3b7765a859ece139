"""principals, grants, richer tokens and the hash-chained audit log

Existing tokens (the spine's bootstrap tokens, which named a principal and a role) become
tokens of a principal of that name holding a global grant of that role.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from slipway.store.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def _id() -> str:
    return f"{time.time_ns() // 1000:013x}{secrets.token_hex(10)[:19]}"


def upgrade() -> None:
    op.create_table(
        "principals",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principals")),
        sa.UniqueConstraint("name", name=op.f("uq_principals_name")),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("principal_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("scope_kind", sa.String(16), nullable=False),
        sa.Column("scope_name", sa.String(128), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name=op.f("fk_grants_principal_id_principals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
    )
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_kind", sa.String(32), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("id", name=op.f("uq_audit_events_id")),
    )
    for column in ("actor", "action", "target", "created_at"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column], unique=False)
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])

    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("principal_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("name", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("expires_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("last_used_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("rotated_from", sa.String(32), nullable=True))
        batch.add_column(sa.Column("rate_limit_rps", sa.Float(), nullable=True))
        batch.add_column(sa.Column("max_concurrent", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("created_by", sa.String(128), nullable=True))

    conn = op.get_bind()
    now = datetime.now(UTC)
    tokens = sa.table(
        "tokens",
        sa.column("id"),
        sa.column("principal"),
        sa.column("role"),
        sa.column("principal_id"),
        sa.column("scopes", sa.JSON),
        sa.column("created_by"),
    )
    principals = sa.table(
        "principals",
        *(sa.column(c) for c in ("id", "name", "kind", "owner", "disabled", "created_by")),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    grants = sa.table(
        "grants",
        *(
            sa.column(c)
            for c in ("id", "principal_id", "role", "scope_kind", "scope_name", "created_by")
        ),
        sa.column("created_at", UTCDateTime()),
    )
    by_name: dict[str, str] = {}
    for row in conn.execute(sa.select(tokens.c.id, tokens.c.principal, tokens.c.role)).all():
        pid = by_name.get(row.principal)
        if pid is None:
            pid = by_name[row.principal] = _id()
            conn.execute(
                principals.insert().values(
                    id=pid,
                    name=row.principal,
                    kind="user",
                    owner="",
                    disabled=False,
                    created_by="migration",
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                grants.insert().values(
                    id=_id(),
                    principal_id=pid,
                    role=row.role,
                    scope_kind="global",
                    scope_name=None,
                    created_by="migration",
                    created_at=now,
                )
            )
        conn.execute(
            tokens.update()
            .where(tokens.c.id == row.id)
            .values(principal_id=pid, scopes=[], created_by="migration")
        )

    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("principal_id", existing_type=sa.String(32), nullable=False)
        batch.alter_column("scopes", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("created_by", existing_type=sa.String(128), nullable=False)
        batch.alter_column("name", existing_type=sa.String(128), server_default=None)
        batch.create_foreign_key(
            op.f("fk_tokens_principal_id_principals"), "principals", ["principal_id"], ["id"]
        )
        batch.drop_column("principal")
        batch.drop_column("role")


def downgrade() -> None:
    raise NotImplementedError("slipway migrations are forward-only; restore a backup instead")
