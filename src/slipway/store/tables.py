"""The relational schema, in SQLAlchemy Core (the one style used throughout).

Alembic migrations in ``store/migrations`` create exactly this; a test compares them.
Rows are never hard-deleted from ``models`` or ``versions``: they are retired.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so migrations can refer to them on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out, on every backend (SQLite keeps no
    zone, so naive values read back are UTC by construction)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc() -> UTCDateTime:
    return UTCDateTime()


models = Table(
    "models",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("owner", String(256), nullable=False),
    Column("oncall", String(256), nullable=False, default=""),
    Column("runbook_url", String(1024), nullable=False, default=""),
    Column("risk_tier", String(16), nullable=False, default="medium"),
    Column("intended_use", Text, nullable=False, default=""),
    Column("limitations", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False, default=list),
    Column("status", String(16), nullable=False, default="active"),
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("updated_at", _utc(), nullable=False),
)

versions = Table(
    "versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model_id", String(32), ForeignKey("models.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("artifact_size", BigInteger, nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("library_versions", JSON, nullable=False, default=dict),
    Column("signature", JSON, nullable=False),
    # The data contract (contracts/schema.py); NULL on versions registered before it.
    Column("contract", JSON, nullable=True),
    Column("trusted_types", JSON, nullable=False, default=list),
    Column("example_rows", JSON, nullable=False, default=list),
    Column("lineage", JSON, nullable=False, default=dict),
    Column("description", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False, default="registered"),
    Column("status_reason", Text, nullable=False, default=""),
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("updated_at", _utc(), nullable=False),
    UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("model_id", String(32), ForeignKey("models.id"), nullable=False),
    Column("version_id", String(32), ForeignKey("versions.id"), nullable=False),
    Column("previous_version_id", String(32), ForeignKey("versions.id"), nullable=True),
    # Bumped on every change so every worker notices a redeploy by polling one integer.
    Column("generation", Integer, nullable=False, default=1),
    # reject: a request with any bad row gets 422; partial: good rows are predicted.
    Column("contract_mode", String(16), nullable=False, default="reject"),
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("updated_at", _utc(), nullable=False),
)

prediction_records = Table(
    "prediction_records",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", _utc(), nullable=False),
    Column("endpoint", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("version_id", String(32), nullable=False),
    Column("caller", String(64), nullable=False),
    Column("route", String(16), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("outputs", JSON, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("outcome", String(32), nullable=False),
    Index("ix_prediction_records_endpoint_created", "endpoint", "created_at"),
)

# Rows refused by a contract, kept with their reasons; never dropped.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", _utc(), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("row_index", Integer, nullable=False),
    Column("endpoint", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("version_id", String(32), nullable=False),
    Column("caller", String(64), nullable=False),
    Column("route", String(16), nullable=False),
    # The row as shown: fields marked pii replaced by a keyed hash.
    Column("row", JSON, nullable=False),
    # The row as sent, encrypted (Fernet) so replay can resend it; never shown.
    Column("sealed", Text, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("status", String(16), nullable=False, default="open"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("resolved_at", _utc(), nullable=True),
    Column("resolved_by", String(128), nullable=True),
    Column("prediction_id", String(48), nullable=True),
    Index("ix_quarantine_endpoint_status_created", "endpoint", "status", "created_at"),
)

principals = Table(
    "principals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # user | service
    Column("owner", String(256), nullable=False, default=""),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("updated_at", _utc(), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("principal_id", String(32), ForeignKey("principals.id"), nullable=False),
    Column("name", String(128), nullable=False, default=""),
    # SHA-256 of the token; the token itself is shown once and never stored.
    Column("token_sha256", String(64), nullable=False, unique=True),
    # Permissions this token is limited to; empty means all its principal's grants allow.
    Column("scopes", JSON, nullable=False, default=list),
    Column("expires_at", _utc(), nullable=True),
    Column("revoked_at", _utc(), nullable=True),
    Column("last_used_at", _utc(), nullable=True),
    Column("rotated_from", String(32), nullable=True),
    Column("rate_limit_rps", Float, nullable=True),
    Column("max_concurrent", Integer, nullable=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
)

grants = Table(
    "grants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("principal_id", String(32), ForeignKey("principals.id"), nullable=False),
    Column("role", String(32), nullable=False),
    Column("scope_kind", String(16), nullable=False),  # global | model | endpoint
    Column("scope_name", String(128), nullable=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("revoked_at", _utc(), nullable=True),
)

# The audit log: append-only, hash-chained (h_i = SHA-256(h_{i-1} || canonical(event_i))).
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(32), nullable=False, unique=True),
    Column("created_at", _utc(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("token_id", String(32), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target_kind", String(32), nullable=False),
    Column("target", String(256), nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("request_id", String(64), nullable=False, default=""),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_actor", "actor"),
    Index("ix_audit_events_action", "action"),
    Index("ix_audit_events_target", "target"),
    Index("ix_audit_events_created_at", "created_at"),
)

# One row (id = 1): the chain's head. Appends lock it, so they are serialized on every
# backend (SELECT ... FOR UPDATE on PostgreSQL; SQLite's write lock already does).
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)
