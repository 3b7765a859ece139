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
from sqlalchemy.sql.expression import false
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
    # Legal hold (governance/retention.py): while set, nothing of the model is purged.
    Column("legal_hold_at", _utc(), nullable=True),
    Column("legal_hold_by", String(128), nullable=True),
    Column("legal_hold_reason", Text, nullable=True),
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
    # The reference profile (monitoring/profile.py): sketches of the training data.
    Column("profile", JSON, nullable=True),
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
    # The p99 latency objective the default latency monitor holds the endpoint to.
    Column("latency_slo_ms", Float, nullable=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("updated_at", _utc(), nullable=False),
    # The rest of the traffic plan: a canary taking canary_weight percent of requests
    # (random, or sticky by the caller's routing key), shadows answering copies.
    Column("canary_version_id", String(32), ForeignKey("versions.id"), nullable=True),
    Column("canary_weight", Float, nullable=False, server_default="0"),
    Column("routing", String(8), nullable=False, server_default="random"),
    Column("shadow_version_ids", JSON, nullable=False, server_default="[]"),
    # The stop switch: a stopped endpoint answers 503, or its fallback version.
    Column("stopped_at", _utc(), nullable=True),
    Column("stop_reason", String(2000), nullable=True),
    Column("fallback_version_id", String(32), ForeignKey("versions.id"), nullable=True),
    # Serving limits overriding the server's settings of the same names; NULL: the
    # server's (see serving/limits.py).
    Column("max_inflight", Integer, nullable=True),
    Column("max_queue", Integer, nullable=True),
    Column("request_timeout_s", Float, nullable=True),
    Column("batch_max_rows", Integer, nullable=True),
    Column("batch_wait_ms", Float, nullable=True),
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
    # primary | canary | fallback answered the caller; shadow answered a copy of the
    # record ``mirror_of`` (its inputs are that record's, not stored twice).
    Column("arm", String(8), nullable=False, server_default="primary"),
    Column("mirror_of", String(32), nullable=True),
    Index("ix_prediction_records_endpoint_created", "endpoint", "created_at"),
    # Retention purges by model and age (governance/retention.py).
    Index("ix_prediction_records_model_created", "model", "created_at"),
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

# Live windows (monitoring/windows.py): one row per flush of one worker's window of one
# endpoint x version x time bucket. Rows of the same bucket are merged on read; old
# minute rows are rolled up into hour rows, hours into days.
monitor_windows = Table(
    "monitor_windows",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("endpoint", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("version_id", String(32), nullable=False),
    Column("granularity", String(8), nullable=False),  # minute | hour | day
    Column("bucket_start", _utc(), nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", _utc(), nullable=False),
    # Shadow traffic is kept apart: monitors and summaries judge what callers got.
    Column("shadow", Boolean, nullable=False, server_default=false()),
    Index("ix_monitor_windows_lookup", "endpoint", "granularity", "bucket_start"),
)

# Ground truth for predictions, arriving later; one row per prediction id (a second
# label for the same id replaces the first and is reported as updated).
feedback = Table(
    "feedback",
    metadata,
    Column("prediction_id", String(48), primary_key=True),
    Column("record_id", String(32), nullable=False),
    Column("endpoint", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("predicted_at", _utc(), nullable=False),
    Column("received_at", _utc(), nullable=False),
    Column("label", JSON, nullable=False),
    # The prediction as answered, copied from the record so metrics need no join.
    Column("prediction", JSON, nullable=False),
    Column("probabilities", JSON, nullable=True),
    Column("classes", JSON, nullable=True),
    Column("source", String(16), nullable=False, default="feedback"),  # feedback | override
    Column("created_by", String(128), nullable=False),
    # Why a reviewer overrode the prediction (source = override); empty for feedback.
    Column("reason", Text, nullable=True),
    Index("ix_feedback_endpoint_predicted", "endpoint", "predicted_at"),
)

# Declarative rules over live windows (monitoring/monitors.py).
monitors = Table(
    "monitors",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("endpoint", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("metric", String(32), nullable=False),
    # The feature a drift monitor watches; NULL watches every feature, one alert each.
    Column("feature", String(128), nullable=True),
    Column("window_s", Integer, nullable=False),
    Column("op", String(2), nullable=False),  # ">" | "<"
    Column("threshold", Float, nullable=False),
    Column("min_samples", Integer, nullable=False),
    Column("severity", String(16), nullable=False),  # info | warning | critical
    Column("enabled", Boolean, nullable=False, default=True),
    # Created by slipway on deploy (and replaced on the next deploy) or by a person.
    Column("builtin", Boolean, nullable=False, default=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("updated_at", _utc(), nullable=False),
    UniqueConstraint("endpoint", "name", name="uq_monitors_endpoint_name"),
)

# What monitors raise. One firing alert per fingerprint (monitor, version, subject);
# it is updated while the breach lasts and resolved when the metric recovers.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("fingerprint", String(300), nullable=False),
    Column("monitor_id", String(32), nullable=False),
    Column("monitor", String(128), nullable=False),
    Column("endpoint", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("metric", String(32), nullable=False),
    Column("subject", String(128), nullable=False, default=""),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # firing | resolved
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("started_at", _utc(), nullable=False),
    Column("updated_at", _utc(), nullable=False),
    Column("resolved_at", _utc(), nullable=True),
    Index("ix_alerts_fingerprint_state", "fingerprint", "state"),
    Index("ix_alerts_endpoint_started", "endpoint", "started_at"),
)

# Where alerts go. secret_ref (env:NAME or file:PATH) keys the webhook's HMAC signature.
channels = Table(
    "channels",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # webhook | slack | log
    Column("url", String(2048), nullable=False, default=""),
    Column("secret_ref", String(512), nullable=False, default=""),
    # Endpoints whose alerts this channel receives; empty means all.
    Column("endpoints", JSON, nullable=False, default=list),
    Column("min_severity", String(16), nullable=False, default="info"),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
)

# The delivery outbox: written in the same transaction as the alert change it reports,
# then sent with retries and backoff; every attempt's outcome is kept here.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("alert_id", String(32), nullable=False),
    Column("channel", String(128), nullable=False),
    Column("event", String(16), nullable=False),  # firing | resolved
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", _utc(), nullable=False),
    Column("last_error", Text, nullable=False, default=""),
    Column("response_status", Integer, nullable=True),
    Column("created_at", _utc(), nullable=False),
    Column("delivered_at", _utc(), nullable=True),
    Index("ix_alert_deliveries_status_next", "status", "next_attempt_at"),
    Index("ix_alert_deliveries_alert", "alert_id"),
)

# Staged moves of an endpoint from one version to another (rollout/). At most one is
# active (pending, running, paused) per endpoint; the row is the controller's state, so
# a restart resumes where it was.
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("endpoint", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("from_version_id", String(32), ForeignKey("versions.id"), nullable=False),
    Column("to_version_id", String(32), ForeignKey("versions.id"), nullable=False),
    Column("from_version", Integer, nullable=False),
    Column("to_version", Integer, nullable=False),
    Column("steps", JSON, nullable=False),  # canary weights in percent, increasing
    Column("step_duration_s", Float, nullable=False),
    Column("step", Integer, nullable=False),  # index into steps; -1 while pending
    Column("state", String(16), nullable=False),
    Column("routing", String(8), nullable=False),
    Column("template", String(64), nullable=False),
    # The template as resolved at start (with per-rollout overrides): later edits of the
    # template do not change a rollout under way.
    Column("analysis", JSON, nullable=False),
    Column("last_analysis", JSON, nullable=True),
    Column("reason", String(2000), nullable=False),
    Column("decision", String(2000), nullable=True),
    # Bumped on every state change: concurrent controllers (workers) update with
    # "where revision = seen", so exactly one decision wins.
    Column("revision", Integer, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("updated_at", _utc(), nullable=False),
    Column("step_started_at", _utc(), nullable=False),
    Column("finished_at", _utc(), nullable=True),
    Index("ix_rollouts_endpoint_state", "endpoint", "state"),
)

# Named sets of analysis thresholds; "default" is built in and not stored.
analysis_templates = Table(
    "analysis_templates",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("spec", JSON, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("updated_at", _utc(), nullable=False),
)

# Offline evaluation records (governance/evaluations.py): what a version scored, on which
# data, when. Append-only: a version's newest record is its evidence, and recording a
# new one invalidates approvals bound to the old one's digest.
evaluations = Table(
    "evaluations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("version_id", String(32), ForeignKey("versions.id"), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("metrics", JSON, nullable=False),  # {metric: number}
    Column("slices", JSON, nullable=False),  # {slice: {metric: number}}
    Column("baseline", JSON, nullable=False),  # {metric: number} of a simple baseline
    Column("dataset", JSON, nullable=True),  # fingerprint of the evaluation data
    Column("evaluated_at", _utc(), nullable=False),
    Column("digest", String(64), nullable=False),  # SHA-256 of the canonical record
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Index("ix_evaluations_version", "version_id", "created_at"),
)

# Policies as code (governance/policies.py): the YAML as given and as parsed; every
# change bumps the revision and is audited with the text before and after.
policies = Table(
    "policies",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", _utc(), nullable=False),
)

# Approvals (governance/approvals.py): a request, then one decision with its rationale,
# bound to the evidence it was made on; a changed binding makes an approval stale.
approvals = Table(
    "approvals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("version_id", String(32), ForeignKey("versions.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # pending | approved | rejected
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", _utc(), nullable=False),
    Column("request_note", Text, nullable=False),
    Column("decided_by", String(128), nullable=True),
    Column("decided_at", _utc(), nullable=True),
    Column("rationale", Text, nullable=True),
    # The decider's roles on the model when deciding: what a policy's role rule counts.
    Column("decider_roles", JSON, nullable=True),
    # The evidence the approval is bound to.
    Column("artifact_sha256", String(64), nullable=False),
    Column("contract_sha256", String(64), nullable=False),
    Column("evaluation_digest", String(64), nullable=True),
    Index("ix_approvals_model_state", "model", "state"),
    Index("ix_approvals_version", "version_id"),
)

# ML Test Score attestations (governance/testscore.py): a person vouches for a test
# slipway cannot check itself, with a link to the evidence. The newest per test counts.
attestations = Table(
    "attestations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("test", String(16), nullable=False),  # e.g. "data-2"
    Column("evidence_url", String(2048), nullable=False),
    Column("note", Text, nullable=False),
    Column("attested_by", String(128), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("withdrawn_at", _utc(), nullable=True),
    Index("ix_attestations_model_test", "model", "test"),
)

# Periodic reviews of a model (the inventory's last/next review).
reviews = Table(
    "reviews",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("reviewer", String(128), nullable=False),
    Column("notes", Text, nullable=False),
    Column("created_at", _utc(), nullable=False),
    Index("ix_reviews_model_created", "model", "created_at"),
)

# Leases (store/leases.py): one row per name while held; the server's controllers run in
# the worker holding "controllers". A holder renews before ``expires_at``; past it,
# anyone may take the row over.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("acquired_at", _utc(), nullable=False),
    Column("expires_at", _utc(), nullable=False),
)
